"""Built-in check of an export: ONNX Runtime vs PyTorch on the same random inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nanosam2 import contract as C
from export.exporter import decoder_example, encoder_example
from nanosam2.modeling.predictor_graphs import ImageEncoderGraph, MaskDecoderGraph

logger = logging.getLogger(__name__)

# Max abs error allowed, relative to max(1, max |reference|) of each output.
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}


@dataclass
class OutputError:
    graph: str
    output: str
    max_abs: float
    max_rel: float  # max abs error / max(1, max |reference|)
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance


def compare(graph: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], tolerance: float) -> list[OutputError]:
    rows = []
    for name, ref in reference.items():
        err = float(np.abs(ref.astype(np.float64) - actual[name]).max())
        rows.append(OutputError(graph, name, err, err / max(1.0, float(np.abs(ref).max())), tolerance))
    return rows


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_export(model: nn.Module, paths: dict[str, Path], precision: str, seed: int = 123) -> list[OutputError]:
    """Run both graphs in ONNX Runtime (CPU) and PyTorch; one row per output."""
    torch.manual_seed(seed)
    model = model.eval().cpu().float()
    encoder, decoder = ImageEncoderGraph(model).eval(), MaskDecoderGraph(model).eval()
    (image,) = encoder_example(batch=1, image_size=int(model.image_size))
    with torch.no_grad():
        features = encoder(image)
        dec_args = decoder_example(decoder, features, prompts=2, points=3, seed=seed)
        dec_ref = decoder(*dec_args)
    enc_out = _ort_session(paths[C.ENCODER]).run(list(C.ENCODER_OUTPUTS), {C.IMAGE: image.numpy()})
    dec_out = _ort_session(paths[C.DECODER]).run(
        list(C.DECODER_OUTPUTS), {n: a.numpy() for n, a in zip(C.DECODER_INPUTS, dec_args)})
    tol = TOLERANCE[precision]
    rows = compare(C.ENCODER, {n: t.numpy() for n, t in zip(C.ENCODER_OUTPUTS, features)},
                   dict(zip(C.ENCODER_OUTPUTS, enc_out)), tol)
    rows += compare(C.DECODER, {n: t.numpy() for n, t in zip(C.DECODER_OUTPUTS, dec_ref)},
                    dict(zip(C.DECODER_OUTPUTS, dec_out)), tol)
    return rows


def format_errors(rows: list[OutputError]) -> str:
    lines = ["| graph | output | max abs err | max rel err | tolerance | ok |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.graph} | {r.output} | {r.max_abs:.3g} | {r.max_rel:.3g} | {r.tolerance:g} | {'yes' if r.ok else 'NO'} |"
              for r in rows]
    return "\n".join(lines)
