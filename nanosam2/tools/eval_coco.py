"""Seed-compatible COCO evaluation: ``python nanosam2/tools/eval_coco.py --checkpoint CKPT
--sam2_config CONFIG --output results.json --coco_root DIR --coco_ann FILE``.

``--sam2_config`` is a nanosam2 student config (``nanosam2.1_resnet18``) or a SAM2.1 teacher
config (``sam2.1_hiera_s``). Runs the same loop as ``python -m trt_runtime eval-coco`` (one
``evaluate_coco``) over the PyTorch graphs, so the numbers compare with every backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_output_file
from nanosam2.utils.cli import ArgumentParser, existing_file, positive_int, run_cli, setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="nanosam2/tools/eval_coco.py", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=existing_file, help="student or Meta SAM2.1 checkpoint")
    parser.add_argument("--sam2_config", required=True, help="nanosam2.1_<backbone> or sam2.1_hiera_{t,s,b+,l}")
    parser.add_argument("--output", required=True, help="results JSON (resumed if it holds this model's results)")
    parser.add_argument("--coco_root", required=True, help="COCO val2017 image folder")
    parser.add_argument("--coco_ann", required=True, type=existing_file, help="instances_val2017.json")
    parser.add_argument("--limit", type=positive_int, help="only the first N annotated images")
    parser.add_argument("--device", help="torch device (default: cuda if available)")
    args = parser.parse_args(argv)
    setup_logging()
    from nanosam2 import contract as C
    from nanosam2.evaluation.coco_eval import evaluate_coco
    from nanosam2.evaluation.coco_metrics import summarize
    from nanosam2.inference.predictor import Predictor
    from nanosam2.inference.torch_runner import TorchRunner

    if not Path(args.coco_root).is_dir():
        raise NanoSam2Error(f"no such COCO image folder: {args.coco_root}")
    check_output_file(args.output, inputs=[args.coco_ann, args.checkpoint], what="--output")
    runners = [TorchRunner(args.checkpoint, graph, config=args.sam2_config, device=args.device)
               for graph in (C.ENCODER, C.DECODER)]
    with Predictor(*runners) as predictor:
        records, stats = evaluate_coco(predictor, args.coco_root, args.coco_ann, args.output, args.limit)
    print(f"evaluated {stats.images} images, {stats.annotations} annotations in {stats.seconds:.1f} s; "
          f"{len(records)} records in {args.output}")
    print(summarize(records).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
