"""Export a SAM2 model (student or teacher) to the two nanosam2 ONNX graphs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nanosam2 import contract as C
from nanosam2.contract import GraphContract
from nanosam2.modeling.predictor_graphs import ImageEncoderGraph, MaskDecoderGraph, graph_contract
from nanosam2.utils.atomic import atomic_path
from export.onnx_passes import save_checked, set_metadata, simplify, to_fp16
from nanosam2.qat.modelopt_int8 import is_quantized

logger = logging.getLogger(__name__)

QAT_PRECISION = "int8-qat"  # encoder of a QAT student: Q/DQ nodes from training, decoder stays FP32
DEFAULT_OPSET = 18  # parsed by TensorRT 10.3 (JetPack 6) and 11; LayerNormalization is native from 17
MAX_BATCH, MAX_PROMPTS, MAX_POINTS = 64, 256, 64


@dataclass
class ExportedGraph:
    path: Path
    contract: GraphContract
    seconds: float
    simplifier: str


def encoder_example(batch: int = 2, image_size: int = 1024) -> tuple[torch.Tensor]:
    # batch 2: torch.export specialises dimensions of size 1
    return (torch.randn(batch, 3, image_size, image_size),)


def decoder_example(graph: MaskDecoderGraph, features: tuple[torch.Tensor, ...], prompts: int = 3,
                    points: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Realistic decoder inputs: a box + clicks, padding, and one mask prompt."""
    gen = torch.Generator().manual_seed(seed)
    size = float(graph.image_size)
    coords = torch.rand(prompts, points, 2, generator=gen) * size
    labels = torch.tensor([2, 3, 1, 0, -1, 1, 0, 1], dtype=torch.float32)[: points].repeat(prompts, 1)
    labels[:, -1] = -1
    mask_input = torch.randn(prompts, 1, 256, 256, generator=gen) * 4
    has_mask = (torch.arange(prompts) % 2 == 1).to(torch.float32)
    return (*features, coords, labels, mask_input, has_mask)


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


def export_graph(graph_name: str, module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                 contract: GraphContract, opset: int, precision: str, do_simplify: bool) -> ExportedGraph:
    """torch -> ONNX -> metadata -> simplify -> FP16 -> full check, atomically written to ``path``."""
    import onnx

    start = time.perf_counter()
    if graph_name == C.ENCODER:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        names_in, names_out, dynamic = C.ENCODER_INPUTS, C.ENCODER_OUTPUTS, {C.IMAGE: {0: batch}}
    else:
        prompts = torch.export.Dim("num_prompts", min=1, max=MAX_PROMPTS)
        points = torch.export.Dim("num_points", min=1, max=MAX_POINTS)
        names_in, names_out = C.DECODER_INPUTS, C.DECODER_OUTPUTS
        dynamic = {C.IMAGE_EMBED: None, C.HIGH_RES_FEATS_0: None, C.HIGH_RES_FEATS_1: None,
                   C.POINT_COORDS: {0: prompts, 1: points}, C.POINT_LABELS: {0: prompts, 1: points},
                   C.MASK_INPUT: {0: prompts}, C.HAS_MASK_INPUT: {0: prompts}}
    quantized = precision == QAT_PRECISION
    with atomic_path(path) as tmp, torch.no_grad():
        if quantized:
            _export_quantized(module, args, tmp, opset)
        else:
            _export(module, args, names_in, names_out, dynamic, tmp, opset)
        model = onnx.load(str(tmp))
        tool = "none"
        if do_simplify and not quantized:  # simplifiers may fold weight Q/DQ pairs TensorRT needs to see
            model, tool = simplify(model)
        if precision == "fp16":
            model = to_fp16(model)
        set_metadata(model, contract)
        save_checked(model, tmp)
    seconds = time.perf_counter() - start
    logger.info("wrote %s (%.1f MB, %.1f s, simplified by %s)", path, path.stat().st_size / 1e6, seconds, tool)
    return ExportedGraph(path, contract, seconds, tool)


def graph_paths(output_dir: Path, precision: str) -> dict[str, Path]:
    suffix = "" if precision == "fp32" else f".{precision}"
    return {C.ENCODER: output_dir / f"{C.ENCODER}{suffix}.onnx", C.DECODER: output_dir / f"{C.DECODER}{suffix}.onnx"}


def export_model(model: nn.Module, backbone: str, output_dir: Path, opset: int = DEFAULT_OPSET,
                 precision: str = "fp32", do_simplify: bool = True) -> dict[str, ExportedGraph]:
    """Write ``image_encoder[.fp16].onnx`` and ``mask_decoder[.fp16].onnx`` into ``output_dir``.

    A QAT student (modelopt quantizers inside) gives ``image_encoder.int8.onnx`` with the Q/DQ
    nodes it was trained with; the decoder follows ``precision``.
    """
    model = model.eval().cpu().float()
    encoder, decoder = ImageEncoderGraph(model).eval(), MaskDecoderGraph(model).eval()
    paths = graph_paths(output_dir, precision)
    encoder_precision = precision
    if is_quantized(model.image_encoder):
        paths[C.ENCODER] = output_dir / f"{C.ENCODER}.int8.onnx"
        encoder_precision = QAT_PRECISION
    enc_args = encoder_example(image_size=int(model.image_size))
    with torch.no_grad():
        features = tuple(t[:1] for t in encoder(*enc_args))
    return {
        C.ENCODER: export_graph(C.ENCODER, encoder, enc_args, paths[C.ENCODER],
                                graph_contract(C.ENCODER, model, backbone, encoder_precision), opset,
                                encoder_precision, do_simplify),
        C.DECODER: export_graph(C.DECODER, decoder, decoder_example(decoder, features), paths[C.DECODER],
                                graph_contract(C.DECODER, model, backbone, precision), opset, precision, do_simplify),
    }
