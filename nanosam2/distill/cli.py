"""Command-line flags of ``python -m nanosam2.train``: distillation, and with ``--qat`` quantization-aware
training (the QAT entry point lives here, above ``nanosam2.qat``, which it uses)."""

from __future__ import annotations

import argparse
from typing import Sequence

from nanosam2.data.sa1b_files import add_image_arguments, parse_chunks
from nanosam2.distill.loss import LOSSES
from nanosam2.distill.trainer import TrainConfig, TrainResult, throughput, train
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import (ArgumentParser, non_negative_float, non_negative_int, positive_float, positive_int,
                                setup_logging)


QAT_DESCRIPTION = """Quantization-aware training of a distilled student (INT8, the form TensorRT consumes).

    python -m nanosam2.train --qat --checkpoint runs/resnet18/best.pth --images data/sa1b \\
        --num-images 30000 --output-dir runs/resnet18_qat \\
        --teacher-config sam2.1_hiera_s --teacher-checkpoint sam2.1_hiera_small.pt --epochs 5

Starts from the FP32 student: folds each Conv->BatchNorm pair (as TensorRT will), freezes the
remaining BatchNorms, inserts NVIDIA Model Optimizer's INT8 fake quantizers (symmetric,
per-channel weights, per-tensor activations), calibrates them on --calib-batches SA-1B
batches, then runs the same distillation loop at --lr 1e-4. Export the result with
``python -m export.onnx --backbone NAME --checkpoint runs/resnet18_qat/best.pth``: the image
encoder becomes a Q/DQ ONNX graph for ``engines/build_engine.py --int8``.
"""

def build_parser(prog: str, description: str, qat: bool = False) -> argparse.ArgumentParser:
    from nanosam2.modeling.backbones import list_backbones

    parser = ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (SA-1B)")
    add_image_arguments(data)
    data.add_argument("--image-size", type=positive_int, default=1024, help="crop side fed to both encoders (default 1024)")
    data.add_argument("--num-workers", type=non_negative_int, default=4, help="data-loader worker processes (default 4)")

    model = parser.add_argument_group("models")
    if qat:
        model.add_argument("--checkpoint", dest="init_checkpoint", required=True,
                           help="the FP32 student to quantize (a nanosam2 checkpoint, e.g. best.pth)")
    else:
        model.add_argument("--backbone", choices=list_backbones(),
                           help="student backbone (default: resnet18, or the --init-from checkpoint's)")
        model.add_argument("--init-from", "--init-checkpoint", dest="init_checkpoint", metavar="CHECKPOINT",
                           help="continue distilling from this student: a nanosam2 checkpoint or the seed "
                                "urbste/nanosam2's (trunk names mapped); new optimizer and schedule")
        model.add_argument("--pretrained-backbone", action="store_true",
                           help="initialise the trunk with torchvision's ImageNet weights (downloads them)")
    model.add_argument("--teacher-config", default="sam2.1_hiera_s",
                       help="SAM2.1 teacher: sam2.1_hiera_t|s|b+|l (default sam2.1_hiera_s)")
    model.add_argument("--teacher-checkpoint", help="Meta's checkpoint of the teacher, e.g. sam2.1_hiera_small.pt")
    model.add_argument("--random-teacher", action="store_true",
                       help="allow a teacher with RANDOM weights (smoke tests and throughput only)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=positive_int, default=16, help="images per step and process (default 16)")
    opt.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step (default 1)")
    opt.add_argument("--epochs", type=positive_int, default=10 if not qat else 5, help="epochs (default %(default)s)")
    opt.add_argument("--lr", type=positive_float, default=1e-4 if qat else 3e-4, help="peak AdamW learning rate "
                                                                              "(default %(default)s)")
    opt.add_argument("--weight-decay", type=non_negative_float, default=0.01, help="AdamW weight decay on weights (default 0.01)")
    opt.add_argument("--warmup-steps", type=non_negative_int, help="linear warmup steps (default 5%% of all steps)")
    opt.add_argument("--min-lr-ratio", type=non_negative_float, default=0.01, help="cosine floor as a fraction of --lr (0.01)")
    opt.add_argument("--clip-grad", type=positive_float, help="clip the gradient norm to this value (default off)")
    opt.add_argument("--loss", default="huber", choices=list(LOSSES), help="feature loss (default huber)")
    opt.add_argument("--amp", default="auto" if not qat else "fp32", choices=("auto", "bf16", "fp16", "fp32"),
                     help="autocast dtype; auto = bf16 on CUDA, fp32 on CPU (default %(default)s)")
    opt.add_argument("--seed", type=int, default=0, help="seed of the subset, data order, crops and init (0)")
    if qat:
        opt.add_argument("--calib-batches", type=positive_int, default=16, help="batches that calibrate the quantizers (16)")

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", required=True, help="last.pth, best.pth, train_log.csv and val results go here")
    run.add_argument("--resume", nargs="?", const="auto",
                     help="continue bit for bit from a checkpoint (default OUTPUT_DIR/last.pth; a new run if absent)")
    run.add_argument("--overwrite", action="store_true",
                     help="start a new run in an OUTPUT_DIR that holds an earlier one, replacing its files")
    run.add_argument("--save-every", type=non_negative_int, default=0,
                     help="also write last.pth every N steps (default: per epoch)")
    run.add_argument("--stop-after-steps", type=positive_int, help="stop (and save last.pth) after N steps of this run, "
                                                         "e.g. to fit a job's time limit; --resume continues")
    run.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available; torchrun: cuda:LOCAL_RANK)")
    run.add_argument("--tensorboard", action="store_true", help="also log to OUTPUT_DIR/tensorboard")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--verbose", action="store_true", help="debug logging")

    val = parser.add_argument_group("COCO validation (optional)")
    val.add_argument("--coco-root", help="COCO val2017 image folder")
    val.add_argument("--coco-ann", help="instances_val2017.json")
    val.add_argument("--val-limit", type=non_negative_int, default=200, help="images per validation (default 200; 0 = all)")
    val.add_argument("--val-every", type=positive_int, default=1, help="validate every N epochs (default 1, and the last)")
    return parser


