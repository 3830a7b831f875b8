"""``python -m trt_runtime track`` as library functions: prompts files, the tracking run, its outputs.

Outputs of a run (``track_video``) are written into a staging folder inside OUT and published
when the run is complete: ``OUT/masks/<obj_id>/<frame:05d>.png`` (0/255 at the video's size, every
frame and object), ``OUT/overlay.mp4`` and ``OUT/track.json`` (what produced them), under the
toolkit's one output policy (``nanosam2.utils.outputs``): files in the way that no earlier track
run recorded are refused, inputs inside OUT's outputs are refused.

Frames keep their numbers: a JPEG folder's frames are the integers their names carry (gaps stay
gaps), and prompt frames and mask names use those numbers; a video file's frames are numbered
from 0 in decode order.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw

from nanosam2.errors import NanoSam2Error
from nanosam2.inference.frames import Frames, read_video
from nanosam2.inference.video import TrackingState, VideoPredictor
from nanosam2.inference.video_prompts import apply_prompt, place_prompts
from nanosam2.utils.outputs import OutputFolder

logger = logging.getLogger("trt_runtime")
TRACK_RECORD = "track.json"


def track_outputs(out_dir: str | Path, video: str | None, prompts: list[dict[str, Any]],
                  inputs: Iterable[str | Path | None] = ()) -> OutputFolder:
    """OUT of a track run (checked before any work): masks/, overlay.mp4 and track.json; the video,
    the mask prompts' files and ``inputs`` (graphs, the prompts file) must not lie inside them."""
    masks = [p["mask_path"] for p in prompts if "mask_path" in p]
    return OutputFolder(Path(out_dir), "track", TRACK_RECORD, files=("overlay.mp4",), folders=("masks",),
                        inputs=(video, *masks, *inputs))


@dataclass
class TrackResult:
    frames: int
    objects: list[Any]
    seconds: float
    timings: dict[str, float]  # ms per stage, summed over the run
    calls: dict[str, int]
    out_dir: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def _progress(iterable: Any, total: int | None, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="frame")


def _write_masks(folder: Path, number: int, obj_ids: list[Any], logits: np.ndarray) -> None:
    for obj_id, plane in zip(obj_ids, logits[:, 0]):
        target = folder / str(obj_id)
        target.mkdir(exist_ok=True)
        Image.fromarray(np.where(plane > 0, 255, 0).astype(np.uint8)).save(target / f"{number:05d}.png")


