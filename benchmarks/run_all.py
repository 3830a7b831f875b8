"""Time every backbone on every backend and precision this machine has; one table, one plot.

    python -m benchmarks.run_all [--backbones resnet18,mobilenet_v3_large,casvit_s,hiera_s]
                                 [--image-sizes 1024,512] [--checkpoint-dir DIR] [--quick]
                                 [--output-dir benchmarks/results]

For each backbone and model input size (SAM2.1's 1024, and 512: rows ``BACKBONE@512``): export the
ONNX graphs (random weights unless DIR holds BACKBONE.pth, or
Meta's sam2.1_hiera_*.pt for teachers), make an INT8 Q/DQ encoder (CPU form; calibrated on the
bundled image - for timing, not accuracy), and time, at batch 1, the image encoder, the decoder
with 1, 16 and 64 box prompts, the full predict pipeline (preprocess -> encoder -> decoder ->
postprocess) and segment everything (32x32 point grid, no crops, thresholds at 0 so that every
mask goes through the whole filtering: random weights would otherwise keep none) on: PyTorch
eager and torch.compile (fp32; fp16/bf16 on a GPU), ONNX Runtime FP32 and INT8 (CPU provider;
CUDA provider when present), TensorRT FP32/FP16/INT8 (with TensorRT and a GPU); and Meta's
SAM2AutomaticMaskGenerator in eager PyTorch (hiera_t and hiera_s, same settings) as the
segment-everything reference. Video tracking (benchmarks/tracking.py): per-frame latency of each
stage (encoder, memory attention, decoder, memory encoder) with SAM2's full memory bank for 1 and 3
objects on each backend, peak memory, Meta's SAM2VideoPredictor (hiera_t, hiera_s, eager) on the
same synthetic video, and the memory-length trade-off (--max-memory-frames) on ONNX Runtime.
Every timing warms up first, synchronises before reading the clock
(runners return host arrays) and reports median and p90. Writes
benchmarks/results/HOST-DATE.{json,md,png}, and with --coco-results (eval-coco files) and/or
--vos-results + --vos-gt (eval-vos folders) an accuracy-vs-FPS plot HOST-DATE-accuracy.png: COCO mIoU
against pipeline FPS, video J&F against tracking FPS. --vos-dataset adds J&F on a DAVIS-layout set
to the memory-length trade-off.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks.cases import (Settings, everything_params, onnxruntime_cases, row_label, run_cases, sample_image, skip,
                              tensorrt_cases, torch_cases)
from benchmarks.machine import machine_info
from benchmarks.report import EVERYTHING, TRACK_FRAME, Measurement, Report, track_stage
from benchmarks.tracking import MEMORY_FRAMES, MIN_TRACK_FRAMES
from nanosam2.utils.timing import time_call
from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import ArgumentParser, non_negative_int, run_cli, setup_logging

logger = logging.getLogger("benchmarks.run_all")

REFERENCE_TEACHER = "hiera_s"  # timed beside the students (the teacher they are distilled from)


def default_backbones() -> str:
    """Every registered student, then the teacher."""
    from nanosam2.modeling.backbones import list_backbones

    return ",".join([*list_backbones(), REFERENCE_TEACHER])


DEFAULT_IMAGE_SIZES = "1024,512"  # SAM2.1's input, and the small-device one (export.onnx --image-size)
BACKEND_GROUPS = ("torch-eager", "torch-compile", "onnxruntime", "tensorrt", "meta-sam2")
META_TEACHERS = ("hiera_t", "hiera_s")  # Meta's generator and video predictor, the references
TRACK_FRAMES, QUICK_TRACK_FRAMES = 18, 9  # frames 16, 17 see SAM2's full bank; quick: full spatial memory only


def find_checkpoint(backbone: str, checkpoint_dir: Path | None) -> Path | None:
    """DIR/BACKBONE.pth for a student, DIR/sam2.1_hiera_*.pt for a teacher, when it is there."""
    from nanosam2.build import TEACHERS

    name = TEACHERS[backbone][1] if backbone in TEACHERS else f"{backbone}.pth"
    path = checkpoint_dir / name if checkpoint_dir else None
    return path if path is not None and path.is_file() else None


def load_model(backbone: str, checkpoint_dir: Path | None, image_size: int | None = None):
    """Student or teacher, from DIR when a checkpoint is there, else random weights (logged)."""
    import torch

    from nanosam2.build import build_model

    torch.manual_seed(0)
    ckpt = find_checkpoint(backbone, checkpoint_dir)
    return build_model(backbone, ckpt, device="cpu", image_size=image_size), ckpt is not None


def meta_everything_cases(report: Report, checkpoint_dir: Path | None, settings: Settings) -> None:
    """Meta's SAM2AutomaticMaskGenerator (eager PyTorch, same settings) on its own Hiera models."""
    import torch
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    if settings.everything_points <= 0:
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else None
    image = sample_image()
    for teacher in META_TEACHERS:
        model, trained = load_model(teacher, checkpoint_dir)
        report.extra.setdefault("weights", {})[f"{teacher} (Meta's generator)"] = "checkpoint" if trained else "random"
        generator = SAM2AutomaticMaskGenerator(model.to(device), **everything_params(settings))
        found: list[int] = []
        with torch.inference_mode():
            timing = time_call(lambda generator=generator, found=found: found.append(len(generator.generate(image))),
                               1, 0, sync)
        report.measurements.append(Measurement(teacher, "meta-sam2-eager", "fp32", EVERYTHING, timing.median_ms,
                                               timing.p90_ms, timing.runs))
        logger.info("Meta %s: segment everything %.2f s, %d masks", teacher, timing.median_ms / 1000, found[-1])
        model.cpu()


