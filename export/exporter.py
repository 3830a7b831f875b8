"""Export a SAM2 model (student or teacher) to the two nanosam2 ONNX graphs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from export.examples import decoder_example, encoder_example, video_examples
from export.onnx_passes import (name_dynamic_axes, read_metadata, save_checked, set_metadata, simplify,
                                tensorrt_type_violations, to_fp16)
from export.verify import OutputError, check_rows, verify_export
from nanosam2 import contract as C
from nanosam2.checkpoint import state_digest
from nanosam2.contract import GraphContract
from nanosam2.modeling.pipeline_graphs import NUM_CANDIDATE_PLANES
from nanosam2.modeling.predictor_graphs import (QAT_PRECISION, ImageEncoderGraph, MaskDecoderGraph, build_graph_module,
                                               graph_contract, is_quantized)
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_output_dir, check_output_file, staged
from nanosam2.utils.outputs import check_replaceable_file

logger = logging.getLogger(__name__)

__all__ = ["QAT_PRECISION", "ExportedGraph", "decoder_example", "encoder_example", "export_backbone", "export_model",
           "graph_paths", "load_model"]


@dataclass
class ExportedGraph:
    path: Path
    contract: GraphContract
    seconds: float
    simplifier: str
    errors: list[OutputError] = field(default_factory=list)  # ONNX Runtime vs PyTorch, when verified


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: tuple[str, ...],
            output_names: tuple[str, ...], dynamic: dict, path: Path, opset: int) -> None:
    torch.onnx.export(module, args, str(path), input_names=list(input_names), output_names=list(output_names),
                      dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False,
                      optimize=True, verbose=False)


def _export_quantized(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    """A QAT encoder: modelopt's fake quantizers become QuantizeLinear/DequantizeLinear pairs.

    The TorchScript exporter (``dynamo=False``) is the one modelopt supports: its quantizer has
    a data-dependent branch that torch.export cannot trace.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from modelopt's amax checks
        torch.onnx.export(module, args, str(path), input_names=list(C.ENCODER_INPUTS),
                          output_names=list(C.ENCODER_OUTPUTS), dynamic_axes={C.IMAGE: {0: "batch"}},
                          opset_version=opset, dynamo=False)


def dynamic_shapes(graph_name: str) -> dict:
    """The dynamic axes of each graph, for torch.export (bounds from nanosam2.contract)."""
    prompts = torch.export.Dim("num_prompts", min=1, max=C.EXPORT_MAX_PROMPTS)
    points = torch.export.Dim("num_points", min=1, max=C.EXPORT_MAX_POINTS)
    height = torch.export.Dim("height", min=2, max=C.EXPORT_MAX_PIXELS)
    width = torch.export.Dim("width", min=2, max=C.EXPORT_MAX_PIXELS)
    if graph_name == C.ENCODER:
        return {C.IMAGE: {0: torch.export.Dim("batch", min=1, max=C.EXPORT_MAX_BATCH)}}
    if graph_name == C.DECODER:
        return {C.IMAGE_EMBED: None, C.HIGH_RES_FEATS_0: None, C.HIGH_RES_FEATS_1: None,
                C.POINT_COORDS: {0: prompts, 1: points}, C.POINT_LABELS: {0: prompts, 1: points},
                C.MASK_INPUT: {0: prompts}, C.HAS_MASK_INPUT: {0: prompts}}
    if graph_name == C.PREPROCESS:
        return {C.PIXELS: {0: height, 1: width}}
    if graph_name == C.MEMORY_ATTENTION:
        memories = torch.export.Dim("num_memories", min=1, max=C.EXPORT_MAX_MEMORIES)
        pointers = torch.export.Dim("num_pointers", min=0, max=C.EXPORT_MAX_POINTERS)
        return {C.IMAGE_EMBED: None, C.MASKMEM_FEATURES: {0: memories}, C.MASKMEM_TPOS_INDEX: {0: memories},
                C.OBJECT_POINTERS: {0: pointers}, C.OBJECT_POINTER_OFFSETS: {0: pointers},
                C.OBJECT_POINTER_PRESENT: {0: pointers}}
    if graph_name == C.MEMORY_ENCODER:
        side = torch.export.Dim("mask_size", min=4, max=C.EXPORT_MAX_PIXELS)
        return {C.IMAGE_EMBED: None, C.MASK_LOGITS: {2: side, 3: side}, C.BINARIZE_MASK: None,
                C.OBJECT_SCORE_LOGITS: None}
    planes = torch.export.Dim("num_planes", min=1, max=NUM_CANDIDATE_PLANES)
    return {C.LOW_RES_MASKS: {0: prompts}, C.IOU_PREDICTIONS: {0: prompts}, C.PIXELS: {0: height, 1: width},
            C.MASK_PLANES: {0: planes}}


