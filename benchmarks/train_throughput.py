"""Distillation throughput: images/s (and peak GPU memory) of the real training loop.

    python -m benchmarks.train_throughput --backbone resnet18 --batch-size 2 --steps 6 [--amp bf16]

Runs ``nanosam2.train``'s loop for --steps optimizer steps on synthetic SA-1B-sized JPEGs
(1500x2250, written to a temporary folder) with a RANDOM-weight teacher: timings are valid,
weights are not. The first step (allocation, worker start) is excluded. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from benchmarks.machine import machine_info
from nanosam2.utils.atomic import atomic_path
from nanosam2.utils.cli import ArgumentParser, run_cli, setup_logging


def write_images(folder: Path, count: int, seed: int = 0) -> Path:
    chunk = folder / "sa_000000"
    chunk.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        base = rng.integers(0, 255, size=(47, 71, 3), dtype=np.uint8)  # smooth, JPEG-like content
        Image.fromarray(base).resize((2250, 1500), Image.Resampling.BILINEAR).save(chunk / f"sa_{index}.jpg", quality=90)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18", help="student backbone (default resnet18)")
    parser.add_argument("--teacher-config", default="sam2.1_hiera_s", help="teacher (default sam2.1_hiera_s)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per step (default 2)")
    parser.add_argument("--image-size", type=int, default=1024, help="crop side (default 1024)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps to time (default 6, first excluded)")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "fp32"), help="autocast dtype")
    parser.add_argument("--num-workers", type=int, default=2, help="data-loader workers (default 2)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json", help="JSON output")
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from nanosam2.distill.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        images = write_images(Path(tmp) / "sa1b", args.batch_size * (args.steps + 1))
        cfg = TrainConfig(images=str(images), output_dir=str(Path(tmp) / "run"), backbone=args.backbone,
                          teacher_config=args.teacher_config, image_size=args.image_size, batch_size=args.batch_size,
                          epochs=1, amp=args.amp, num_workers=args.num_workers, device=args.device,
                          stop_after_steps=args.steps, progress=False)
        result = train(cfg)
    cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    record = {"backbone": args.backbone, "teacher": args.teacher_config, "batch_size": args.batch_size,
              "image_size": args.image_size, "amp": args.amp, "timed_steps": args.steps - 1,
              "images_per_s": result.images_per_s,
              "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
              "random_weights": True, "machine": machine_info()}
    with atomic_path(args.out) as tmp_out:
        tmp_out.write_text(json.dumps(record, indent=2))
    print(f"{args.backbone} <- {args.teacher_config}, batch {args.batch_size} at {args.image_size}px, amp {args.amp}: "
          f"{result.images_per_s:.2f} images/s" + (f", peak {record['peak_gpu_memory_gib']:.1f} GiB" if cuda else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
