"""Quantization-aware training of a distilled student (INT8, the form TensorRT consumes).

    python -m nanosam2.qat --checkpoint runs/resnet18/best.pth --images data/sa1b \\
        --num-images 30000 --output-dir runs/resnet18_qat \\
        --teacher-config sam2.1_hiera_s --teacher-checkpoint sam2.1_hiera_small.pt --epochs 5

Starts from the FP32 student: folds each Conv->BatchNorm pair (as TensorRT will), freezes the
remaining BatchNorms, inserts NVIDIA Model Optimizer's INT8 fake quantizers (symmetric,
per-channel weights, per-tensor activations), calibrates them on --calib-batches SA-1B
batches, then runs the same distillation loop at --lr 1e-4. Export the result with
``python -m export.onnx --backbone NAME --checkpoint runs/resnet18_qat/best.pth``: the image
encoder becomes a Q/DQ ONNX graph for ``engines/build_engine.py --int8``.
"""

from __future__ import annotations

from typing import Sequence

from nanosam2.distill.cli import run_training
from nanosam2.utils.cli import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, "python -m nanosam2.qat", __doc__ or "", qat=True)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
