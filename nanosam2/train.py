"""Distil SAM2.1's image encoder into a small student on SA-1B.

    python -m nanosam2.train --images data/sa1b --chunks sa_000000,sa_000001 \\
        --output-dir runs/resnet18 --backbone resnet18 \\
        --teacher-config sam2.1_hiera_s --teacher-checkpoint sam2.1_hiera_small.pt \\
        --batch-size 16 --epochs 10 [--coco-root val2017 --coco-ann instances_val2017.json]

Multi-GPU: ``torchrun --nproc_per_node 4 -m nanosam2.train ...`` (DDP; --batch-size is per GPU).
The teacher is frozen; the loss compares the three FPN levels (weights 1, 1/4, 1/8). The
student's prompt encoder and mask decoder are the teacher's. ``--resume`` continues a run
bit for bit; ``best.pth`` is the student to export (``python -m export.onnx --checkpoint``).
``--qat --checkpoint best.pth`` makes the INT8 quantization-aware student (``--qat --help``).
"""

from __future__ import annotations

from typing import Sequence

import sys

from nanosam2.distill.cli import QAT_DESCRIPTION, run_training
from nanosam2.utils.cli import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Distillation, or with ``--qat`` (first) quantization-aware training of a distilled student."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--qat" in args:
        args.remove("--qat")
        return run_training(args, "python -m nanosam2.train --qat", QAT_DESCRIPTION, qat=True)
    return run_training(args, "python -m nanosam2.train", __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