def torch_rows(report: Report, backbone: str, model, settings: Settings, compile_too: bool) -> None:
    """PyTorch eager (and torch.compile): fp32; fp16/bf16 on a GPU."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = model.to(device)
    for compiled in ([False, True] if compile_too else [False]):
        run_cases(report, torch_cases(backbone, model, device, ["fp32", "fp16", "bf16"] if cuda else ["fp32"], compiled),
                  settings)
        if not cuda:
            skip(report, backbone, "torch-compile" if compiled else "torch-eager", "fp16/bf16",
                 "needs a CUDA GPU (torch sees none)")
    model.cpu()


def onnxruntime_rows(report: Report, backbone: str, graphs: dict[str, Path], int8_encoder: Path | None,
                     settings: Settings) -> None:
    """ONNX Runtime on the CPU provider, and the CUDA one when it is there."""
    import onnxruntime as ort

    providers = ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in ort.get_available_providers() else [])
    for provider in providers:
        run_cases(report, onnxruntime_cases(backbone, graphs, int8_encoder, provider), settings)
    if "cuda" not in providers:
        skip(report, backbone, "onnxruntime-cuda", "fp32", "onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu)")


def tensorrt_rows(report: Report, backbone: str, graphs: dict[str, Path], int8_encoder: Path | None,
                  settings: Settings) -> None:
    """FP32/FP16/INT8 engines built with engines/build_engine.py, timed as every other case."""
    from nanosam2.utils.cuda_api import require_gpu
    from nanosam2.utils.tensorrt_flavour import import_tensorrt

    try:
        tensorrt = import_tensorrt(None, "TensorRT benchmarks")
        require_gpu("running TensorRT engines")
    except NanoSam2Error as exc:
        skip(report, backbone, "tensorrt", "fp32/fp16/int8", str(exc).split(":")[0])
        return
    from engines.build_engine import build_engine
    from engines.plan import BuildRequest

    work = settings.work_dir / backbone
    engines: dict[str, tuple[Path, Path]] = {}
    for precision, onnx_encoder in (("fp32", graphs[C.ENCODER]), ("fp16", graphs[C.ENCODER]), ("int8", int8_encoder)):
        if onnx_encoder is None:
            continue
        pair = (work / f"encoder.{precision}.engine", work / f"decoder.{precision}.engine")
        build_engine(onnx_encoder, pair[0], BuildRequest(fp16=precision == "fp16", int8=precision == "int8"))
        build_engine(graphs[C.DECODER], pair[1], BuildRequest(fp16=precision == "fp16"))
        engines[precision] = pair
    pre_post = (work / "preprocess.engine", work / "postprocess.engine")
    for name, path in zip((C.PREPROCESS, C.POSTPROCESS), pre_post):
        build_engine(graphs[name], path, BuildRequest())  # FP32: exact resampling
    logger.info("%s engines built in %s", tensorrt.label, work)
    run_cases(report, tensorrt_cases(backbone, engines, pre_post), settings)


def tracking_for_backbone(report: Report, backbone: str, model, graphs: dict[str, Path], settings: Settings,
                          chosen: set[str], tradeoff: bool) -> None:
    """Our tracker on each chosen backend (TensorRT: FP32 and FP16 engines of the four graphs), and
    with ``tradeoff`` the memory-length trade-off on ONNX Runtime."""
    from benchmarks.tracking import memory_tradeoff, tracking_cases
    from nanosam2.inference.factory import load_video_predictor

    openers: dict[tuple[str, str], Callable[[], object]] = {}
    if chosen & {"torch-eager", "torch-compile"}:
        import torch

        from nanosam2.inference.video import VideoPredictor
        from nanosam2.inference.torch_runner import TorchRunner

        device = "cuda" if torch.cuda.is_available() else "cpu"
        openers[("torch-eager", "fp32")] = lambda: VideoPredictor(
            *(TorchRunner(graph=g, model=model.to(device), device=device) for g in C.TRACKER_GRAPHS))
    if "onnxruntime" in chosen:
        openers[("onnxruntime-cpu", "fp32")] = lambda: load_video_predictor({g: graphs[g] for g in C.TRACKER_GRAPHS})
    if "tensorrt" in chosen:
        engines = tracking_engines(report, backbone, graphs, settings)
        for precision, paths in engines.items():
            openers[("tensorrt", precision)] = lambda paths=paths: load_video_predictor(paths)
    tracking_cases(report, backbone, openers, settings)
    model.cpu()
    if tradeoff and "onnxruntime" in chosen:
        from nanosam2.inference.tracker_config import VIDEO_PREDICTOR

        memory_tradeoff(report, backbone, lambda recent: load_video_predictor(
            {g: graphs[g] for g in C.TRACKER_GRAPHS}, config=VIDEO_PREDICTOR.replace(memory_frames=recent)), settings,
            memory_frames=settings.memory_frames)


def tracking_engines(report: Report, backbone: str, graphs: dict[str, Path], settings: Settings) -> dict[str, dict]:
    """FP32 and FP16 TensorRT engines of the tracker's four graphs (none without TensorRT and a GPU)."""
    from nanosam2.utils.cuda_api import require_gpu
    from nanosam2.utils.tensorrt_flavour import import_tensorrt

    try:
        import_tensorrt(None, "TensorRT benchmarks")
        require_gpu("running TensorRT engines")
    except NanoSam2Error as exc:
        skip(report, backbone, "tensorrt", "fp32/fp16 tracking", str(exc).split(":")[0])
        return {}
    from engines.build_engine import build_engine
    from engines.plan import BuildRequest

    engines: dict[str, dict] = {}
    for precision in ("fp32", "fp16"):
        engines[precision] = {}
        for graph in C.TRACKER_GRAPHS:
            path = settings.work_dir / backbone / f"{graph}.{precision}.engine"
            build_engine(graphs[graph], path, BuildRequest(fp16=precision == "fp16"))
            engines[precision][graph] = path
    return engines


