"""Export a SAM2 model (student or teacher) to the nanosam2 ONNX graphs: every entry of the table of
graphs (``nanosam2.contract.GRAPH_SPECS``), with its dynamic axes, precision policy, module and examples."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from export.examples import graph_inputs
from nanosam2.utils.onnx_passes import (name_dynamic_axes, read_metadata, save_checked, set_metadata, simplify,
                                tensorrt_type_violations, to_fp16)
from export.verify import OutputError, check_rows, verify_export
from nanosam2 import contract as C
from nanosam2.checkpoint import state_digest
from nanosam2.contract import GraphContract
from nanosam2.modeling.predictor_graphs import QAT_PRECISION, build_graph_module, graph_contract, is_quantized
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_output_dir, check_output_file, staged
from nanosam2.utils.outputs import check_replaceable_file

logger = logging.getLogger(__name__)

__all__ = ["QAT_PRECISION", "ExportedGraph", "export_backbone", "export_model", "graph_paths", "load_model"]


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
    """The dynamic axes of a graph for torch.export, from its spec (one ``Dim`` per axis name)."""
    spec = C.GRAPH_SPECS[graph_name]
    dims = {axis.name: torch.export.Dim(axis.name, min=axis.lo, max=axis.hi)
            for axes in spec.axes.values() for axis in axes.values()}
    return {name: ({index: dims[axis.name] for index, axis in spec.axes[name].items()} if name in spec.axes else None)
            for name in spec.inputs}


def export_graph(graph_name: str, module: nn.Module, args: tuple[torch.Tensor, ...], tmp: Path,
                 contract: GraphContract, opset: int, precision: str, do_simplify: bool) -> ExportedGraph:
    """torch -> ONNX -> metadata -> simplify -> FP16 -> full check, written to ``tmp`` (the caller
    publishes it)."""
    import onnx

    start = time.perf_counter()
    spec = C.GRAPH_SPECS[graph_name]
    names_in, names_out = spec.inputs, spec.outputs
    dynamic = dynamic_shapes(graph_name)
    precision = precision if precision == QAT_PRECISION else spec.precision(precision)  # the precision policy
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


def graph_paths(output_dir: Path, precision: str, video: bool = True) -> dict[str, Path]:
    """Files of one export, by the table of graphs: ``NAME.onnx``, or ``NAME.fp16.onnx`` for a graph
    that follows ``precision`` (the pre/post-processing and memory-encoder graphs stay FP32)."""
    return {name: output_dir / spec.file_name(precision) for name, spec in C.GRAPH_SPECS.items()
            if video or not spec.tracker or spec.predictor}


def export_model(model: nn.Module, backbone: str, output_dir: Path, opset: int = C.DEFAULT_OPSET,
                 precision: str = "fp32", do_simplify: bool = True, verify: bool = True,
                 video: bool = True) -> dict[str, ExportedGraph]:
    """Write every graph of the table (``video``: the tracker's too) into ``output_dir``:
    ``image_encoder[.fp16].onnx``, ``mask_decoder[.fp16].onnx``, ``preprocess.onnx``, ``postprocess.onnx``,
    ``memory_attention[.fp16].onnx``, ``memory_encoder.onnx``.

    All graphs are written under temporary names, checked in ONNX Runtime against PyTorch
    (``verify``), and only then renamed together: an interrupted or failed export leaves the
    folder as it was, never one new graph beside an old one. All carry the model's weights hash,
    so the runtime refuses to pair them with graphs of another model. A QAT student (modelopt
    quantizers inside) gives ``image_encoder.int8.onnx`` with the Q/DQ nodes it was trained
    with; the other graphs follow ``precision``. A failed check raises :class:`NanoSam2Error`.
    """
    model = model.eval().cpu().float()
    paths = graph_paths(output_dir, precision, video)
    precisions = {name: C.GRAPH_SPECS[name].precision(precision) for name in paths}
    if is_quantized(model.image_encoder):
        paths[C.ENCODER] = output_dir / f"{C.ENCODER}.int8.onnx"
        precisions[C.ENCODER] = QAT_PRECISION
    weights = state_digest(model)
    modules = {name: build_graph_module(name, model).eval() for name in paths}
    with torch.no_grad():
        features = tuple(t[:1] for t in modules[C.ENCODER](*graph_inputs(C.ENCODER, model, ())))
    names = list(paths)
    with staged([paths[name] for name in names]) as temps:
        tmp = dict(zip(names, temps))
        graphs = {name: export_graph(name, modules[name], graph_inputs(name, model, features), tmp[name],
                                     graph_contract(name, model, backbone, precisions[name], weights), opset,
                                     precisions[name], do_simplify)
                  for name in names}
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


def load_model(backbone: str, checkpoint: str | os.PathLike[str] | None = None, random_weights: bool = False,
               image_size: int | None = None) -> nn.Module:
    """A student (random weights without ``checkpoint``, said loudly) or a SAM2.1 teacher (needs
    Meta's checkpoint unless ``random_weights``), on the CPU."""
    from nanosam2.build import TEACHERS, build_model, known_backbones

    if backbone not in known_backbones():
        raise NanoSam2Error(f"unknown backbone {backbone!r}; known: {', '.join(known_backbones())}")
    if backbone in TEACHERS and checkpoint is None and not random_weights:
        raise NanoSam2Error(f"teacher {backbone} needs --checkpoint (Meta's {TEACHERS[backbone][1]}), "
                            "or --random-weights for a timing-only export")
    if backbone not in TEACHERS and checkpoint is None:
        print(f"*** export: {backbone} with RANDOM WEIGHTS (no --checkpoint): graphs are valid, masks meaningless ***")
    return build_model(backbone, checkpoint, device="cpu", image_size=image_size)


def export_backbone(backbone: str, output_dir: str | os.PathLike[str] | None = None,
                    checkpoint: str | os.PathLike[str] | None = None, opset: int = C.DEFAULT_OPSET,
                    precision: str = "fp32", do_simplify: bool = True, verify: bool = True,
                    random_weights: bool = False, video: bool = True,
                    image_size: int = C.IMAGE_SIZE) -> dict[str, ExportedGraph]:
    """``python -m export.onnx`` as a function: check the request, load the model at ``image_size``, export
    every graph into ``output_dir`` (default ``outputs/onnx/BACKBONE``, ``BACKBONE-S`` at another size)."""
    from nanosam2.build import known_backbones

    if backbone not in known_backbones():
        raise NanoSam2Error(f"unknown backbone {backbone!r}; known: {', '.join(known_backbones())}")
    lo, hi = C.OPSET_RANGE
    if not lo <= opset <= hi:
        raise NanoSam2Error(f"--opset {opset} is not supported: use {lo}..{hi} (TensorRT 10.3 parses up to {hi})")
    if precision not in ("fp32", "fp16"):
        raise NanoSam2Error(f"unknown precision {precision!r}; choose fp32 or fp16")
    C.check_image_size(image_size)
    default = Path("outputs") / "onnx" / (backbone if image_size == C.IMAGE_SIZE else f"{backbone}-{image_size}")
    out = check_output_dir(output_dir or default, inputs=[checkpoint])
    for path in graph_paths(out, precision).values():
        check_output_file(path, inputs=[checkpoint])
        check_replaceable_file(path, "export.onnx", _exported_by_us)
    model = load_model(backbone, checkpoint, random_weights, image_size)
    return export_model(model, backbone, out, opset, precision, do_simplify, verify, video)
