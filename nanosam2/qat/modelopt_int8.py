"""INT8 fake quantization of the student's image encoder with NVIDIA TensorRT Model Optimizer.

``mtq.INT8_DEFAULT_CFG``: symmetric INT8, per-output-channel weights (axis 0), per-tensor
activations at the inputs of every Conv/Linear, max calibration: exactly what TensorRT's
explicit quantization reads from Q/DQ nodes. Exported with the TorchScript ONNX exporter
(``dynamo=False``, opset 17); modelopt's quantizer has a data-dependent branch the dynamo
exporter cannot trace.

Checkpoints keep the fold list and ``modelopt_state`` beside the weights, so
``build_nanosam2(checkpoint=...)`` rebuilds the same quantized module before loading them.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import torch
from torch import nn

from nanosam2.errors import CheckpointError
from nanosam2.qat.batchnorm import fold_and_check, fold_batchnorms
from nanosam2.utils.lazy_import import require

logger = logging.getLogger(__name__)

FORMAT = "modelopt-int8"


def _mtq():
    return require("modelopt.torch.quantization", "quantization-aware training")


def _mto():
    return require("modelopt.torch.opt", "quantization-aware training")


def quantize_image_encoder(model: nn.Module, calibration: Iterable[torch.Tensor],
                           example: torch.Tensor) -> dict[str, Any]:
    """Fold BatchNorms, insert INT8 quantizers and calibrate them on ``calibration`` batches.

    Returns the state to store in checkpoints (see :func:`restore_quantization`).
    """
    mtq = _mtq()
    encoder = model.image_encoder
    pairs = fold_and_check(encoder, example)
    batches = list(calibration)
    if not batches:
        raise ValueError("QAT calibration needs at least one batch")

    def forward_loop(module: nn.Module) -> None:
        with torch.no_grad():
            for batch in batches:
                module(batch)

    was_training = encoder.training
    encoder.eval()  # calibrate with the running statistics inference uses
    mtq.quantize(encoder, mtq.INT8_DEFAULT_CFG, forward_loop)
    encoder.train(was_training)
    count = sum(1 for m in encoder.modules() if type(m).__name__ == "TensorQuantizer" and m.is_enabled)
    logger.info("INT8 QAT: %d active quantizers, calibrated on %d batches", count, len(batches))
    return quantization_state(model, pairs)


def quantization_state(model: nn.Module, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"format": FORMAT, "folded_batchnorms": [list(p) for p in pairs],
            "modelopt_state": _mto().modelopt_state(model.image_encoder)}


def restore_quantization(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """Re-create the folded, quantized encoder structure so a QAT state dict loads strictly."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{source}: unknown quantization format {found!r} (expected {FORMAT})")
    pairs = state.get("folded_batchnorms")
    if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 and
                                              all(isinstance(n, str) for n in p) for p in pairs):
        raise CheckpointError(f"{source}: malformed quantization record (folded_batchnorms must be [conv, bn] name pairs)")
    if not isinstance(state.get("modelopt_state"), dict):
        raise CheckpointError(f"{source}: malformed quantization record (no modelopt_state)")
    try:
        fold_batchnorms(model.image_encoder, [tuple(p) for p in pairs])
        _mto().restore_from_modelopt_state(model.image_encoder, state["modelopt_state"])
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{source}: its quantization record does not fit the model ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None

