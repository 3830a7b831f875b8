"""The image commands of ``python -m trt_runtime``: each owns its parser and its run.

    predict --encoder E --decoder D --image IMG [--point X,Y[,LABEL] ...] [--box X0,Y0,X1,Y1 ...] --output OUT
    everything --encoder E --decoder D --image IMG [--points-per-side N] ... --output OUT
    eval-coco --coco-root DIR --coco-ann FILE --encoder E --decoder D [--limit N] --output results.json
    coco-metric results.json [--size all|small|medium|large] [--category-id N]

The graph flags come from the table of graphs (``--encoder``, ``--decoder``, ``--preprocess``, ``--postprocess``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.images import read_rgb
from nanosam2.prompts import Prompts, parse_box, parse_point
from nanosam2.utils.atomic import check_output_file
from nanosam2.utils.cli import non_negative_float, non_negative_int, positive_int
from nanosam2.utils.outputs import OutputFolder
from nanosam2.utils.timing import timing_line

IMAGE_REQUIRED = (C.ENCODER, C.DECODER)  # pre/post-processing graphs are optional


def image_graph_paths(args: argparse.Namespace) -> dict[str, str]:
    """The image graphs given ({} with --server: the server has its own); --encoder and --decoder otherwise."""
    from nanosam2.inference.factory import graph_paths

    paths = graph_paths(args, C.IMAGE_GRAPHS)
    if args.server:
        if paths:
            raise NanoSam2Error(f"--server runs the server's graphs: drop {', '.join(C.GRAPH_SPECS[g].flag for g in paths)}")
        return paths
    missing = [C.GRAPH_SPECS[g].flag for g in IMAGE_REQUIRED if g not in paths]
    if missing:
        raise NanoSam2Error(f"give {' and '.join(missing)} (or --server URL)")
    return paths


def open_image_predictor(args: argparse.Namespace, paths: dict[str, str]) -> Any:
    """The predictor a command runs: a server's (--server) or one over the graphs here."""
    if args.server:
        from trt_runtime.serving.client import RemotePredictor

        return RemotePredictor(args.server)
    from nanosam2.inference.factory import load_image_predictor, options_from_args

    return load_image_predictor(paths, options_from_args(args))


def add_commands(sub: argparse._SubParsersAction) -> None:
    """predict, eval-coco, everything and coco-metric, each with its parser and run."""
    from nanosam2.evaluation.coco_metrics import SIZES
    from nanosam2.inference.automatic import MAX_PROMPTS
    from nanosam2.inference.factory import add_backend_arguments, add_graph_arguments
    from trt_runtime.serving.command import add_server_argument

    predict = sub.add_parser("predict", help="segment one image with point/box prompts")
    add_graph_arguments(predict, C.IMAGE_GRAPHS)
    add_backend_arguments(predict)
    add_server_argument(predict, "the prediction")
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
    add_graph_arguments(evaluate, C.IMAGE_GRAPHS)
    add_backend_arguments(evaluate)
    add_server_argument(evaluate, "every image's prediction")
    evaluate.add_argument("--coco-root", required=True, help="folder of the images (e.g. coco/val2017)")
    evaluate.add_argument("--coco-ann", required=True, help="instances JSON (e.g. annotations/instances_val2017.json)")
    evaluate.add_argument("--limit", type=positive_int, help="evaluate only the first N annotated images (sorted ids)")
    evaluate.add_argument("--output", required=True,
                          help="results JSON (resumed if it holds results of this same model and annotation file)")
    evaluate.add_argument("--no-resume", action="store_true", help="start over, replacing --output")

    everything = sub.add_parser("everything", help="segment everything: automatic masks for a whole image "
                                                   "(SAM2AutomaticMaskGenerator's parameters and defaults)")
    add_graph_arguments(everything, C.IMAGE_GRAPHS)
    add_backend_arguments(everything)
    add_server_argument(everything, "the segmentation")
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

    metric = sub.add_parser("coco-metric", help="mean IoU of a results file by size bucket")
    metric.add_argument("results", help="results JSON written by eval-coco")
    metric.add_argument("--size", default="all", choices=SIZES, help="COCO size bucket (default all)")
    metric.add_argument("--category-id", type=int, help="only this COCO category id")
    predict.set_defaults(run=run_predict)
    evaluate.set_defaults(run=run_eval)
    everything.set_defaults(run=run_everything)
    metric.set_defaults(run=run_metric)


PREDICT_RECORD = "predict.json"


def run_predict(args: argparse.Namespace) -> int:
    from nanosam2.viz import overlay

    paths = image_graph_paths(args)
    image = read_rgb(args.image)
    height, width = image.shape[:2]
    prompts = Prompts.from_cli(args.point, args.box)
    if prompts.empty:
        raise NanoSam2Error("give at least one --point or --box")
    prompts.check_inside(width, height)
    planes = 3 if args.multimask else 1
    mask_names = [f"mask_{p}_{c}.png" for p in range(max(len(prompts.boxes), 1)) for c in range(planes)]
    out = OutputFolder(Path(args.output), "predict", PREDICT_RECORD, files=(*mask_names, "overlay.png"),
                       inputs=(args.image, *paths.values()))
    with open_image_predictor(args, paths) as predictor:
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

    paths = image_graph_paths(args)
    if not Path(args.coco_root).is_dir():
        raise NanoSam2Error(f"no such COCO image folder: {args.coco_root}")
    if not Path(args.coco_ann).is_file():
        raise NanoSam2Error(f"no such COCO annotation file: {args.coco_ann}")
    check_output_file(args.output, inputs=[args.coco_ann, *paths.values()], what="--output")
    with open_image_predictor(args, paths) as predictor:
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
    from nanosam2.masks import coco_to_rle, rle_to_coco, rle_to_mask
    from nanosam2.viz import masks_overlay

    paths = image_graph_paths(args)
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
                       inputs=(args.image, *paths.values()))
    if args.server:
        from trt_runtime.serving.client import RemoteMaskGenerator

        generator: Any = RemoteMaskGenerator(args.server, multimask_output=not args.single_mask, **params,
                                             max_prompts=args.max_prompts)
        try:
            records = generator.generate(image)  # segmentation in COCO RLE already
            identity = generator.identity()
        finally:
            generator.connection.close()
        rles = [coco_to_rle(record["segmentation"]) for record in records]
    else:
        with open_image_predictor(args, paths) as predictor:
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


def run_metric(args: argparse.Namespace) -> int:
    from nanosam2.evaluation.coco_metrics import load_results, mean_iou, select

    chosen = select(load_results(args.results), args.size, args.category_id)
    if not chosen:
        raise NanoSam2Error(f"no records for size={args.size}" + (f", category {args.category_id}" if args.category_id else ""))
    print(f"mIoU {args.size}: {mean_iou(chosen):.4f} ({len(chosen)} annotations)")
    return 0