def config_from_args(args: argparse.Namespace, qat: bool = False) -> TrainConfig:
    if args.teacher_checkpoint is None and not args.random_teacher:
        raise NanoSam2Error("--teacher-checkpoint is required (Meta's sam2.1_hiera_*.pt); "
                            "--random-teacher runs with a random one for smoke tests")
    return TrainConfig(
        images=args.images, output_dir=args.output_dir, backbone=getattr(args, "backbone", None),
        teacher_config=args.teacher_config, teacher_checkpoint=args.teacher_checkpoint,
        init_checkpoint=args.init_checkpoint, pretrained_backbone=getattr(args, "pretrained_backbone", False),
        chunks=parse_chunks(args.chunks), num_images=args.num_images, image_size=args.image_size,
        batch_size=args.batch_size, grad_accum=args.grad_accum, epochs=args.epochs, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, min_lr_ratio=args.min_lr_ratio,
        clip_grad=args.clip_grad, loss=args.loss, amp=args.amp, num_workers=args.num_workers, seed=args.seed,
        save_every=args.save_every, stop_after_steps=args.stop_after_steps, resume=args.resume,
        coco_root=args.coco_root, coco_ann=args.coco_ann, val_limit=args.val_limit or None, val_every=args.val_every,
        tensorboard=args.tensorboard, device=args.device, qat=qat, calib_batches=getattr(args, "calib_batches", 16),
        progress=not args.no_progress, overwrite=args.overwrite,
    )


def run_training(argv: Sequence[str] | None, prog: str, description: str, qat: bool = False) -> int:
    args = build_parser(prog, description, qat).parse_args(argv)
    setup_logging(args.verbose)
    result = train(config_from_args(args, qat))
    report(result)
    return 0


def report(result: TrainResult) -> None:
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return
    state = "stopped (resume with --resume)" if result.stopped_early else "finished"
    print(f"{state} after {result.global_step} steps; {throughput(result.images_per_s)}; last: {result.last}"
          + (f"; best: {result.best}" if result.best else ""))