def encoder_gflops(model) -> float:
    """FLOPs of one image-encoder forward at the model's input size (torch's flop counter), in GFLOP."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nanosam2.modeling.predictor_graphs import ImageEncoderGraph

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        size = int(model.image_size)
        ImageEncoderGraph(model).eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def default_settings(quick: bool, output_dir: Path, everything_points: int = 32) -> Settings:
    settings = Settings(3 if quick else 10, 5 if quick else 20, 1 if quick else 2, output_dir / "work",
                        everything_points, QUICK_TRACK_FRAMES if quick else TRACK_FRAMES)
    if quick:  # one object, three memory lengths: the demo's table stays a few minutes long
        settings.track_objects, settings.memory_frames = (1,), (MEMORY_FRAMES[0], 2, 0)
    return settings


def run(backbones: list[str], checkpoint_dir: Path | None, quick: bool, output_dir: Path,
        backends: set[str] | None = None, settings: Settings | None = None,
        coco_results: Path | None = None, everything_points: int = 32,
        track_frames: int | None = None, vos_results: Path | None = None,
        vos_gt: Path | None = None, image_sizes: Sequence[int] = (T.IMAGE_SIZE,)) -> tuple[Report, dict[str, Path]]:
    from calib.qdq import quantize
    from export.exporter import export_model

    settings = settings or default_settings(quick, output_dir, everything_points)
    if track_frames is not None:
        settings.track_frames = track_frames
    report = Report(machine_info())
    chosen = backends or set(BACKEND_GROUPS)
    for name, size in [(b, s) for b in backbones for s in image_sizes]:
        start = time.perf_counter()
        backbone = row_label(name, size)  # the rows' name; the work folder's too
        model, trained = load_model(name, checkpoint_dir, size)
        report.extra.setdefault("weights", {})[backbone] = "checkpoint" if trained else "random"
        report.extra.setdefault("encoder_gflop", {})[backbone] = round(encoder_gflops(model), 2)
        graphs = {g: e.path for g, e in export_model(model, name, settings.work_dir / backbone,
                                                     video=settings.track_frames > 0).items()}
        image = sample_image()
        feeds = [{C.IMAGE: T.preprocess_image(np.ascontiguousarray(v), size)} for v in (image, image[:, ::-1], image[::-1])]
        int8 = quantize(graphs[C.ENCODER], feeds, settings.work_dir / backbone / "image_encoder.cpu.int8.onnx",
                        method="minmax", target="cpu")
        if chosen & {"torch-eager", "torch-compile"}:
            torch_rows(report, backbone, model, settings, compile_too="torch-compile" in chosen)
        if "onnxruntime" in chosen:
            onnxruntime_rows(report, backbone, graphs, int8, settings)
        if "tensorrt" in chosen:
            tensorrt_rows(report, backbone, graphs, int8, settings)
        if settings.track_frames:
            tracking_for_backbone(report, backbone, model, graphs, settings, chosen,
                                  tradeoff=(name, size) == (backbones[0], image_sizes[0]))
        logger.info("%s done in %.0f s", backbone, time.perf_counter() - start)
    if "meta-sam2" in chosen:
        meta_everything_cases(report, checkpoint_dir, settings)
        if settings.track_frames:
            from benchmarks.tracking import meta_tracking_cases

            meta_tracking_cases(report, {t: find_checkpoint(t, checkpoint_dir) for t in META_TEACHERS}, settings)
    if coco_results is not None:
        attach_coco_results(report, coco_results)
    if vos_results is not None and vos_gt is not None:
        from benchmarks.vos import vos_jf

        report.extra["vos_jf"] = vos_jf(vos_gt, vos_results)
    stem = f"{report.machine['host']}-{report.machine['date'][:10]}"
    return report, report.write(output_dir, stem)


def attach_coco_results(report: Report, folder: Path) -> None:
    """mIoU of ``BACKBONE.BACKEND.PRECISION.json`` results files (from eval-coco) in ``folder``."""
    from nanosam2.evaluation.coco_metrics import load_results, mean_iou

    for config in report.configurations():
        results = folder / f"{'.'.join(config)}.json"
        if results.is_file():
            report.extra.setdefault("coco_miou", {})["/".join(config)] = round(mean_iou(load_results(results)), 4)


def summary(report: Report) -> list[str]:
    """Same-run ratios the project tracks, and achieved GFLOP/s against the FP32 reference: the
    FP32 GEMM rate measured on this machine in this run (the nominal clock x lanes figure is only
    printed, labelled: AVX-512 on 256-bit units or a misreported clock make it wrong either way)."""
    machine = report.machine
    peak = machine.get("fp32_peak_gflops")
    nominal = machine.get("nominal_fp32_peak_gflops")
    lines = [f"FP32 reference: measured GEMM {peak:.0f} GFLOP/s on {machine.get('cores')} cores"
             + (f" (nominal, from clock x vector lanes, not measured: {nominal:.0f} GFLOP/s)" if nominal else "")] \
        if peak else []
    for backbone, gflop in report.extra.get("encoder_gflop", {}).items():
        eager = report.get((backbone, "torch-eager", "fp32"), "encoder")
        for config in report.configurations():
            m = report.get(config, "encoder")
            if config[0] != backbone or m is None or not m.median_ms:
                continue
            achieved = gflop / (m.median_ms / 1000)
            ratio = f", {eager.median_ms / m.median_ms:.2f}x torch eager" if eager and eager.median_ms else ""
            share = f", {100 * achieved / peak:.0f}% of the measured {peak:.0f} GFLOP/s FP32 GEMM" if peak else ""
            lines.append(f"{'/'.join(config)} encoder: {achieved:.1f} GFLOP/s{share}{ratio}")
    meta = report.get(("hiera_t", "meta-sam2-eager", "fp32"), EVERYTHING)
    for config in report.configurations():
        one, batch = report.get(config, "decoder_1"), report.get(config, "decoder_64")
        if one and batch and one.median_ms and batch.median_ms:
            lines.append(f"{'/'.join(config)} decoder: {1000 / one.median_ms:.0f} prompts/s at batch 1, "
                         f"{64000 / batch.median_ms:.0f} at batch 64 ({one.median_ms * 64 / batch.median_ms:.1f}x)")
        everything = report.get(config, EVERYTHING)
        if everything and everything.median_ms and config[1] != "meta-sam2-eager":
            versus = f", {meta.median_ms / everything.median_ms:.2f}x Meta's hiera_t generator (eager)" \
                if meta and meta.median_ms else ""
            lines.append(f"{'/'.join(config)} segment everything: {everything.median_ms / 1000:.2f} s per image{versus}")
    lines += tracking_summary(report)
    return lines


def tracking_summary(report: Report) -> list[str]:
    """Per-frame tracking time of each configuration and its ratio to Meta's hiera_t video predictor."""
    lines = []
    for *config, objects in report.tracked_configurations():
        frame = report.get(tuple(config), track_stage(objects, TRACK_FRAME))  # type: ignore[arg-type]
        attention = report.get(tuple(config), track_stage(objects, "memory_attention"))  # type: ignore[arg-type]
        meta = report.get(("hiera_t", "meta-sam2-eager", "fp32"), track_stage(objects, TRACK_FRAME))
        if not frame or not frame.median_ms:
            continue
        share = f", memory attention {100 * attention.median_ms / frame.median_ms:.0f}%" \
            if attention and attention.median_ms is not None else ""
        versus = f", {meta.median_ms / frame.median_ms:.2f}x Meta's hiera_t video predictor (eager)" \
            if meta and meta.median_ms and config[1] != "meta-sam2-eager" else ""
        lines.append(f"{'/'.join(config)} tracking {objects} object(s): {frame.median_ms:.0f} ms/frame{share}{versus}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="benchmarks/run_all.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default=default_backbones(),
                        help=f"comma-separated (default {default_backbones()}: every student and the teacher)")
    parser.add_argument("--image-sizes", default=DEFAULT_IMAGE_SIZES,
                        help=f"model input sides, comma-separated (default {DEFAULT_IMAGE_SIZES}: rows BACKBONE and "
                             "BACKBONE@512; export.onnx --image-size)")
    parser.add_argument("--checkpoint-dir", type=Path, help="BACKBONE.pth students / Meta sam2.1_hiera_*.pt teachers")
    parser.add_argument("--quick", action="store_true", help="fewer runs (3 encoder, 5 decoder, 1 warm-up)")
    parser.add_argument("--backends", help=f"subset of {','.join(BACKEND_GROUPS)} (default all)")
    parser.add_argument("--everything-points", type=non_negative_int, default=32,
                        help="points per side of the segment-everything grid (default 32; 0 skips it)")
    parser.add_argument("--track-frames", type=non_negative_int,
                        help=f"frames of the synthetic tracking video (default {TRACK_FRAMES}, --quick {QUICK_TRACK_FRAMES}; "
                             f"0 skips tracking; at least {MIN_TRACK_FRAMES}, {TRACK_FRAMES} for a full memory bank)")
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"), help="where results go")
    parser.add_argument("--coco-results", type=Path,
                        help="folder of BACKBONE.BACKEND.PRECISION.json files from `trt_runtime eval-coco` "
                             "(e.g. resnet18.onnxruntime-cpu.int8.json): adds an accuracy-vs-FPS plot")
    parser.add_argument("--vos-results", type=Path,
                        help="folder of BACKBONE.BACKEND.PRECISION/ prediction folders from `trt_runtime eval-vos`, "
                             "scored against --vos-gt: J&F beside COCO mIoU in the accuracy-vs-FPS plot")
    parser.add_argument("--vos-gt", type=Path, help="the annotations the --vos-results were made for")
    parser.add_argument("--vos-dataset", type=Path,
                        help="a DAVIS-layout set (JPEGImages/, Annotations/): the memory-length trade-off reports "
                             "J&F on it besides the IoU against full memory")
    parser.add_argument("--vos-later-objects", action="store_true",
                        help="--vos-dataset's objects join when they appear (MOSE, SA-V; eval-vos --later-objects)")
    parser.add_argument("--serve", action="store_true",
                        help="the serving benchmark instead (benchmarks/serve.py: Triton, 1-8 clients, the first of "
                             "--backbones at the first of --image-sizes, or --model-dir)")
    parser.add_argument("--model-dir", type=Path, help="--serve: an export folder to serve")
    parser.add_argument("--clients", default="1,2,4,8", help="--serve: concurrent clients (default 1,2,4,8)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.serve:
        from benchmarks.serve import serve_benchmark

        args.backbone = args.backbones.split(",")[0].strip()
        args.image_size = C.check_image_size(int(args.image_sizes.split(",")[0]), "--image-sizes")
        args.requests, args.frames = (3, 8) if args.quick else (6, 8)
        return serve_benchmark(args)
    from nanosam2.build import known_backbones
    from nanosam2.utils.atomic import check_output_dir

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    unknown = [b for b in backbones if b not in known_backbones()]
    if unknown or not backbones:
        raise NanoSam2Error(f"unknown backbone(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known_backbones())}")
    sizes = [s.strip() for s in args.image_sizes.split(",") if s.strip()]
    if not sizes or not all(s.isdigit() for s in sizes) or len(set(sizes)) != len(sizes):
        raise NanoSam2Error(f"--image-sizes {args.image_sizes!r}: expected distinct sizes such as 1024,512")
    image_sizes = [C.check_image_size(int(s), "--image-sizes") for s in sizes]
    if args.checkpoint_dir and not args.checkpoint_dir.is_dir():
        raise NanoSam2Error(f"no such checkpoint folder: {args.checkpoint_dir}")
    backends = {b.strip() for b in args.backends.split(",") if b.strip()} if args.backends is not None else None
    if backends is not None and (not backends or backends - set(BACKEND_GROUPS)):
        raise NanoSam2Error(f"unknown backend(s) {', '.join(sorted(backends - set(BACKEND_GROUPS))) or '(none given)'}; "
                            f"choose from {', '.join(BACKEND_GROUPS)}")
    check_output_dir(args.output_dir)
    if args.track_frames and args.track_frames < MIN_TRACK_FRAMES:
        raise NanoSam2Error(f"--track-frames must be 0 or at least {MIN_TRACK_FRAMES}, got {args.track_frames}")
    if args.coco_results and not args.coco_results.is_dir():
        raise NanoSam2Error(f"no such COCO results folder: {args.coco_results}")
    if bool(args.vos_results) != bool(args.vos_gt):
        raise NanoSam2Error("--vos-results and --vos-gt go together")
    for folder, flag in ((args.vos_results, "--vos-results"), (args.vos_gt, "--vos-gt"), (args.vos_dataset, "--vos-dataset")):
        if folder is not None and not folder.is_dir():
            raise NanoSam2Error(f"no such {flag} folder: {folder}")
    settings = None
    if args.vos_dataset:
        settings = default_settings(args.quick, args.output_dir, args.everything_points)
        settings.vos_dataset = args.vos_dataset
        settings.vos_protocol = "later-objects" if args.vos_later_objects else "first-frame"
    report, paths = run(backbones, args.checkpoint_dir, args.quick, args.output_dir, backends, settings,
                        coco_results=args.coco_results, everything_points=args.everything_points,
                        track_frames=args.track_frames, vos_results=args.vos_results, vos_gt=args.vos_gt,
                        image_sizes=image_sizes)
    if any(w == "random" for w in report.extra["weights"].values()):
        print("*** RANDOM WEIGHTS where no checkpoint was given: timings are real, masks are not ***")
    print(report.table())
    print("\n".join(summary(report)))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
