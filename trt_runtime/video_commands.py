"""The video commands of ``python -m trt_runtime``: each owns its parser and its run.

    track --model-dir DIR --video PATH (--prompts prompts.json | --point X,Y[,L] | --box ...) --output OUT
    eval-vos --model-dir DIR --images JPEGImages --annotations Annotations [--later-objects] --output PRED_DIR
    vos-metric GT_DIR PRED_DIR [--csv FILE]     (J&F, J, F with vos-benchmark)

The graph flags come from the table of graphs (the tracker's: ``--encoder``, ``--decoder``,
``--memory-attention``, ``--memory-encoder``); prompts are checked where they are applied
(``nanosam2.inference.video_prompts``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.prompts import parse_box, parse_point
from nanosam2.utils.cli import non_negative_int, positive_int
from nanosam2.utils.timing import timing_line

logger = logging.getLogger("trt_runtime")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """track, eval-vos and vos-metric, each with its parser and run."""
    from trt_runtime.serving.command import add_server_argument

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
    add_server_argument(track, "the tracking (frame by frame: with --stream or a camera)")

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
    add_server_argument(vos, "the tracking (one server session per sequence)")

    jf = sub.add_parser("vos-metric", help="J&F, J and F (percent) of eval-vos results, computed with vos-benchmark")
    jf.add_argument("gt", help="the annotations (ANNOTATIONS/<sequence>/..., or a folder holding Annotations/)")
    jf.add_argument("predictions", help="PRED_DIR/<sequence>/<frame>.png (eval-vos's --output)")
    jf.add_argument("--sequences", type=parse_names, help="comma-separated sequence names (default: every one)")
    jf.add_argument("--predicted-only", action="store_true",
                    help="score the sequences PRED_DIR has (default: every ground-truth sequence must be predicted)")
    jf.add_argument("--keep-first-and-last", action="store_true",
                    help="also score the first and last annotated frame (not the DAVIS / SA-V convention)")
    jf.add_argument("--csv", help="per-sequence, per-object table (default PRED_DIR/vos-metric.csv)")

    track.set_defaults(run=run_track)
    vos.set_defaults(run=run_eval_vos)
    jf.set_defaults(run=run_vos_metric)


def add_video_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model-dir, one flag per tracker graph (from the table) to override it, and the backend flags."""
    from nanosam2.inference.factory import add_backend_arguments, add_graph_arguments

    flags = "/".join(C.GRAPH_SPECS[g].flag for g in C.TRACKER_GRAPHS)
    parser.add_argument("--model-dir", help="an export folder (python -m export.onnx), a folder of engines built from "
                                            f"it, or a .pt/.pth checkpoint (PyTorch); {flags} override a graph")
    add_graph_arguments(parser, C.TRACKER_GRAPHS)
    add_backend_arguments(parser)


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
    """The tracker's graphs: --model-dir (an export or engine folder, or one checkpoint for all of them), each
    overridden by its own flag."""
    from nanosam2.inference.factory import find_graphs, graph_paths

    given = graph_paths(args, C.TRACKER_GRAPHS)
    if getattr(args, "server", None):
        if given or args.model_dir:
            raise NanoSam2Error("--server tracks with the server's graphs: drop --model-dir and the graph flags")
        return {}
    missing = tuple(graph for graph in C.TRACKER_GRAPHS if graph not in given)
    if missing and not args.model_dir:
        raise NanoSam2Error("give --model-dir (an export folder or a checkpoint), or all of "
                            + ", ".join(C.GRAPH_SPECS[g].flag for g in C.TRACKER_GRAPHS))
    found: dict[str, str | Path] = {}
    if missing and Path(args.model_dir).is_file():
        found = {graph: args.model_dir for graph in missing}  # a checkpoint runs every graph (PyTorch)
    elif missing:
        found = dict(find_graphs(args.model_dir, missing))
    return {**found, **given}


def open_tracker(args: argparse.Namespace, paths: dict[str, Any], config: Any) -> Any:
    """The tracker a command runs: a server's (--server; ``config``'s semantics, sent with each session) or
    a VideoPredictor over the graphs here."""
    if args.server:
        from trt_runtime.serving.client import RemoteTracker

        return RemoteTracker(args.server, config)
    from nanosam2.inference.factory import load_video_predictor, options_from_args

    return load_video_predictor(paths, options_from_args(args), config)


def run_track(args: argparse.Namespace) -> int:
    from nanosam2.inference.video_prompts import load_prompts, parse_prompts
    from trt_runtime.tracking import track_outputs, track_video

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
    if args.server and not (args.stream or args.video.startswith("camera:")):
        raise NanoSam2Error("--server tracks frame by frame, as they come: add --stream (SAM2's offline mode, which "
                            "tracks backwards from a later prompt too, needs the whole video in one process)")
    if not args.video.startswith("camera:") and not Path(args.video).exists():
        raise NanoSam2Error(f"no such video or frame folder: {args.video}")
    out = track_outputs(args.output, args.video, prompts, inputs=(args.model_dir, args.prompts, *paths.values()))
    from nanosam2.inference.tracker_config import preset

    config = tracker_config_from_args(args, preset(args.preset))
    with open_tracker(args, paths, config) as predictor:
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
    with open_tracker(args, paths, config) as predictor:
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
