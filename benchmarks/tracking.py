"""Video tracking benchmark (``run_all`` calls it): per-frame latency of each tracking stage with a
full memory bank, for 1 and 3 objects, ours on every backend and Meta's ``SAM2VideoPredictor``
(eager PyTorch, hiera_t and hiera_s) in the same run as the reference; the process's peak memory;
and the memory-length trade-off (``max_memory_frames``: latency and mask IoU against full memory).

The video is synthetic (moving shapes, JPEG frames in Meta's layout, 1024x576 unless the settings
say otherwise) and both trackers
read the same folder. Frames from ``first_timed_frame`` on are timed: from frame 16 on each
object attends to SAM2's full bank (the prompted frame + 6 recent spatial memories, 16 object
pointers); shorter videos time their last two frames (full spatial memory, fewer pointers).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from benchmarks.machine import PeakMemory
from benchmarks.report import TRACK_FRAME, Measurement, Report, track_stage
from nanosam2.inference.video import STAGES

logger = logging.getLogger("benchmarks.tracking")

VIDEO_SIZE = (576, 1024)  # height, width: a 16:9 camera frame
FULL_BANK_FRAME = 16  # SAM2's max_obj_ptrs_in_encoder: the first frame with a full pointer list
MIN_TRACK_FRAMES = 9  # num_maskmem + 2: the last two frames see a full spatial memory
MEMORY_FRAMES = (6, 4, 2, 1, 0)  # recent spatial memories in the trade-off (6: SAM2's full bank)


@dataclass
class Tracked:
    """One tracking run: wall time and stage times of each timed frame, every frame's masks."""

    frame_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> [objects, H, W] bool
    peak_mb: float = 0.0
    added_mb: float = 0.0

    def median(self, stage: str = TRACK_FRAME) -> float:
        return float(np.median(self.frame_ms if stage == TRACK_FRAME else self.stage_ms[stage]))


def first_timed_frame(num_frames: int) -> int:
    if num_frames < MIN_TRACK_FRAMES:
        raise ValueError(f"tracking needs at least {MIN_TRACK_FRAMES} frames, got {num_frames}")
    return min(FULL_BANK_FRAME, num_frames - 2)


def write_video(work_dir: Path, num_frames: int, size: tuple[int, int] = VIDEO_SIZE) -> Path:
    """The synthetic video (``size``: height, width) as JPEG frames, written once per work folder."""
    from nanosam2.samples import write_jpeg_folder

    folder = work_dir / f"video-{size[1]}x{size[0]}"
    if len(list(folder.glob("*.jpg"))) != num_frames:
        for old in folder.glob("*.jpg"):
            old.unlink()
        write_jpeg_folder(folder, num_frames, *size)
    return folder


def track_prompts(count: int, size: tuple[int, int] = VIDEO_SIZE) -> list[dict]:
    """``count`` (1..3) objects on frame 0: a click on the rectangle, a box on the disc, a click on
    the background."""
    from nanosam2.samples import default_prompts

    height, width = size
    prompts = default_prompts(height, width)
    prompts.append({"frame": 0, "obj_id": 3, "points": [[0.5 * width, 0.9 * height]], "labels": [1]})
    if not 1 <= count <= len(prompts):
        raise ValueError(f"1..{len(prompts)} objects, got {count}")
    return prompts[:count]


def _timed_loop(frames: Iterator[tuple[int, Any, Any]], stage_totals: Callable[[], dict[str, float]],
                first_timed: int, to_masks: Callable[[Any], np.ndarray], sync: Callable[[], None]) -> Tracked:
    """Step a propagation generator, timing each frame and the stages' share of it."""
    tracked = Tracked()
    with PeakMemory() as peak:
        while True:
            before = stage_totals()
            start = time.perf_counter()
            try:
                frame_idx, _, logits = next(frames)
            except StopIteration:
                break
            sync()
            elapsed = 1000 * (time.perf_counter() - start)
            after = stage_totals()
            tracked.masks[frame_idx] = to_masks(logits)
            if frame_idx >= first_timed:
                tracked.frame_ms.append(elapsed)
                for stage in STAGES:
                    tracked.stage_ms[stage].append(after[stage] - before[stage])
    tracked.peak_mb, tracked.added_mb = peak.peak_mb, peak.added_mb
    return tracked