def pipeline_examples(graph_name: str, low_res_size: int) -> tuple[torch.Tensor, ...]:
    """Example inputs of the pre/post-processing graphs (odd sizes: nothing specialises)."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (97, 131, 3), dtype=torch.uint8, generator=gen)
    if graph_name == C.PREPROCESS:
        return (pixels,)
    logits = torch.randn(3, 4, low_res_size, low_res_size, generator=gen) * 8
    return (logits, torch.rand(3, 4, generator=gen), pixels, torch.tensor([1, 2, 3], dtype=torch.int64))


def export_graph(graph_name: str, module: nn.Module, args: tuple[torch.Tensor, ...], tmp: Path,
                 contract: GraphContract, opset: int, precision: str, do_simplify: bool) -> ExportedGraph:
    """torch -> ONNX -> metadata -> simplify -> FP16 -> full check, written to ``tmp`` (the caller
    publishes it)."""
    import onnx

    start = time.perf_counter()
    names_in, names_out = C.GRAPH_IO[graph_name]
    dynamic = dynamic_shapes(graph_name)
    precision = "fp32" if graph_name in C.FP32_GRAPHS else precision  # the precision policy
    quantized = precision == QAT_PRECISION
    with torch.no_grad():
        if quantized:
            _export_quantized(module, args, tmp, opset)
        else:
            _export(module, args, names_in, names_out, dynamic, tmp, opset)
        model = onnx.load(str(tmp))
        tool = "none"
        if do_simplify and not quantized:  # simplifiers may fold weight Q/DQ pairs TensorRT needs to see
            model, tool = simplify(model)
        set_metadata(model, contract)  # before FP16: to_fp16 reads which graph it converts
        if precision == "fp16":
            model = to_fp16(model)
        name_dynamic_axes(model, {name: {axis: dim.__name__ for axis, dim in spec.items()}
                                  for name, spec in dynamic.items() if spec})
        problems = tensorrt_type_violations(model)
        if problems:  # a graph TensorRT would refuse is not an export
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise NanoSam2Error(f"{graph_name}: {problems[0]}{more}")
        save_checked(model, tmp)
    seconds = time.perf_counter() - start
    logger.info("exported %s (%.1f MB, %.1f s, simplified by %s)", graph_name, tmp.stat().st_size / 1e6, seconds, tool)
    return ExportedGraph(tmp, contract, seconds, tool)


def graph_paths(output_dir: Path, precision: str) -> dict[str, Path]:
    """Files of one export: the network graphs (``.fp16`` with that precision), the FP32
    pre/post-processing graphs and the video graphs (memory attention follows ``precision``)."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return {C.ENCODER: output_dir / f"{C.ENCODER}{suffix}.onnx", C.DECODER: output_dir / f"{C.DECODER}{suffix}.onnx",
            C.PREPROCESS: output_dir / f"{C.PREPROCESS}.onnx", C.POSTPROCESS: output_dir / f"{C.POSTPROCESS}.onnx",
            C.MEMORY_ATTENTION: output_dir / f"{C.MEMORY_ATTENTION}{suffix}.onnx",
            C.MEMORY_ENCODER: output_dir / f"{C.MEMORY_ENCODER}.onnx"}


