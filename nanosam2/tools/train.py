"""Seed-compatible training entry point: the research code's README commands keep working.

    python nanosam2/tools/train.py --images DIR --output_dir results/sam2.1_hiera_s_resnet18 \\
        --model_name resnet18 --nanosam2_config nanosam2.1_resnet18 --sam2_config sam2.1_hiera_s \\
        --checkpoint sam2_checkpoints/sam2.1_hiera_small.pt --batch_size 16 --num_epochs 100

Runs ``python -m nanosam2.train`` (use that for the full set of flags). As in the seed, a rerun
resumes from OUTPUT_DIR and the best student is ``OUTPUT_DIR/checkpoint.pth``; ``--checkpoint``
(which the seed's README passes but its script never defined) is the teacher checkpoint.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from nanosam2.distill.trainer import TrainConfig, train
from nanosam2.distill.cli import report
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import ArgumentParser, non_negative_int, positive_float, positive_int, run_cli, setup_logging

SEED_CONFIG_ALIASES = {"nanosam2.1_casvit": "casvit_s"}


def backbone_of(nanosam2_config: str, model_name: str | None) -> str:
    from nanosam2.modeling.backbones import list_backbones

    name = model_name or SEED_CONFIG_ALIASES.get(nanosam2_config, nanosam2_config.removeprefix("nanosam2.1_"))
    if name not in list_backbones():
        raise NanoSam2Error(f"unknown student {model_name or nanosam2_config!r}; known: "
                            + ", ".join(f"nanosam2.1_{b}" for b in list_backbones()))
    return name


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="nanosam2/tools/train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="SA-1B root with sa_XXXXXX/ chunk folders")
    parser.add_argument("--output_dir", required=True, help="checkpoints and logs (a rerun resumes from here)")
    parser.add_argument("--num_images", type=positive_int, help="limit the number of images (reproducible subset)")
    parser.add_argument("--num_epochs", type=positive_int, default=100, help="epochs (default 100)")
    parser.add_argument("--batch_size", type=positive_int, default=12, help="batch size (default 12)")
    parser.add_argument("--num_workers", type=non_negative_int, default=8, help="data-loader workers (default 8)")
    parser.add_argument("--learning_rate", type=positive_float, default=3e-4, help="peak learning rate (default 3e-4)")
    parser.add_argument("--log_interval", type=int, default=100, help="accepted for compatibility; every step is "
                                                                      "logged to train_log.csv")
    parser.add_argument("--teacher_checkpoint", "--checkpoint", dest="teacher_checkpoint",
                        default="sam2_checkpoints/sam2.1_hiera_large.pt", help="Meta's SAM2.1 teacher checkpoint")
    parser.add_argument("--sam2_config", default="sam2.1_hiera_l", help="teacher config (default sam2.1_hiera_l)")
    parser.add_argument("--nanosam2_config", default="nanosam2.1_casvit", help="student config, nanosam2.1_<backbone>")
    parser.add_argument("--model_name", help="student backbone (overrides the one in --nanosam2_config)")
    parser.add_argument("--loss", default="huber", choices=["huber", "l1", "mse"], help="distillation loss")
    parser.add_argument("--qat", action="store_true", help="quantization-aware training (needs --fp32_checkpoint_for_qat)")
    parser.add_argument("--fp32_checkpoint_for_qat", help="the FP32 student QAT starts from")
    parser.add_argument("--coco_root", help="COCO val2017 images (validation is skipped without it)")
    parser.add_argument("--coco_ann", help="instances_val2017.json")
    parser.add_argument("--eval_interval", type=positive_int, default=1, help="epochs between COCO evaluations")
    args = parser.parse_args(argv)
    setup_logging()
    if args.qat and not args.fp32_checkpoint_for_qat:
        raise NanoSam2Error("You must provide a FP32 checkpoint for QAT (--fp32_checkpoint_for_qat)")
    cfg = TrainConfig(
        images=args.images, output_dir=args.output_dir, backbone=backbone_of(args.nanosam2_config, args.model_name),
        teacher_config=args.sam2_config, teacher_checkpoint=args.teacher_checkpoint,
        init_checkpoint=args.fp32_checkpoint_for_qat if args.qat else None, num_images=args.num_images,
        batch_size=args.batch_size, epochs=args.num_epochs, lr=args.learning_rate, loss=args.loss,
        num_workers=args.num_workers, coco_root=args.coco_root, coco_ann=args.coco_ann, val_every=args.eval_interval,
        qat=args.qat, amp="fp32" if args.qat else "auto", resume="auto", best_name="checkpoint.pth",
    )
    report(train(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