class OverlayWriter:
    """overlay.mp4: each object's mask in its colour, prompts drawn on their frames (PyAV)."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        from nanosam2.utils.lazy_import import require

        av = require("av", "writing overlay.mp4 (or pass --no-overlay)")
        self.container = av.open(str(path), mode="w", format="mp4")
        codecs = [c for c in ("libx264", "mpeg4") if c in av.codecs_available]
        self.stream = self.container.add_stream(codecs[0] if codecs else "mpeg4", rate=max(1, round(fps)))
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.av = av

    def write(self, frame: np.ndarray, masks: dict[Any, np.ndarray], prompts: list[dict[str, Any]],
              order: list[Any]) -> None:
        from nanosam2.viz import colour_for

        canvas = frame.astype(np.float32)
        for obj_id, mask in masks.items():
            colour = np.array(colour_for(order.index(obj_id)), np.float32)
            canvas[mask] = 0.45 * canvas[mask] + 0.55 * colour
        image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for prompt in prompts:
            colour = colour_for(order.index(prompt["obj_id"])) if prompt["obj_id"] in order else (255, 255, 255)
            if "box" in prompt:
                draw.rectangle(prompt["box"], outline=colour, width=3)
            for (x, y), label in zip(prompt.get("points", []), prompt.get("labels", [])):
                draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=(40, 220, 40) if label else (230, 40, 40),
                             outline=(255, 255, 255), width=2)
        rgb = np.asarray(image)[: self.stream.height, : self.stream.width]
        for packet in self.stream.encode(self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def track_video(predictor: VideoPredictor, video: str, prompts: list[dict[str, Any]], out: OutputFolder | Path,
                overlay: bool = True, fps: float = 30.0, max_frames: int | None = None,
                identity: dict[str, Any] | None = None, stream: bool = False) -> TrackResult:
    """Track the prompted objects through ``video`` (a JPEG folder, a video file or ``camera:N``) and
    write the masks (and overlay) into ``out`` (an :class:`OutputFolder` from :func:`track_outputs`,
    or a folder); nothing is published unless the run completes.

    ``stream`` (always for a camera): frames are read once, in order, and the memory stays bounded
    (``VideoPredictor.track_stream``): for long videos. A prompt acts from its frame on; without
    it, SAM2's offline semantics: every prompt is applied first, then tracking runs forwards from
    the first prompted frame and backwards from it, and what the memory keeps grows with the video
    (~0.8 MB per frame and object at 1024 px).
    """
    if not isinstance(out, OutputFolder):
        out = track_outputs(out, video, prompts)
    camera = video.startswith("camera:")
    with out.staging() as stage:
        (stage / "masks").mkdir()
        start = time.perf_counter()
        if camera:
            frames_done, obj_ids = _track_stream(predictor, prompts, stage, overlay, fps,
                                                 _camera_frames(video, max_frames), max_frames, None)
        elif stream:
            frames = Frames(video)
            try:
                count = len(frames) if max_frames is None else min(max_frames, len(frames))
                placed = place_prompts(prompts, frames, frames.height, frames.width, count)
                frames_done, obj_ids = _track_stream(predictor, placed, stage, overlay, fps,
                                                     itertools.islice(frames, count), count, frames.numbers)
            finally:
                frames.close()
        else:
            frames_done, obj_ids = _track_offline(predictor, video, prompts, stage, overlay, fps)
        seconds = time.perf_counter() - start
        record = {"video": video, "mode": "stream" if stream or camera else "offline",
                  "frames": frames_done, "objects": obj_ids,
                  "prompts": [{k: v for k, v in p.items() if k not in ("mask", "position")} for p in prompts],
                  "tracker": predictor.config.record(),
                  "seconds": seconds, "timings_ms": predictor.timings, "calls": predictor.calls,
                  "model": identity or predictor.identity()}
        out.publish(stage, record)
    return TrackResult(frames_done, obj_ids, seconds, dict(predictor.timings), dict(predictor.calls), out.path, record)


def _track_offline(predictor: VideoPredictor, video: str, prompts: list[dict[str, Any]], stage: Path,
                   overlay: bool, fps: float) -> tuple[int, list[Any]]:
    state = predictor.init_state(video)
    try:
        return _track_offline_state(predictor, state, prompts, stage, overlay, fps)
    finally:
        assert state.frames is not None
        state.frames.close()


def _track_offline_state(predictor: VideoPredictor, state: TrackingState, prompts: list[dict[str, Any]], stage: Path,
                         overlay: bool, fps: float) -> tuple[int, list[Any]]:
    frames = state.frames
    assert frames is not None
    placed = place_prompts(prompts, frames, state.video_height, state.video_width)
    for prompt in sorted(placed, key=lambda p: p["position"]):
        apply_prompt(predictor, state, prompt["position"], prompt)
    first = min(p["position"] for p in placed)
    total = state.num_frames or 0
    masks_dir = stage / "masks"
    passes = [(first, False)] + ([(first, True)] if first > 0 else [])
    writer = OverlayWriter(stage / "overlay.mp4", state.video_width, state.video_height, fps) if overlay else None
    kept: dict[int, dict[Any, np.ndarray]] = {}  # packed masks of frames the overlay cannot take yet (reverse pass)
    next_overlay = 0

    def draw(position: int, masks: dict[Any, np.ndarray]) -> None:
        assert writer is not None
        writer.write(frames[position], masks,
                     [p for p in placed if p["position"] == position], state.obj_ids)

    try:
        done: set[int] = set()
        for start, reverse in passes:
            count = (first + 1) if reverse else (total - first)
            for position, obj_ids, logits in _progress(predictor.propagate_in_video(state, start, reverse=reverse),
                                                       count, "track (reverse)" if reverse else "track"):
                _write_masks(masks_dir, frames.numbers[position], obj_ids, logits)
                done.add(position)
                if writer is None:
                    continue
                masks = {obj_id: plane > 0 for obj_id, plane in zip(obj_ids, logits[:, 0])}
                if position == next_overlay:  # in order: drawn at once (a video file's frame is still cached)
                    draw(position, masks)
                    next_overlay += 1
                else:
                    kept[position] = {obj_id: np.packbits(m) for obj_id, m in masks.items()}
                while next_overlay in kept:
                    shape = (state.video_height, state.video_width)
                    draw(next_overlay, {obj_id: np.unpackbits(m, count=shape[0] * shape[1]).reshape(shape).astype(bool)
                                        for obj_id, m in kept.pop(next_overlay).items()})
                    next_overlay += 1
    finally:
        if writer is not None:
            writer.close()
    return len(done), state.obj_ids


def _camera_frames(video: str, max_frames: int | None) -> Iterator[np.ndarray]:
    index = video.split(":", 1)[1]
    if not index.isdigit():
        raise NanoSam2Error(f"--video {video}: a camera is camera:N (N = the /dev/videoN index)")
    for count, frame in enumerate(read_video(f"/dev/video{index}")):
        if max_frames is not None and count >= max_frames:
            return
        yield frame


def _track_stream(predictor: VideoPredictor, prompts: list[dict[str, Any]], stage: Path, overlay: bool,
                  fps: float, frames: Iterable[np.ndarray], total: int | None,
                  numbers: list[int] | None) -> tuple[int, list[Any]]:
    """Frames read once, in order; a camera (``numbers`` None: positions are numbers) runs until
    Ctrl-C, and what was tracked is published; its prompts are checked on its first frame."""
    camera = numbers is None
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for prompt in prompts:
        by_frame.setdefault(prompt.get("position", prompt["frame"]), []).append(prompt)
    writer: OverlayWriter | None = None
    count, obj_ids = 0, []
    last: list[np.ndarray] = []

    def remembered() -> Iterator[np.ndarray]:  # the overlay draws on the frame just tracked
        for item in frames:
            if camera and not last:  # a camera's size is known at its first frame
                place_prompts(prompts, None, np.asarray(item).shape[0], np.asarray(item).shape[1])
            last[:] = [np.asarray(item)]
            yield last[0]

    try:
        for frame_idx, obj_ids, logits in _progress(predictor.track_stream(remembered(), by_frame,
                                                                           num_frames=None if camera else total),
                                                    total, "track (stream)"):
            frame = last[0]
            _write_masks(stage / "masks", numbers[frame_idx] if numbers else frame_idx, obj_ids, logits)
            if overlay:
                if writer is None:
                    writer = OverlayWriter(stage / "overlay.mp4", frame.shape[1], frame.shape[0], fps)
                writer.write(frame, {k: m[0] > 0 for k, m in zip(obj_ids, logits)}, by_frame.get(frame_idx, []),
                             obj_ids)
            count += 1
    except KeyboardInterrupt:
        if not camera:
            raise  # a file's run is incomplete: nothing is published
    finally:
        if writer is not None:
            writer.close()
    return count, list(obj_ids)
