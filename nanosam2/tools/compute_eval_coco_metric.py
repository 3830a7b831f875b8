"""Seed-compatible metric: ``python nanosam2/tools/compute_eval_coco_metric.py results.json
[--size all|small|medium|large] [--category_id N]`` prints the mean IoU.

Size buckets follow COCO's half-open convention (the seed counted areas of exactly 32² and
96² in two buckets).
"""

from __future__ import annotations

from typing import Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.evaluation.coco_metrics import SIZES, load_results, mean_iou, select
from nanosam2.utils.cli import ArgumentParser, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="nanosam2/tools/compute_eval_coco_metric.py", description=__doc__)
    parser.add_argument("results", help="results JSON written by eval_coco.py")
    parser.add_argument("--size", default="all", choices=SIZES, help="COCO size bucket (default all)")
    parser.add_argument("--category_id", type=int, help="only this category")
    args = parser.parse_args(argv)
    chosen = select(load_results(args.results), args.size, args.category_id)
    if not chosen:
        raise NanoSam2Error(f"no records for size={args.size}")
    print(f"mIoU {args.size}: {mean_iou(chosen):.4f} ({len(chosen)} annotations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
