"""The main job in a few minutes on a laptop CPU: what nanosam2 does, on bundled inputs.

``python -m trt_runtime.demo`` builds one student (RANDOM weights unless ``--checkpoint``: the
masks are then meaningless, the timings are real) and, on the backend that needs no export step
(PyTorch, on the GPU when there is one), runs

1. a click on the bundled image (``overlay.png``, ``mask.png``),
2. segment everything on it (``everything.png``; SAM2AutomaticMaskGenerator's parameters, a
   ``--points-per-side`` grid),
3. tracking of two objects through a short bundled clip of moving shapes (``track/``: masks,
   ``overlay.mp4`` when PyAV is installed, ``track.json``),

then prints one timing table. ``benchmarks/run_all.sh`` compares every backend and precision.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from nanosam2 import contract as C
from nanosam2.images import read_rgb
from nanosam2.samples import SAMPLE_IMAGE, default_prompts, sample_image_path, write_jpeg_folder
from nanosam2.prompts import Prompts, parse_box, parse_point
from nanosam2.utils.cli import ArgumentParser, existing_file, positive_int, run_cli, setup_logging
from nanosam2.utils.outputs import OutputFolder

logger = logging.getLogger("trt_runtime.demo")
DEMO_RECORD = "demo.json"
DEMO_FILES = ("overlay.png", "mask.png", "everything.png")
CLIP_SIZE = 512  # px of the bundled clip's frames
DEFAULT_BACKBONE = "resnet18"  # the demo's student without --backbone or --checkpoint


def build_parser() -> argparse.ArgumentParser:
    from nanosam2.modeling.backbones import list_backbones

    parser = ArgumentParser(prog="python -m trt_runtime.demo", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=list_backbones(),
                        help=f"student backbone (default: the --checkpoint's, or {DEFAULT_BACKBONE} without one)")
    parser.add_argument("--checkpoint", type=existing_file, help="nanosam2 student checkpoint (.pth); default: random weights")
    parser.add_argument("--image", type=existing_file, help=f"RGB image to segment (default: bundled {SAMPLE_IMAGE})")
    parser.add_argument("--point", type=parse_point, action="append", metavar="X,Y[,LABEL]",
                        help="click in image pixels, label 1=foreground 0=background; repeatable "
                             "(default: the image centre when no --box is given either)")
    parser.add_argument("--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="box prompt in image pixels")
    parser.add_argument("--points-per-side", type=positive_int, default=16,
                        help="segment-everything grid (default 16; SAM2's default is 32)")
    parser.add_argument("--frames", type=positive_int, default=8, help="frames of the bundled clip (default 8)")
    parser.add_argument("--image-size", type=positive_int, default=1024,
                        help="model input size (default 1024, SAM2.1's; the weights do not depend on it)")
    parser.add_argument("--output-dir", default="demo_out", help="where the pictures and track/ go (default: demo_out)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    image_path = Path(args.image) if args.image else Path(sample_image_path())
    image = read_rgb(image_path)
    height, width = image.shape[:2]
    prompts = Prompts.from_cli(args.point, [args.box] if args.box else None)
    if prompts.empty:
        prompts = Prompts.from_cli([(width / 2, height / 2, 1)], None)
    prompts.check_inside(width, height)
    out = OutputFolder(Path(args.output_dir), "demo", DEMO_RECORD, files=DEMO_FILES,
                       inputs=(image_path, args.checkpoint))
    from trt_runtime.tracking import track_outputs

    clip_prompts = _clip_prompts()
    track_out = track_outputs(out.path / "track", None, clip_prompts)  # the clip is made in a temporary folder

    model, device = _model(args)
    backbone = model.nanosam2_spec["trunk"]["backbone"]  # what runs, whatever was asked for
    from nanosam2.inference.automatic import AutomaticMaskGenerator
    from nanosam2.inference.predictor import Predictor
    from nanosam2.inference.video import VideoPredictor
    from nanosam2.inference.torch_runner import TorchRunner

    runners = {g: TorchRunner(graph=g, model=model, device=device)
               for g in (C.ENCODER, C.DECODER, C.MEMORY_ATTENTION, C.MEMORY_ENCODER)}
    rows: list[tuple[str, str, float]] = []
    predictor = Predictor(runners[C.ENCODER], runners[C.DECODER])
    start = time.perf_counter()
    predictor.set_image(image)
    encoded = time.perf_counter()
    masks, scores, _ = predictor.predict(prompts.points if len(prompts.points) else None,
                                         prompts.labels if len(prompts.points) else None,
                                         prompts.boxes[0] if len(prompts.boxes) else None, multimask_output=True)
    decoded = time.perf_counter()
    best = int(np.argmax(scores))
    rows += [("click", "set_image: preprocess + image encoder", 1000 * (encoded - start)),
             ("click", "predict: prompt encoder + mask decoder + upsampling", 1000 * (decoded - encoded))]

    generator = AutomaticMaskGenerator(predictor, points_per_side=args.points_per_side, output_mode="binary_mask")
    start = time.perf_counter()
    records = generator.generate(image)
    rows.append(("everything", f"{generator.prompts_decoded} point prompts -> {len(records)} masks",
                 1000 * (time.perf_counter() - start)))

    from nanosam2.viz import masks_overlay, overlay

    with out.staging() as stage:
        overlay(image, masks[best][None] > 0, prompts.points, prompts.labels, prompts.boxes).save(
            stage / "overlay.png", format="PNG")
        Image.fromarray((masks[best] > 0).astype(np.uint8) * 255).save(stage / "mask.png", format="PNG")
        ordered = sorted(records, key=lambda r: -r["area"])
        masks_overlay(image, (r["segmentation"] for r in ordered)).save(stage / "everything.png", format="PNG")
        with tempfile.TemporaryDirectory(prefix="nanosam2-clip-") as clip:
            from trt_runtime.tracking import track_video

            write_jpeg_folder(Path(clip), args.frames, CLIP_SIZE, CLIP_SIZE)
            tracker = VideoPredictor(*runners.values())
            with_overlay = _has_pyav()
            result = track_video(tracker, clip, clip_prompts, track_out, overlay=with_overlay, fps=8)
        rows.append(("track", f"{len(result.objects)} objects, {result.frames} frames of {CLIP_SIZE}x{CLIP_SIZE}: "
                              "per frame", 1000 * result.seconds / max(result.frames, 1)))
        out.publish(stage, {"image": str(image_path), "backbone": backbone, "checkpoint": args.checkpoint,
                            "device": str(device), "points": prompts.points.tolist(), "boxes": prompts.boxes.tolist(),
                            "scores": np.asarray(scores).tolist(), "best": best, "everything_masks": len(records),
                            "timings_ms": {f"{step}: {what}": ms for step, what, ms in rows}})
    print(f"\nnanosam2 demo: {backbone}, PyTorch on {device}, image {image_path.name} ({width}x{height}), "
          f"model input {args.image_size} px")
    print("| step | what | ms |\n| --- | --- | --- |")
    for step, what, ms in rows:
        print(f"| {step} | {what} | {ms:.0f} |")
    print(f"wrote {', '.join(DEMO_FILES)} and {DEMO_RECORD} to {out.path}; masks"
          f"{', overlay.mp4' if with_overlay else ''} and track.json to {track_out.path}"
          + ("" if with_overlay else " (no overlay.mp4: pip install 'nanosam2[video]')"))
    return 0


def _clip_prompts() -> list[dict[str, Any]]:
    from nanosam2.inference.video_prompts import parse_prompts

    return parse_prompts(default_prompts(CLIP_SIZE, CLIP_SIZE), Path("."), "the bundled clip's prompts")


def _model(args: argparse.Namespace) -> tuple[Any, Any]:
    from nanosam2.build import build_nanosam2, student_config_name
    from nanosam2.utils.torch_device import resolve_device

    if args.checkpoint is None:
        print(f"*** nanosam2 demo: {args.backbone or DEFAULT_BACKBONE} student with RANDOM WEIGHTS (no --checkpoint): "
              "the masks are meaningless, the timings are real ***")
    device = resolve_device(args.device)
    # a --backbone given with a --checkpoint must match it (the build names both when not)
    backbone = args.backbone or (None if args.checkpoint else DEFAULT_BACKBONE)
    config = student_config_name(backbone) if backbone else None
    model = build_nanosam2(config, checkpoint=args.checkpoint, device=str(device), image_size=args.image_size)
    return model, device


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
