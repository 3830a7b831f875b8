"""The main job on an embedded default: segment the bundled sample image with a student.

``python -m nanosam2.demo`` builds the resnet18 student (RANDOM weights unless
``--checkpoint`` is given: the masks are then meaningless but the timings are real), runs it
through Meta's SAM2 image predictor and writes the mask overlay.
"""

from __future__ import annotations

import argparse
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from nanosam2.images import read_rgb
from nanosam2.prompts import Prompts, parse_box, parse_point
from nanosam2.utils.outputs import OutputFolder
from nanosam2.utils.cli import ArgumentParser, existing_file, run_cli, setup_logging

logger = logging.getLogger("nanosam2.demo")

SAMPLE_IMAGE = "grace_hopper.jpg"


def sample_image_path() -> Path:
    """The bundled public-domain sample image (see nanosam2/assets/README.md)."""
    return Path(str(resources.files("nanosam2") / "assets" / SAMPLE_IMAGE))


def build_parser() -> argparse.ArgumentParser:
    from nanosam2.modeling.backbones import list_backbones

    parser = ArgumentParser(prog="python -m nanosam2.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18", choices=list_backbones(),
                        help="student backbone when no --checkpoint is given (default: resnet18)")
    parser.add_argument("--checkpoint", type=existing_file, help="nanosam2 student checkpoint (.pth); default: random weights")
    parser.add_argument("--image", type=existing_file, help=f"RGB image to segment (default: bundled {SAMPLE_IMAGE})")
    parser.add_argument("--point", type=parse_point, action="append", metavar="X,Y[,LABEL]",
                        help="point prompt in image pixels, label 1=foreground 0=background; repeatable "
                             "(default: the image centre when no --box is given either)")
    parser.add_argument("--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="box prompt in image pixels")
    parser.add_argument("--output-dir", default="demo_out", help="where overlay.png and mask.png go (default: demo_out)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    import torch

    from nanosam2.build import build_nanosam2, student_config_name
    from nanosam2.predictor import NanoSam2Predictor

    image_path = args.image or sample_image_path()
    out = OutputFolder(Path(args.output_dir), "demo", "demo.json", files=("overlay.png", "mask.png"),
                       inputs=(image_path, args.checkpoint))
    image = read_rgb(image_path)
    height, width = image.shape[:2]
    prompts = Prompts.from_cli(args.point, [args.box] if args.box else None)
    if prompts.empty:
        prompts = Prompts.from_cli([(width / 2, height / 2, 1)], None)
    prompts.check_inside(width, height)

    if args.checkpoint is None:
        print(f"*** nanosam2 demo: {args.backbone} student with RANDOM WEIGHTS (no --checkpoint): "
              "the masks are meaningless, the timings are real ***")
    config = None if args.checkpoint else student_config_name(args.backbone)
    from nanosam2.utils.torch_device import resolve_device

    model = build_nanosam2(config, checkpoint=args.checkpoint, device=str(resolve_device(args.device)))
    predictor = NanoSam2Predictor(model)
    device = next(model.parameters()).device

    def synchronized() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    start = synchronized()
    predictor.set_image(image)
    encoded = synchronized()
    masks, scores, _ = predictor.predict(
        points=prompts.points if len(prompts.points) else None,
        labels=prompts.labels if len(prompts.points) else None,
        box=prompts.boxes[0] if len(prompts.boxes) else None,
        multimask_output=True,
    )
    decoded = synchronized()
    best = int(np.argmax(scores))
    mask = masks[best] > 0

    with out.staging() as stage:
        overlay_image(image, mask, prompts).save(stage / "overlay.png", format="PNG")
        Image.fromarray(mask.astype(np.uint8) * 255).save(stage / "mask.png", format="PNG")
        out.publish(stage, {"image": str(image_path), "backbone": args.backbone, "checkpoint": args.checkpoint,
                            "points": prompts.points.tolist(), "boxes": prompts.boxes.tolist(),
                            "scores": np.asarray(scores).tolist(), "best": best})
    print(f"image {image_path} ({width}x{height}) on {device}")
    print(f"set_image (preprocess + encoder): {1000 * (encoded - start):.1f} ms; "
          f"predict (prompt encoder + decoder + upsampling): {1000 * (decoded - encoded):.1f} ms")
    print(f"scores {np.round(scores, 3).tolist()}; best mask {best}: {int(mask.sum())} px")
    print(f"wrote {out.path / 'overlay.png'}, {out.path / 'mask.png'} and demo.json")
    return 0


def overlay_image(image: np.ndarray, mask: np.ndarray, prompts: Prompts) -> Image.Image:
    from nanosam2.viz import overlay

    return overlay(image, mask[None], prompts.points, prompts.labels, prompts.boxes)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