def track_ours(predictor: Any, folder: Path, prompts: list[dict], first_timed: int) -> Tracked:
    """Our ``VideoPredictor`` over the video: prompts on frame 0, then forward propagation."""
    from nanosam2.inference.video_prompts import apply_prompt

    state = predictor.init_state(folder)
    for prompt in prompts:
        apply_prompt(predictor, state, 0, prompt)
    return _timed_loop(predictor.propagate_in_video(state), lambda: dict(predictor.timings), first_timed,
                       lambda logits: logits[:, 0] > 0, lambda: None)


def track_meta(predictor: Any, folder: Path, prompts: list[dict], first_timed: int) -> Tracked:
    """Meta's ``SAM2VideoPredictor`` over the same video and prompts; its stages timed by forward
    hooks on its modules (synchronised on a GPU)."""
    import torch

    cuda = next(predictor.parameters()).is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    modules = {"encoder": [predictor.image_encoder], "memory_attention": [predictor.memory_attention],
               "decoder": [predictor.sam_prompt_encoder, predictor.sam_mask_decoder],
               "memory_encoder": [predictor.memory_encoder]}
    totals = dict.fromkeys(STAGES, 0.0)
    started: dict[int, float] = {}
    handles = []

    def pre(module: Any, *_: Any) -> None:
        sync()
        started[id(module)] = time.perf_counter()

    def post(stage: str) -> Callable[..., None]:
        def hook(module: Any, *_: Any) -> None:
            sync()
            totals[stage] += 1000 * (time.perf_counter() - started.pop(id(module)))
        return hook

    for stage, mods in modules.items():
        for module in mods:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post(stage))]
    try:
        with torch.inference_mode():
            state = predictor.init_state(str(folder))
            for prompt in prompts:
                if "box" in prompt:
                    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=prompt["obj_id"],
                                                    box=np.array(prompt["box"], np.float32))
                else:
                    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=prompt["obj_id"],
                                                    points=np.array(prompt["points"], np.float32),
                                                    labels=np.array(prompt["labels"], np.int32))
            return _timed_loop(predictor.propagate_in_video(state), lambda: dict(totals), first_timed,
                               lambda logits: (logits[:, 0] > 0).cpu().numpy(), sync)
    finally:
        for handle in handles:
            handle.remove()


def record(report: Report, config: tuple[str, str, str], objects: int, tracked: Tracked) -> None:
    runs = len(tracked.frame_ms)
    for stage in (*STAGES, TRACK_FRAME):
        values = sorted(tracked.frame_ms if stage == TRACK_FRAME else tracked.stage_ms[stage])
        p90 = values[min(runs - 1, int(round(0.9 * (runs - 1))))]
        report.measurements.append(Measurement(*config, track_stage(objects, stage), float(np.median(values)), p90, runs))
    report.extra.setdefault("tracking_memory_mb", {})[f"{'/'.join(config)}/{objects}"] = {
        "peak": round(tracked.peak_mb, 1), "added": round(tracked.added_mb, 1)}
    shares = ", ".join(f"{s} {tracked.median(s):.0f}" for s in STAGES)
    logger.info("%s, %d object(s): %.0f ms/frame (%s ms), peak RSS %.0f MB (+%.0f)", "/".join(config), objects,
                tracked.median(), shares, tracked.peak_mb, tracked.added_mb)


def tracking_cases(report: Report, backbone: str, openers: dict[tuple[str, str], Callable[[], Any]],
                   settings: Any) -> None:
    """Time our tracker on each backend (``openers``: (backend, precision) -> a VideoPredictor
    factory) for each object count."""
    folder = write_video(settings.work_dir, settings.track_frames, settings.track_size)
    first = first_timed_frame(settings.track_frames)
    report.extra["tracking_video"] = {"frames": settings.track_frames, "size": list(settings.track_size[::-1]),
                                      "timed_from_frame": first}
    for (backend, precision), open_predictor in openers.items():
        for objects in settings.track_objects:
            with open_predictor() as predictor:
                record(report, (backbone, backend, precision), objects,
                       track_ours(predictor, folder, track_prompts(objects, settings.track_size), first))