def export_model(model: nn.Module, backbone: str, output_dir: Path, opset: int = C.DEFAULT_OPSET,
                 precision: str = "fp32", do_simplify: bool = True, verify: bool = True,
                 video: bool = True) -> dict[str, ExportedGraph]:
    """Write ``image_encoder[.fp16].onnx``, ``mask_decoder[.fp16].onnx``, ``preprocess.onnx``,
    ``postprocess.onnx`` and (``video``) ``memory_attention[.fp16].onnx`` and ``memory_encoder.onnx``
    into ``output_dir``.

    All graphs are written under temporary names, checked in ONNX Runtime against PyTorch
    (``verify``), and only then renamed together: an interrupted or failed export leaves the
    folder as it was, never one new graph beside an old one. Both carry the model's weights hash,
    so the runtime refuses to pair them with graphs of another model. A QAT student (modelopt
    quantizers inside) gives ``image_encoder.int8.onnx`` with the Q/DQ nodes it was trained
    with; the decoder follows ``precision``. A failed check raises :class:`NanoSam2Error`.
    """
    model = model.eval().cpu().float()
    encoder, decoder = ImageEncoderGraph(model).eval(), MaskDecoderGraph(model).eval()
    paths = graph_paths(output_dir, precision)
    if not video:
        for name in C.VIDEO_GRAPHS:
            paths.pop(name)
    encoder_precision = precision
    if is_quantized(model.image_encoder):
        paths[C.ENCODER] = output_dir / f"{C.ENCODER}.int8.onnx"
        encoder_precision = QAT_PRECISION
    weights = state_digest(model)
    enc_args = encoder_example(image_size=int(model.image_size))
    with torch.no_grad():
        features = tuple(t[:1] for t in encoder(*enc_args))
    names = list(paths)
    with staged([paths[name] for name in names]) as temps:
        tmp = dict(zip(names, temps))
        graphs = {
            C.ENCODER: export_graph(C.ENCODER, encoder, enc_args, tmp[C.ENCODER],
                                    graph_contract(C.ENCODER, model, backbone, encoder_precision, weights), opset,
                                    encoder_precision, do_simplify),
            C.DECODER: export_graph(C.DECODER, decoder, decoder_example(decoder, features), tmp[C.DECODER],
                                    graph_contract(C.DECODER, model, backbone, precision, weights), opset, precision,
                                    do_simplify),
        }
        for name in (C.PREPROCESS, C.POSTPROCESS):
            graphs[name] = export_graph(name, build_graph_module(name, model).eval(),
                                        pipeline_examples(name, int(model.image_size) // 4), tmp[name],
                                        graph_contract(name, model, backbone, "fp32", weights), opset, "fp32",
                                        do_simplify)
        for name in C.VIDEO_GRAPHS if video else ():
            graphs[name] = export_graph(name, build_graph_module(name, model).eval(),
                                        video_examples(name, model, features[0]), tmp[name],
                                        graph_contract(name, model, backbone, precision, weights), opset, precision,
                                        do_simplify)
        if verify:
            rows = verify_export(model, tmp, precision)
            for name, graph in graphs.items():
                graph.errors = [r for r in rows if r.graph == name]
            check_rows(rows)  # raises: the staged files are removed, the folder is left as it was
    for name, graph in graphs.items():
        graph.path = paths[name]
        logger.info("wrote %s (%.1f MB)", graph.path, graph.path.stat().st_size / 1e6)
    return graphs


def _exported_by_us(path: Path) -> bool:
    """A graph whose metadata holds this toolkit's contract (an earlier export, safe to replace)."""
    try:
        read_metadata(path)
    except Exception:  # noqa: BLE001 - any unreadable or foreign file is not ours
        return False
    return True


def load_model(backbone: str, checkpoint: str | os.PathLike[str] | None = None, random_weights: bool = False) -> nn.Module:
    """A student (random weights without ``checkpoint``, said loudly) or a SAM2.1 teacher (needs
    Meta's checkpoint unless ``random_weights``), on the CPU."""
    from nanosam2.build import TEACHERS, build_nanosam2, build_teacher, known_backbones, student_config_name

    if backbone not in known_backbones():
        raise NanoSam2Error(f"unknown backbone {backbone!r}; known: {', '.join(known_backbones())}")
    if backbone in TEACHERS:
        if checkpoint is None and not random_weights:
            raise NanoSam2Error(f"teacher {backbone} needs --checkpoint (Meta's {TEACHERS[backbone][1]}), "
                                "or --random-weights for a timing-only export")
        return build_teacher(backbone, checkpoint, device="cpu")
    if checkpoint is None:
        print(f"*** export: {backbone} with RANDOM WEIGHTS (no --checkpoint): graphs are valid, masks meaningless ***")
    return build_nanosam2(student_config_name(backbone), checkpoint=checkpoint, device="cpu")


def export_backbone(backbone: str, output_dir: str | os.PathLike[str] | None = None,
                    checkpoint: str | os.PathLike[str] | None = None, opset: int = C.DEFAULT_OPSET,
                    precision: str = "fp32", do_simplify: bool = True, verify: bool = True,
                    random_weights: bool = False, video: bool = True) -> dict[str, ExportedGraph]:
    """``python -m export.onnx`` as a function: check the request, load the model, export both graphs
    into ``output_dir`` (default ``outputs/onnx/BACKBONE``)."""
    from nanosam2.build import known_backbones

    if backbone not in known_backbones():
        raise NanoSam2Error(f"unknown backbone {backbone!r}; known: {', '.join(known_backbones())}")
    lo, hi = C.OPSET_RANGE
    if not lo <= opset <= hi:
        raise NanoSam2Error(f"--opset {opset} is not supported: use {lo}..{hi} (TensorRT 10.3 parses up to {hi})")
    if precision not in ("fp32", "fp16"):
        raise NanoSam2Error(f"unknown precision {precision!r}; choose fp32 or fp16")
    out = check_output_dir(output_dir or Path("outputs") / "onnx" / backbone, inputs=[checkpoint])
    for path in graph_paths(out, precision).values():
        check_output_file(path, inputs=[checkpoint])
        check_replaceable_file(path, "export.onnx", _exported_by_us)
    model = load_model(backbone, checkpoint, random_weights)
    return export_model(model, backbone, out, opset, precision, do_simplify, verify, video)
