"""Command line of the runtime: predict on an image, evaluate on COCO, compute the metric.

    python -m trt_runtime predict --encoder E --decoder D --image IMG [--point X,Y[,LABEL] ...]
                                  [--box X0,Y0,X1,Y1 ...] [--multimask] --output OUT_DIR
    python -m trt_runtime eval-coco --coco-root DIR --coco-ann FILE --encoder E --decoder D
                                    [--limit N] --output results.json
    python -m trt_runtime coco-metric results.json [--size all|small|medium|large] [--category-id N]
    python -m trt_runtime everything --encoder E --decoder D --image IMG [--points-per-side N] ... --output OUT_DIR
    python -m trt_runtime track --model-dir DIR --video PATH (--prompts prompts.json | --point X,Y[,L] | --box ...)
                                [--fill-hole-area N] [--max-memory-frames N] --output OUT_DIR
    python -m trt_runtime eval-vos --model-dir DIR --images JPEGImages --annotations Annotations
                                   [--later-objects] [--sequences A,B] [--limit N] --output PRED_DIR
    python -m trt_runtime vos-metric GT_DIR PRED_DIR [--csv FILE]     (J&F, J, F with vos-benchmark)

Runs on a Jetson with numpy, pillow, tensorrt and cuda-python only (TensorRT engines).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from nanosam2.errors import NanoSam2Error
from nanosam2.images import read_rgb
from nanosam2.prompts import Prompts, parse_box, parse_point
from nanosam2.utils.atomic import check_output_file
from nanosam2.utils.outputs import OutputFolder
from nanosam2.utils.cli import ArgumentParser, non_negative_float, non_negative_int, positive_int, setup_logging

logger = logging.getLogger("trt_runtime")


def build_parser() -> argparse.ArgumentParser:
    from nanosam2.evaluation.coco_metrics import SIZES
    from nanosam2.inference.automatic import MAX_PROMPTS
    from nanosam2.inference.factory import add_backend_arguments

    parser = ArgumentParser(prog="python -m trt_runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser("predict", help="segment one image with point/box prompts")
    add_backend_arguments(predict)
    predict.add_argument("--image", required=True, help="RGB image file")
    predict.add_argument("--point", type=parse_point, action="append", metavar="X,Y[,LABEL]",
                         help="point in image pixels, LABEL 1 foreground (default) or 0 background; repeatable")
    predict.add_argument("--box", type=parse_box, action="append", metavar="X0,Y0,X1,Y1",
                         help="box in image pixels; repeat for a batch of boxes (points are shared by every box)")
    predict.add_argument("--multimask", action="store_true",
                         help="return SAM2's three masks per prompt (default: one, with SAM2's stability fallback)")
    predict.add_argument("--output", required=True, help="folder for mask_P_C.png, overlay.png and predict.json")
    predict.add_argument("--runs", type=positive_int, default=1,
                         help="repeat the prediction N times and report the median timings")

    evaluate = sub.add_parser("eval-coco", help="box-prompt mIoU on COCO (seed/nanosam protocol)")
    add_backend_arguments(evaluate)
    evaluate.add_argument("--coco-root", required=True, help="folder of the images (e.g. coco/val2017)")
    evaluate.add_argument("--coco-ann", required=True, help="instances JSON (e.g. annotations/instances_val2017.json)")
    evaluate.add_argument("--limit", type=positive_int, help="evaluate only the first N annotated images (sorted ids)")
    evaluate.add_argument("--output", required=True,
                          help="results JSON (resumed if it holds results of this same model and annotation file)")
    evaluate.add_argument("--no-resume", action="store_true", help="start over, replacing --output")

    everything = sub.add_parser("everything", help="segment everything: automatic masks for a whole image "
                                                   "(SAM2AutomaticMaskGenerator's parameters and defaults)")
    add_backend_arguments(everything)
    everything.add_argument("--image", required=True, help="RGB image file")
    everything.add_argument("--output", required=True, help="folder for masks.json (COCO RLE records) and overlay.png")
    everything.add_argument("--points-per-side", type=positive_int, default=32, help="grid points per side (default 32)")
    everything.add_argument("--points-per-batch", type=positive_int,
                            help="points per decoder call (default: the decoder's largest batch, else 64)")
    everything.add_argument("--pred-iou-thresh", type=non_negative_float, default=0.8, help="default 0.8")
    everything.add_argument("--stability-score-thresh", type=non_negative_float, default=0.95, help="default 0.95")
    everything.add_argument("--stability-score-offset", type=non_negative_float, default=1.0, help="default 1.0")
    everything.add_argument("--box-nms-thresh", type=non_negative_float, default=0.7, help="default 0.7")
    everything.add_argument("--crop-n-layers", type=non_negative_int, default=0, help="default 0 (no crops)")
    everything.add_argument("--crop-nms-thresh", type=non_negative_float, default=0.7, help="default 0.7")
    everything.add_argument("--crop-overlap-ratio", type=non_negative_float, default=512 / 1500,
                            help="in [0, 1) (default 512/1500)")
    everything.add_argument("--crop-n-points-downscale-factor", type=positive_int, default=1, help="default 1")
    everything.add_argument("--min-mask-region-area", type=non_negative_int, default=0,
                            help="remove holes and islands of at most this many low-res pixels (default 0: off; "
                                 "needs scipy: pip install 'nanosam2[masks]')")
    everything.add_argument("--single-mask", action="store_true", help="one mask per point instead of SAM2's three")
    everything.add_argument("--max-prompts", type=positive_int, default=MAX_PROMPTS,
                            help=f"refuse grids that decode more point prompts than this (default {MAX_PROMPTS:,}; "
                                 "grids of 8192 or more show a progress bar)")

    track = sub.add_parser("track", help="track objects through a video (SAM2.1's memory; JPEG folder, video "
                                         "file or camera:N)")
    add_video_model_arguments(track)
    track.add_argument("--video", required=True, help="folder of <index>.jpg frames, a video file, or camera:N")
    track.add_argument("--prompts", help='JSON list of {"frame", "obj_id", "points"+"labels" | "box" | "mask": "x.png"}')
    track.add_argument("--point", type=parse_point, action="append", metavar="X,Y[,LABEL]",
                       help="a click on frame 0 for object 1 (shortcut for --prompts); repeatable")
    track.add_argument("--box", type=parse_box, action="append", metavar="X0,Y0,X1,Y1",
                       help="a box on frame 0; repeat for several objects (ids 1, 2, ... in order)")
    add_tracker_arguments(track, "video-predictor")
    track.add_argument("--stream", action="store_true",
                       help="read the video once, in order, with bounded memory (long videos; a camera always "
                            "streams): each prompt acts from its frame on, nothing is tracked backwards")
    track.add_argument("--max-frames", type=positive_int,
                       help="stream the first N frames (a camera: stop after N frames, else at Ctrl-C)")
    track.add_argument("--fps", type=positive_int, default=30, help="frame rate of overlay.mp4 (default 30)")
    track.add_argument("--no-overlay", action="store_true", help="write the masks only, not overlay.mp4")
    track.add_argument("--output", required=True, help="folder for masks/<obj_id>/<frame>.png, overlay.mp4, track.json")

    vos = sub.add_parser("eval-vos", help="semi-supervised video object segmentation on a DAVIS-layout set "
                                          "(Meta's vos_inference protocol); score it with vos-metric")
    add_video_model_arguments(vos)
    vos.add_argument("--dataset", help="a folder holding JPEGImages/ and Annotations/ (or give both below)")
    vos.add_argument("--images", help="frame folders: IMAGES/<sequence>/<frame>.jpg (DAVIS: JPEGImages/480p)")
    vos.add_argument("--annotations", help="ANNOTATIONS/<sequence>/<frame>.png palette masks, or SA-V's "
                                           "<sequence>/<obj>/<frame>.png (DAVIS: Annotations/480p)")
    vos.add_argument("--later-objects", action="store_true",
                     help="objects join on the first frame they appear (YouTube-VOS, LVOS; Meta's "
                          "--track_object_appearing_later_in_video); default: every object on the first frame "
                          "(DAVIS, MOSE, SA-V)")
    vos.add_argument("--sequences", type=parse_names, help="comma-separated sequence names (default: every one)")
    vos.add_argument("--limit", type=positive_int, help="only the first N sequences (sorted names)")
    add_tracker_arguments(vos, None)
    vos.add_argument("--output", required=True, help="PRED_DIR/<sequence>/<frame>.png and eval-vos.json (resumed "
                                                     "if it holds this model's and protocol's results)")
    vos.add_argument("--no-resume", action="store_true", help="start over, replacing an earlier eval-vos run's results")

    jf = sub.add_parser("vos-metric", help="J&F, J and F (percent) of eval-vos results, computed with vos-benchmark")
    jf.add_argument("gt", help="the annotations (ANNOTATIONS/<sequence>/..., or a folder holding Annotations/)")
    jf.add_argument("predictions", help="PRED_DIR/<sequence>/<frame>.png (eval-vos's --output)")
    jf.add_argument("--sequences", type=parse_names, help="comma-separated sequence names (default: every one)")
    jf.add_argument("--predicted-only", action="store_true",
                    help="score the sequences PRED_DIR has (default: every ground-truth sequence must be predicted)")
    jf.add_argument("--keep-first-and-last", action="store_true",
                    help="also score the first and last annotated frame (not the DAVIS / SA-V convention)")
    jf.add_argument("--csv", help="per-sequence, per-object table (default PRED_DIR/vos-metric.csv)")

    metric = sub.add_parser("coco-metric", help="mean IoU of a results file by size bucket")
    metric.add_argument("results", help="results JSON written by eval-coco")
    metric.add_argument("--size", default="all", choices=SIZES, help="COCO size bucket (default all)")
    metric.add_argument("--category-id", type=int, help="only this COCO category id")
    return parser


def add_video_model_arguments(parser: argparse.ArgumentParser) -> None:
    from nanosam2.inference.factory import add_backend_arguments

    parser.add_argument("--model-dir", help="an export folder (python -m export.onnx), a folder of engines built from "
                                            "it, or a .pt/.pth checkpoint (PyTorch); --encoder/--decoder/"
                                            "--memory-attention/--memory-encoder override a graph")
    add_backend_arguments(parser, graphs_required=False)
    parser.add_argument("--memory-attention", help="memory attention graph (.onnx or .engine)")
    parser.add_argument("--memory-encoder", help="memory encoder graph (.onnx or .engine)")


def add_tracker_arguments(parser: argparse.ArgumentParser, default_preset: str | None) -> None:
    """The tracker's semantics (``tracker_config``): a preset of Meta's (``track``), or Meta's VOS evaluation
    (``eval-vos``, no choice), and the two knobs a user may turn."""
    from nanosam2.inference.tracker_config import PRESETS

    if default_preset is not None:
        parser.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                            help="SAM2 semantics: video-predictor (Meta's build_sam2_video_predictor defaults: clicked "
                                 "frames enter the memory binarised, holes up to 8 px filled, objects may overlap; "
                                 "default) or vos-inference (Meta's VOS evaluation: no post-processing, objects do not "
                                 "overlap)")
    parser.add_argument("--fill-hole-area", type=non_negative_int,
                        help="fill background holes up to N low-res pixels in each mask (SAM2's fill_hole_area; "
                             "default: the preset's, 8 for video-predictor (with scipy, else skipped as Meta skips it "
                             "without its CUDA extension), 0 for eval-vos)")
    parser.add_argument("--max-memory-frames", type=non_negative_int,
                        help="recent frames in the memory (SAM2: num_maskmem - 1 = 6): fewer is faster")


def tracker_config_from_args(args: argparse.Namespace, base: Any) -> Any:
    """The preset with the user's knobs; an explicit --fill-hole-area needs SciPy (the preset's default is
    skipped without it, as Meta skips it without its CUDA extension)."""
    changes: dict = {}
    if args.fill_hole_area is not None:
        if args.fill_hole_area:
            from nanosam2.utils.lazy_import import require

            require("scipy.ndimage", "--fill-hole-area")
        changes["fill_hole_area"] = args.fill_hole_area
    if args.max_memory_frames is not None:
        changes["memory_frames"] = args.max_memory_frames
    return base.replace(**changes)


def parse_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def video_graph_paths(args: argparse.Namespace) -> dict[str, str | Path]:
    """The four graphs of a tracker: --model-dir (an export or engine folder, or one checkpoint for all
    four), each overridden by its own flag."""
    from nanosam2 import contract as C
    from nanosam2.inference.factory import find_graphs

    if args.preprocess or args.postprocess:
        raise NanoSam2Error(f"{args.command} does not use --preprocess/--postprocess graphs (its frames are prepared "
                            "on the host); leave them out")
    flags = {C.ENCODER: args.encoder, C.DECODER: args.decoder, C.MEMORY_ATTENTION: args.memory_attention,
             C.MEMORY_ENCODER: args.memory_encoder}
    missing = tuple(graph for graph, path in flags.items() if not path)
    if missing and not args.model_dir:
        raise NanoSam2Error("give --model-dir (an export folder or a checkpoint), or all of --encoder, --decoder, "
                            "--memory-attention and --memory-encoder")
    found: dict[str, str | Path] = {}
    if missing and Path(args.model_dir).is_file():
        found = {graph: args.model_dir for graph in missing}  # a checkpoint runs every graph (PyTorch)
    elif missing:
        found = dict(find_graphs(args.model_dir, missing))
    return {**found, **{graph: path for graph, path in flags.items() if path}}


PREDICT_RECORD = "predict.json"


def run_predict(args: argparse.Namespace) -> int:
    from nanosam2.viz import overlay
    from nanosam2.inference.factory import load_predictor, options_from_args

    image = read_rgb(args.image)
    height, width = image.shape[:2]
    prompts = Prompts.from_cli(args.point, args.box)
    if prompts.empty:
        raise NanoSam2Error("give at least one --point or --box")
    prompts.check_inside(width, height)
    planes = 3 if args.multimask else 1
    mask_names = [f"mask_{p}_{c}.png" for p in range(max(len(prompts.boxes), 1)) for c in range(planes)]
    out = OutputFolder(Path(args.output), "predict", PREDICT_RECORD, files=(*mask_names, "overlay.png"),
                       inputs=(args.image, args.encoder, args.decoder, args.preprocess, args.postprocess))
    with load_predictor(args.encoder, args.decoder, options_from_args(args), args.preprocess,
                        args.postprocess) as predictor:
        stage_runs: list[dict[str, float]] = []
        for _ in range(args.runs):
            predictor.set_image(image)
            decoder_prompts = predictor.build_prompts(prompts.points if len(prompts.points) else None,
                                                      prompts.labels if len(prompts.points) else None,
                                                      prompts.boxes if len(prompts.boxes) else None)
            result = predictor.predict_prompts(decoder_prompts, multimask_output=args.multimask)
            stage_runs.append(dict(result.timings))
        identity = predictor.identity()
    best = np.argmax(result.scores, axis=1)
    chosen = result.masks[np.arange(len(best)), best]
    masks = {f"mask_{p}_{c}.png": result.masks[p, c] for p in range(result.masks.shape[0])
             for c in range(result.masks.shape[1])}
    record = {"image": str(args.image), "points": prompts.points.tolist(), "labels": prompts.labels.tolist(),
              "boxes": prompts.boxes.tolist(), "multimask": args.multimask, "scores": result.scores.tolist(),
              "best": best.tolist(), "model": identity}
    if sorted(masks) != sorted(mask_names):
        raise NanoSam2Error(f"internal: predict made {len(masks)} masks, {len(mask_names)} expected")
    with out.staging() as stage:  # all of them, or none; an earlier predict's extra masks are removed
        for name, plane in masks.items():
            Image.fromarray(plane.astype(np.uint8) * 255).save(stage / name, format="PNG")
        overlay(image, chosen, prompts.points, prompts.labels, prompts.boxes).save(stage / "overlay.png", format="PNG")
        out.publish(stage, record)
    for p, (scores, b) in enumerate(zip(result.scores, best)):
        print(f"prompt {p}: scores {np.round(scores, 4).tolist()} best {int(b)} ({int(chosen[p].sum())} px)")
    median = {k: float(np.median([r[k] for r in stage_runs])) for k in stage_runs[0]}
    print(timing_line(f"timings (ms, median of {len(stage_runs)})", median))
    print(f"wrote {len(masks)} masks, overlay.png and {PREDICT_RECORD} to {out.path}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from nanosam2.evaluation.coco_eval import evaluate_coco
    from nanosam2.evaluation.coco_metrics import summarize
    from nanosam2.inference.factory import load_predictor, options_from_args

    if not Path(args.coco_root).is_dir():
        raise NanoSam2Error(f"no such COCO image folder: {args.coco_root}")
    if not Path(args.coco_ann).is_file():
        raise NanoSam2Error(f"no such COCO annotation file: {args.coco_ann}")
    check_output_file(args.output, inputs=[args.coco_ann, args.encoder, args.decoder, args.preprocess, args.postprocess],
                      what="--output")
    with load_predictor(args.encoder, args.decoder, options_from_args(args), args.preprocess,
                        args.postprocess) as predictor:
        records, stats = evaluate_coco(predictor, args.coco_root, args.coco_ann, args.output, args.limit,
                                       resume=not args.no_resume)
    print(f"evaluated {stats.images} images, {stats.annotations} annotations in {stats.seconds:.1f} s "
          f"({stats.annotations_per_second:.2f} annotations/s); {len(records)} records in {args.output}")
    print(summarize(records).table())
    return 0


EVERYTHING_FILES = ("masks.json", "overlay.png")  # COCO RLE records and the picture
EVERYTHING_RECORD = "everything.json"  # what produced them


def run_everything(args: argparse.Namespace) -> int:
    from nanosam2.inference.automatic import AutomaticMaskGenerator, check_crops, check_parameters
    from nanosam2.masks import rle_to_coco, rle_to_mask
    from nanosam2.viz import masks_overlay
    from nanosam2.inference.factory import load_predictor, options_from_args

    params = {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch,
              "pred_iou_thresh": args.pred_iou_thresh, "stability_score_thresh": args.stability_score_thresh,
              "stability_score_offset": args.stability_score_offset, "box_nms_thresh": args.box_nms_thresh,
              "crop_n_layers": args.crop_n_layers, "crop_nms_thresh": args.crop_nms_thresh,
              "crop_overlap_ratio": args.crop_overlap_ratio,
              "crop_n_points_downscale_factor": args.crop_n_points_downscale_factor,
              "min_mask_region_area": args.min_mask_region_area}
    check_parameters(**params, output_mode="uncompressed_rle", max_prompts=args.max_prompts)
    if args.min_mask_region_area:
        from nanosam2.utils.lazy_import import require

        require("scipy.ndimage", "--min-mask-region-area")
    image = read_rgb(args.image)
    try:
        check_crops(image.shape[:2], args.crop_n_layers, args.crop_overlap_ratio)
    except NanoSam2Error as exc:
        raise NanoSam2Error(f"{args.image}: {exc}") from None
    out = OutputFolder(Path(args.output), "everything", EVERYTHING_RECORD, files=EVERYTHING_FILES,
                       inputs=(args.image, args.encoder, args.decoder, args.preprocess, args.postprocess))
    with load_predictor(args.encoder, args.decoder, options_from_args(args), args.preprocess,
                        args.postprocess) as predictor:
        generator = AutomaticMaskGenerator(predictor, **params, output_mode="uncompressed_rle",
                                           multimask_output=not args.single_mask, max_prompts=args.max_prompts)
        records = generator.generate(image)
        identity = predictor.identity()
    rles = [record["segmentation"] for record in records]
    for record in records:
        record["segmentation"] = rle_to_coco(record["segmentation"])
    order = sorted(range(len(rles)), key=lambda i: -records[i]["area"])  # largest first: small masks stay visible
    run = {"image": str(args.image), "parameters": params, "multimask": not args.single_mask, "masks": len(records),
           "model": identity}
    with out.staging() as stage:  # all three, or none
        (stage / "masks.json").write_text(json.dumps(records))
        masks_overlay(image, (rle_to_mask(rles[i]) for i in order)).save(stage / "overlay.png", format="PNG")
        out.publish(stage, run)
    timings = generator.timings
    print(f"{len(records)} masks from {generator.prompts_decoded} point prompts "
          f"({len(generator.point_grids)} crop layer{'s' if len(generator.point_grids) > 1 else ''})")
    print(timing_line("timings (ms)", timings))
    print(f"wrote masks.json, overlay.png and {EVERYTHING_RECORD} to {out.path}")
    return 0


def timing_line(label: str, ms: dict[str, float], total: str = "total") -> str:
    """``label: stage ms, ..., total ms`` (stage names without a ``_ms`` suffix)."""
    return (f"{label}: " + ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in ms.items())
            + f", {total} {sum(ms.values()):.1f}")


def run_track(args: argparse.Namespace) -> int:
    from nanosam2.inference.factory import load_video_predictor, options_from_args
    from trt_runtime.tracking import load_prompts, parse_prompts, track_outputs, track_video

    if args.prompts and (args.point or args.box):
        raise NanoSam2Error("give --prompts, or --point/--box for one object on frame 0, not both")
    paths = video_graph_paths(args)
    if args.prompts:
        prompts = load_prompts(args.prompts)
    elif args.point or args.box:
        boxes = args.box or [None]
        if args.point and len(boxes) > 1:
            raise NanoSam2Error("--point with several --box: which object do the points belong to? give --prompts")
        items: list[dict] = []
        for obj_id, box in enumerate(boxes, start=1):
            item: dict = {"frame": 0, "obj_id": obj_id}
            if args.point:
                item["points"] = [[x, y] for x, y, _ in args.point]
                item["labels"] = [label for _, _, label in args.point]
            if box is not None:
                item["box"] = list(box)
            items.append(item)
        if len(items) > 1:
            logger.info("%d boxes: tracked as objects 1..%d", len(items), len(items))
        prompts = parse_prompts(items, Path("."), "--point/--box")
    else:
        raise NanoSam2Error("give --prompts prompts.json, or --point / --box for one object on frame 0")
    if args.max_frames and not (args.stream or args.video.startswith("camera:")):
        raise NanoSam2Error("--max-frames goes with --stream or a camera")
    if not args.video.startswith("camera:") and not Path(args.video).exists():
        raise NanoSam2Error(f"no such video or frame folder: {args.video}")
    out = track_outputs(args.output, args.video, prompts, inputs=(args.model_dir, args.prompts, *paths.values()))
    from nanosam2.inference.tracker_config import preset

    config = tracker_config_from_args(args, preset(args.preset))
    with load_video_predictor(paths, options_from_args(args), config) as predictor:
        result = track_video(predictor, args.video, prompts, out, not args.no_overlay, args.fps, args.max_frames,
                             stream=args.stream)
    per_frame = {stage: ms / max(result.frames, 1) for stage, ms in result.timings.items()}
    print(f"tracked {len(result.objects)} object(s) through {result.frames} frames in {result.seconds:.1f} s "
          f"({result.fps:.2f} FPS, overlay and PNG writing included)")
    print(timing_line("per frame (ms)", per_frame, total="graphs total"))
    print(f"wrote masks/, {'overlay.mp4, ' if not args.no_overlay else ''}track.json to {out.path}")
    return 0


def run_eval_vos(args: argparse.Namespace) -> int:
    from nanosam2.evaluation.vos_eval import evaluate_vos, plan_vos, video_predictor_tracker
    from nanosam2.inference.factory import load_video_predictor, options_from_args

    if args.dataset and (args.images or args.annotations):
        raise NanoSam2Error("give --dataset, or --images and --annotations, not both")
    if not args.dataset and not (args.images and args.annotations):
        raise NanoSam2Error("give --dataset ROOT (JPEGImages/ and Annotations/ inside), or --images and --annotations")
    images = args.images or str(Path(args.dataset) / "JPEGImages")
    annotations = args.annotations or str(Path(args.dataset) / "Annotations")
    paths = video_graph_paths(args)
    protocol = "later-objects" if args.later_objects else "first-frame"
    plan = plan_vos(images, annotations, args.output, protocol, args.sequences, args.limit,
                    inputs=(args.model_dir, *paths.values()))
    config = tracker_config_from_args(args, plan.tracker_config())
    with load_video_predictor(paths, options_from_args(args), config) as predictor:
        identity = {"graphs": predictor.identity(), "tracker": predictor.config.record()}
        run = evaluate_vos(plan, video_predictor_tracker(predictor), identity, resume=not args.no_resume,
                           non_overlap=predictor.config.non_overlap_masks)
    print(f"tracked {len(run.evaluated)} sequence(s), {run.frames} frames in {run.seconds:.1f} s ({run.fps:.2f} FPS, "
          f"PNG writing included); {len(run.sequences)} sequence(s) in {run.output}")
    print(f"score them: python -m trt_runtime vos-metric {annotations} {run.output}")
    return 0


def run_vos_metric(args: argparse.Namespace) -> int:
    from nanosam2.evaluation.vos_metrics import score, write_csv

    scores = score(args.gt, args.predictions, args.sequences, args.predicted_only,
                   skip_first_and_last=not args.keep_first_and_last)
    path = write_csv(scores, args.csv or Path(args.predictions) / "vos-metric.csv")
    print(scores.line())
    print(f"per object: {path}")
    return 0


def run_metric(args: argparse.Namespace) -> int:
    from nanosam2.evaluation.coco_metrics import load_results, mean_iou, select

    chosen = select(load_results(args.results), args.size, args.category_id)
    if not chosen:
        raise NanoSam2Error(f"no records for size={args.size}" + (f", category {args.category_id}" if args.category_id else ""))
    print(f"mIoU {args.size}: {mean_iou(chosen):.4f} ({len(chosen)} annotations)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    commands = {"predict": run_predict, "eval-coco": run_eval, "everything": run_everything, "track": run_track,
                "eval-vos": run_eval_vos, "vos-metric": run_vos_metric, "coco-metric": run_metric}
    return commands[args.command](args)
