"""Seed-compatible COCO evaluation: ``python nanosam2/tools/eval_coco.py --checkpoint CKPT
--sam2_config CONFIG --output results.json --coco_root DIR --coco_ann FILE``.

``--sam2_config`` is a nanosam2 student config (``nanosam2.1_resnet18``) or a SAM2.1 teacher
config (``sam2.1_hiera_s``). Runs the same loop as ``python -m trt_runtime eval-coco`` on the
PyTorch backend (a compatibility shim: library code never imports the runtime this way).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from nanosam2.utils.cli import existing_file, run_cli, setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nanosam2/tools/eval_coco.py", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=existing_file, help="student or Meta SAM2.1 checkpoint")
    parser.add_argument("--sam2_config", required=True, help="nanosam2.1_<backbone> or sam2.1_hiera_{t,s,b+,l}")
    parser.add_argument("--output", required=True, help="results JSON (resumed if it exists)")
    parser.add_argument("--coco_root", required=True, help="COCO val2017 image folder")
    parser.add_argument("--coco_ann", required=True, help="instances_val2017.json")
    parser.add_argument("--limit", type=int, help="only the first N annotated images")
    parser.add_argument("--device", help="torch device (default: cuda if available)")
    args = parser.parse_args(argv)
    setup_logging()

    from trt_runtime.cli import main as runtime_main

    return runtime_main(["eval-coco", "--encoder", args.checkpoint, "--decoder", args.checkpoint, "--backend", "torch",
                         "--config", args.sam2_config, "--coco-root", args.coco_root, "--coco-ann", args.coco_ann,
                         "--output", args.output, *(["--limit", str(args.limit)] if args.limit else []),
                         *(["--device", args.device] if args.device else [])])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