def memory_tradeoff(report: Report, backbone: str, open_predictor: Callable[[int], Any], settings: Any,
                    label: str = "onnxruntime-cpu/fp32", memory_frames: tuple[int, ...] = MEMORY_FRAMES) -> None:
    """One object, ``max_memory_frames`` from SAM2's 6 recent spatial memories down to none: frame and
    memory-attention latency, and mask IoU against the full-memory masks on every tracked frame; with
    ``settings.vos_dataset`` (DAVIS layout) also the J&F of each memory length on it (``eval-vos``'s protocol)."""
    from nanosam2.metrics import mask_iou

    vos = getattr(settings, "vos_dataset", None)
    folder = write_video(settings.work_dir, settings.track_frames, settings.track_size)
    first = first_timed_frame(settings.track_frames)
    full: Tracked | None = None
    for recent in memory_frames:
        with open_predictor(recent) as predictor:
            tracked = track_ours(predictor, folder, track_prompts(1, settings.track_size), first)
        full = full or tracked
        ious = [mask_iou(tracked.masks[t][0], full.masks[t][0]) for t in sorted(full.masks) if t > 0]
        row = {"config": f"{backbone}/{label}", "max_memory_frames": recent, "spatial_memories": 1 + recent,
               "frame_ms": round(tracked.median(), 1),
               "memory_attention_ms": round(tracked.median("memory_attention"), 1),
               "mean_iou_vs_full": round(float(np.mean(ious)), 4), "min_iou_vs_full": round(float(np.min(ious)), 4),
               # the full-memory masks' mean foreground share: near 0 or 1 (random weights) the IoU says little
               "full_mask_fraction": round(float(np.mean([full.masks[t].mean() for t in full.masks if t > 0])), 4)}
        if vos is not None:
            with open_predictor(recent) as predictor:
                row.update(vos_accuracy(predictor, vos, settings.work_dir / f"vos-memory-{recent}",
                                        getattr(settings, "vos_protocol", "first-frame")))
        report.extra.setdefault("memory_tradeoff", []).append(row)
        logger.info("max_memory_frames %d: %.0f ms/frame (memory attention %.0f), IoU vs full memory %.4f mean, "
                    "%.4f min", recent, row["frame_ms"], row["memory_attention_ms"], row["mean_iou_vs_full"],
                    row["min_iou_vs_full"])


def meta_tracking_cases(report: Report, checkpoints: dict[str, Path | None], settings: Any) -> None:
    """Meta's ``SAM2VideoPredictor`` (eager PyTorch; fill-hole skipped without its CUDA extension)
    on its Hiera models (``checkpoints``: teacher -> Meta's checkpoint, or None for random weights)."""
    import torch

    from nanosam2.build import build_video_predictor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = write_video(settings.work_dir, settings.track_frames, settings.track_size)
    first = first_timed_frame(settings.track_frames)
    for teacher, checkpoint in checkpoints.items():
        torch.manual_seed(0)
        predictor = build_video_predictor(teacher, checkpoint, device=device)
        report.extra.setdefault("weights", {})[f"{teacher} (Meta's video predictor)"] = \
            "checkpoint" if checkpoint else "random"
        for objects in settings.track_objects:
            record(report, (teacher, "meta-sam2-eager", "fp32"), objects,
                   track_meta(predictor, folder, track_prompts(objects, settings.track_size), first))
        del predictor


def vos_accuracy(predictor: Any, dataset: Path, output: Path, protocol: str) -> dict[str, float]:
    """J&F, J and F (percent) of one tracker on a DAVIS-layout set (``eval-vos`` then ``vos-metric``)."""
    from nanosam2.evaluation.vos_eval import evaluate_vos, plan_vos, video_predictor_tracker
    from nanosam2.evaluation.vos_metrics import score

    annotations = dataset / "Annotations"
    plan = plan_vos(dataset / "JPEGImages", annotations, output, protocol)
    evaluate_vos(plan, video_predictor_tracker(predictor), predictor.identity(), resume=False, progress=False)
    scores = score(annotations, output)
    logger.info("J&F on %s: %s", dataset, scores.line())
    return {"jf": round(scores.global_jf, 2), "j": round(scores.global_j, 2), "f": round(scores.global_f, 2)}
