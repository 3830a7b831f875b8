"""``VideoPredictor``: SAM2VideoPredictor's semantics over four runners, torch-free.

Graphs: the image encoder (once per frame), the memory attention (per object on tracked frames),
the mask decoder and the memory encoder, each on any backend (TensorRT, ONNX Runtime, PyTorch).
Pre- and post-processing are ``nanosam2.transforms`` (the image path's), so a frame is resized
and normalised exactly as an image is.

The memory bank follows ``SAM2Base._prepare_memory_conditioned_features``: every conditioning
frame (t_pos 0), the ``num_maskmem - 1`` frames before the current one (after it, in reverse),
and up to ``max_obj_ptrs_in_encoder`` object pointers, conditioning frames' pointers first (only
those in the past), then the nearest tracked frames'. Spatial memories are kept rounded to
bfloat16 (stored as 16-bit words: half the memory), as Meta keeps them.

Two ways to use it:
- Meta's API on a whole video: ``init_state`` (a JPEG folder or a video file, both read lazily, or a list
  of frames), ``add_new_points_or_box``, ``add_new_mask``, ``propagate_in_video(reverse=...)``,
  ``remove_object``, ``reset_state``. Per frame and object it keeps what SAM2 can read again
  (memory, pointer, low-res logits: ~0.8 MB at 1024 px), never the decoded frames' tensors
  (Meta keeps every frame as a float32 1024x1024 tensor: 12 MB each).
- ``track_stream``: frames from an iterator (a camera), prompts applied when their frame
  arrives, and a bounded bank: the prompted frames plus a sliding window of the last frames.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.runner import Runner

MASK_PROMPT_SCALE, MASK_PROMPT_BIAS = 20.0, -10.0  # SAM2Base._use_mask_as_output
JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")
PAD = float(T.LABEL_PAD)  # the decoder's padding-point label
STAGES = ("encoder", "memory_attention", "decoder", "memory_encoder")


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> the upper 16 bits rounded to nearest even (torch's ``.to(torch.bfloat16)``)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


@dataclass
class FrameOutput:
    """What one object keeps of one frame (SAM2's ``compact_current_out``)."""

    low_res: np.ndarray | None  # [1, 1, L, L] mask logits (NO_OBJECT_SCORE where absent)
    pointer: np.ndarray  # [256] object pointer before the no-object blend
    present: float  # 1.0 where the pointer counts as the object's (else the no-object pointer is used)
    object_score: float
    maskmem: np.ndarray | None = None  # [1, 64, h, w] bfloat16 bits, once encoded


@dataclass
class ObjectState:
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    points: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # scaled coords, labels
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse


class Frames:
    """Random access to a video's frames (RGB uint8), decoded when asked for: a folder of
    ``<index>.jpg`` frames, a video file (``VideoFile``: never decoded in full) or a list of arrays.

    Frames are read by position (0 .. len-1); ``numbers`` are the frames' own numbers: the integers a
    JPEG folder's names carry (gaps stay gaps: 00000, 00004, ... keep their numbers), the position
    for a video file or a list. Prompts and output names use the numbers (:meth:`position`)."""

    def __init__(self, source: Any) -> None:
        self.files: list[Path] = []
        self.arrays: list[np.ndarray] = []
        self.video: VideoFile | None = None
        self.numbers: list[int] = []
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()  # the last decoded JPEG frames
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                numbered = jpeg_frames(path)
                self.numbers, self.files = [n for n, _ in numbered], [f for _, f in numbered]
            elif path.is_file():
                self.video = VideoFile(path)
            else:
                raise NanoSam2Error(f"no such video or frame folder: {path}")
        else:
            self.arrays = [np.asarray(frame) for frame in source]
            if not self.arrays:
                raise NanoSam2Error("the video has no frames")
        if not self.numbers:
            self.numbers = list(range(len(self)))
        self._positions = {number: index for index, number in enumerate(self.numbers)}
        first = self[0]
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __len__(self) -> int:
        return len(self.video) if self.video is not None else len(self.files) or len(self.arrays)

    def position(self, number: int) -> int:
        """The position of the frame numbered ``number``; a number the video lacks is an error."""
        if number not in self._positions:
            if self.files and 0 <= number <= self.numbers[-1]:
                raise NanoSam2Error(f"frame {number} is not in the frame folder (its frames are numbered "
                                    f"{_number_ranges(self.numbers)})")
            raise NanoSam2Error(f"frame {number} is past the end of the video (frames "
                                f"{_number_ranges(self.numbers)})")
        return self._positions[number]

    def __getitem__(self, index: int) -> np.ndarray:
        if self.video is not None:
            return self.video[index]
        if self.files:
            if index not in self._recent:  # the overlay asks for the frame the tracker just read: decoded once
                from nanosam2.images import read_rgb

                self._recent[index] = read_rgb(self.files[index])
                while len(self._recent) > 2:
                    self._recent.popitem(last=False)
            return self._recent[index]
        frame = self.arrays[index]
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NanoSam2Error(f"frame {index}: expected RGB uint8 [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[index] for index in range(len(self)))

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


def _number_ranges(numbers: list[int]) -> str:
    """``0-2, 7-8`` for [0, 1, 2, 7, 8]."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:4])
    return text + (", ..." if len(spans) > 4 else "")


FRAME_NAME = re.compile(r"[0-9]+")


def jpeg_frames(folder: Path) -> list[tuple[int, Path]]:
    """Meta's layout: ``<frame number>.jpg`` files, as (number, path) sorted by number. Names that are
    not a non-negative integer, and two files of one number (``1.jpg`` and ``01.jpg``), are refused:
    a frame must never take another's place."""
    names = [p for p in folder.iterdir() if p.suffix in JPEG_SUFFIXES]
    if not names:
        raise NanoSam2Error(f"{folder}: no JPEG frames (<index>.jpg) in the folder")
    bad = sorted(p.name for p in names if not FRAME_NAME.fullmatch(p.stem))
    if bad:
        raise NanoSam2Error(f"{folder}: frame file {bad[0]} is not named by its frame number (00000.jpg, ...)")
    numbered: dict[int, Path] = {}
    for path in sorted(names):
        number = int(path.stem)
        if number in numbered:
            raise NanoSam2Error(f"{folder}: {numbered[number].name} and {path.name} are both frame {number}")
        numbered[number] = path
    return sorted(numbered.items())


def _open_video(path: str | os.PathLike[str], **options: Any) -> Any:
    from nanosam2.utils.lazy_import import require

    av = require("av", "reading video files")
    try:
        container = av.open(str(path), **options)
    except (av.error.FFmpegError, OSError) as exc:
        raise NanoSam2Error(f"{path}: cannot open the video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise NanoSam2Error(f"{path}: no video stream")
    return container


def read_video(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file or a camera (``/dev/videoN``), decoded by PyAV one at a time."""
    options: dict[str, Any] = {"format": "v4l2"} if str(path).startswith("/dev/video") else {}
    with _open_video(path, **options) as container:
        import av

        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise NanoSam2Error(f"{path}: the video cannot be decoded ({exc})") from None


class VideoFile:
    """A video file's frames by index (RGB uint8), decoded when asked for, never all at once.

    Opening reads the packets' timestamps (demuxing, no decoding): the frame count and each
    frame's presentation time. Reading frames in order decodes each once; a jump back, or far
    ahead, seeks to the keyframe before the frame and decodes forward from it. The frames decoded
    last are cached up to ``cache_bytes``, so reverse propagation decodes a keyframe's group again
    once per cache-full of frames, not once per frame. Streams whose packets lack timestamps are
    numbered by decoding order, and a jump back decodes again from the start.
    """

    SEEK_AHEAD = 32  # decode forward rather than seek when the wanted frame is this close ahead

    def __init__(self, path: str | os.PathLike[str], cache_bytes: int = 256 << 20) -> None:
        self.path, self.cache_bytes = Path(path), int(cache_bytes)
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._container = _open_video(self.path)
        import av  # after _open_video, which names the extra where PyAV is missing

        self._frames: Iterator[tuple[int, Any]] | None = None
        self._next = self._floor = 0  # the index the running decode yields next; frames before floor are dropped
        try:
            sizes_and_pts = [(p.size, p.pts) for p in self._container.demux(self._container.streams.video[0])]
        except av.error.FFmpegError as exc:
            self.close()
            raise NanoSam2Error(f"{self.path}: the video cannot be read ({exc})") from None
        pts = [t for size, t in sizes_and_pts if size]
        self.timed = bool(pts) and None not in pts and len(set(pts)) == len(pts)
        self.pts = sorted(pts) if self.timed else []  # type: ignore[type-var]
        self.index = {t: i for i, t in enumerate(self.pts)}
        self.length = len(self.pts)
        if not self.timed:  # numbered by decoding order: count them once
            self._rewind()
            self.length = sum(1 for _ in self._decode())
        if not self.length:
            self.close()
            raise NanoSam2Error(f"{self.path}: the video has no frames")
        self._rewind()

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        self._frames = None
        self._container.close()

    def _rewind(self) -> None:
        self._container.close()
        self._container = _open_video(self.path)
        self._frames, self._next, self._floor = self._decode(), 0, 0

    def _decode(self) -> Iterator[tuple[int, Any]]:
        """(frame index, PyAV frame) in presentation order from where the container stands."""
        import av

        stream = self._container.streams.video[0]
        count = 0
        try:
            for frame in self._container.decode(stream):
                if self.timed:
                    number = self.index.get(frame.pts)
                    if number is None:
                        raise NanoSam2Error(f"{self.path}: a decoded frame has a timestamp ({frame.pts}) that no "
                                            "packet has; extract its frames as JPEGs and pass the folder")
                else:
                    number, count = count, count + 1
                yield number, frame
        except av.error.FFmpegError as exc:
            raise NanoSam2Error(f"{self.path}: the video cannot be decoded ({exc})") from None

    def _seek(self, index: int) -> None:
        """Decode from the keyframe at or before ``index`` (from the start where seeking lands after it)."""
        if self.timed and index > 0:
            self._container.seek(self.pts[index], stream=self._container.streams.video[0], backward=True)
            frames = self._decode()  # the seek flushed the decoder
            key = next((item for item in frames if item[1].key_frame), None)
            if key is not None and key[0] <= index:
                # Frames shown before the keyframe but decoded after it (open-GOP leading pictures)
                # reference frames before the seek point: they are skipped, never cached.
                self._frames, self._next, self._floor = frames, key[0] + 1, key[0]
                self._keep(key[0], key[1])
                return
        self._rewind()

    def _keep(self, index: int, frame: Any) -> None:
        array = frame.to_ndarray(format="rgb24")
        self.cache[index] = array
        self._cached_bytes += array.nbytes
        while len(self.cache) > 1 and self._cached_bytes > self.cache_bytes:
            self._cached_bytes -= self.cache.popitem(last=False)[1].nbytes

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} of a {self.length}-frame video")
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        if self._frames is None or not self._next <= index <= self._next + self.SEEK_AHEAD:
            self._seek(index)
        while index not in self.cache:
            assert self._frames is not None
            number, frame = next(self._frames, (None, None))
            if number is None or number > index:
                raise NanoSam2Error(f"{self.path}: frame {index} cannot be decoded")
            if number >= self._floor:
                self._next = number + 1
                self._keep(number, frame)
        return self.cache[index]


@dataclass
class TrackingState:
    """SAM2's ``inference_state``: the video, the objects and what the memory keeps of them."""

    frames: Frames | None
    num_frames: int | None  # None while streaming (the length is unknown)
    video_height: int
    video_width: int
    objects: "OrderedDict[Any, ObjectState]" = field(default_factory=OrderedDict)
    cached: tuple[int, dict[str, Any]] | None = None  # the last encoded frame's features

    @property
    def obj_ids(self) -> list[Any]:
        return list(self.objects)


class VideoPredictor:
    """Track objects through a video with SAM2.1's memory over any four runners."""

    def __init__(self, encoder: Runner, decoder: Runner, memory_attention: Runner, memory_encoder: Runner,
                 fill_hole_area: int = 0, max_memory_frames: int | None = None) -> None:
        self.encoder, self.decoder = encoder, decoder
        self.memory_attention, self.memory_encoder = memory_attention, memory_encoder
        for runner, graph in ((decoder, C.DECODER), (memory_attention, C.MEMORY_ATTENTION),
                              (memory_encoder, C.MEMORY_ENCODER)):
            C.check_pair(encoder.contract, runner.contract, str(encoder.path), str(runner.path), graph)
        if C.OBJECT_POINTERS not in decoder.output_names:
            raise NanoSam2Error(f"{decoder.path} has no object_pointers output (exported before nanosam2 tracked "
                                "videos): export the model again")
        contract = memory_attention.contract
        self.image_size = encoder.contract.image_size
        self.low_res_size = encoder.contract.low_res_size
        self.selection = decoder.contract.mask_selection
        self.num_maskmem = contract.num_maskmem
        self.max_object_pointers = contract.max_object_pointers
        self.hidden_dim = 256  # SAM2's transformer width (the pointers' size)
        if max_memory_frames is not None and not 0 <= max_memory_frames <= self.num_maskmem - 1:
            raise NanoSam2Error(f"max_memory_frames must be 0..{self.num_maskmem - 1}, got {max_memory_frames}")
        self.recent_frames = self.num_maskmem - 1 if max_memory_frames is None else max_memory_frames
        self.fill_hole_area = int(fill_hole_area)
        self.timings: dict[str, float] = {stage: 0.0 for stage in STAGES}  # ms, accumulated
        self.calls: dict[str, int] = {stage: 0 for stage in STAGES}
        self.stream_state: TrackingState | None = None

    @property
    def runners(self) -> dict[str, Runner]:
        return {C.ENCODER: self.encoder, C.DECODER: self.decoder, C.MEMORY_ATTENTION: self.memory_attention,
                C.MEMORY_ENCODER: self.memory_encoder}

    def identity(self) -> dict[str, Any]:
        return {name: runner.identity() for name, runner in self.runners.items()}

    def __enter__(self) -> "VideoPredictor":
        return self

    def __exit__(self, *exc: Any) -> None:
        for runner in self.runners.values():
            runner.close()

    def _run(self, stage: str, runner: Runner, feed: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        out = runner.infer(feed)
        self.timings[stage] += 1000 * (time.perf_counter() - start)
        self.calls[stage] += 1
        return out

    # ---------------------------------------------------------------- state
    def init_state(self, video: Any) -> TrackingState:
        """A video to track in: a folder of ``<index>.jpg`` frames, a video file, or a sequence of RGB
        uint8 frames."""
        frames = Frames(video)
        return TrackingState(frames, len(frames), frames.height, frames.width)

    def reset_state(self, state: TrackingState) -> None:
        """Forget every object, prompt and tracking result."""
        state.objects.clear()

    def remove_object(self, state: TrackingState, obj_id: Any, strict: bool = False) -> list[Any]:
        """Drop one object (its prompts and memory); the others are unchanged. Returns the object ids left."""
        if obj_id not in state.objects:
            if strict:
                raise NanoSam2Error(f"cannot remove object id {obj_id}: the objects are {state.obj_ids}")
            return state.obj_ids
        del state.objects[obj_id]
        return state.obj_ids

    def _object(self, state: TrackingState, obj_id: Any, create: bool = True) -> ObjectState:
        if obj_id not in state.objects:
            if not create:
                raise NanoSam2Error(f"unknown object id {obj_id}; the objects are {state.obj_ids}")
            state.objects[obj_id] = ObjectState()
        return state.objects[obj_id]

    def _check_frame(self, state: TrackingState, frame_idx: int) -> None:
        if state.num_frames is not None and not 0 <= frame_idx < state.num_frames:
            raise NanoSam2Error(f"frame {frame_idx} is outside the video (frames 0..{state.num_frames - 1})")

    def _features(self, state: TrackingState, frame_idx: int, frame: np.ndarray | None = None) -> dict[str, Any]:
        if state.cached is not None and state.cached[0] == frame_idx:
            return state.cached[1]
        if frame is None:
            assert state.frames is not None
            frame = state.frames[frame_idx]
        if frame.shape[:2] != (state.video_height, state.video_width):
            raise NanoSam2Error(f"frame {frame_idx} is {frame.shape[1]}x{frame.shape[0]}, the video "
                                f"{state.video_width}x{state.video_height}")
        contract = self.encoder.contract
        start = time.perf_counter()
        tensor = T.preprocess_image(frame, contract.image_size, tuple(contract.pixel_mean), tuple(contract.pixel_std))
        features = self.encoder.infer({C.IMAGE: tensor})
        self.timings["encoder"] += 1000 * (time.perf_counter() - start)
        self.calls["encoder"] += 1
        state.cached = (frame_idx, {name: features[name] for name in C.ENCODER_OUTPUTS})
        return state.cached[1]

    # ---------------------------------------------------------------- one frame, one object
    def _memory_feed(self, state: TrackingState, obj: ObjectState, frame_idx: int, reverse: bool) -> dict[str, Any]:
        """The bank SAM2 attends to on ``frame_idx`` (``_prepare_memory_conditioned_features``)."""
        entries: list[tuple[int, FrameOutput]] = [(0, out) for _, out in sorted(obj.cond.items())]
        for t_pos in range(self.num_maskmem - self.recent_frames, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos
            out = obj.non_cond.get(frame_idx + t_rel if reverse else frame_idx - t_rel)
            if out is not None and out.maskmem is not None:
                entries.append((t_pos, out))
        num_ptrs = min(state.num_frames or self.max_object_pointers, self.max_object_pointers)
        sign = -1 if reverse else 1
        pointers = [((frame_idx - t) * sign, out) for t, out in sorted(obj.cond.items())
                    if (t >= frame_idx if reverse else t <= frame_idx)]
        for t_diff in range(1, num_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or (state.num_frames is not None and t >= state.num_frames):
                break
            out = obj.non_cond.get(t)
            if out is not None:
                pointers.append((t_diff, out))
        denominator = np.float32(max(num_ptrs - 1, 1))
        return {
            C.MASKMEM_FEATURES: from_bfloat16_bits(np.concatenate([out.maskmem for _, out in entries])),  # type: ignore[misc]
            C.MASKMEM_TPOS_INDEX: np.array([self.num_maskmem - t_pos - 1 for t_pos, _ in entries], np.int64),
            C.OBJECT_POINTERS: np.array([out.pointer for _, out in pointers], np.float32).reshape(
                len(pointers), self.hidden_dim),
            C.OBJECT_POINTER_OFFSETS: np.array([np.float32(p) / denominator for p, _ in pointers], np.float32),
            C.OBJECT_POINTER_PRESENT: np.array([out.present for _, out in pointers], np.float32),
        }

    def _decode(self, image_embed: Any, features: dict[str, Any], coords: np.ndarray, labels: np.ndarray,
                mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        low = self.low_res_size
        feed = {C.IMAGE_EMBED: image_embed, C.HIGH_RES_FEATS_0: features[C.HIGH_RES_FEATS_0],
                C.HIGH_RES_FEATS_1: features[C.HIGH_RES_FEATS_1],
                C.POINT_COORDS: coords[None].astype(np.float32), C.POINT_LABELS: labels[None].astype(np.float32),
                C.MASK_INPUT: mask_input if mask_input is not None else np.zeros((1, 1, low, low), np.float32),
                C.HAS_MASK_INPUT: np.array([0.0 if mask_input is None else 1.0], np.float32)}
        return self._run("decoder", self.decoder, feed)

    def _track(self, state: TrackingState, obj: ObjectState, frame_idx: int, is_init_cond: bool,
               points: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None, reverse: bool,
               run_memory_encoder: bool, prev_low_res: np.ndarray | None = None,
               frame: np.ndarray | None = None) -> FrameOutput:
        """``SAM2Base.track_step`` for one object on one frame."""
        features = self._features(state, frame_idx, frame)
        embed = features[C.IMAGE_EMBED]
        if mask is not None:  # _use_mask_as_output: the mask is the answer; the decoder gives the pointer
            high = mask.astype(np.float32) * MASK_PROMPT_SCALE + MASK_PROMPT_BIAS
            low_res = T._resample(high[None], (self.low_res_size, self.low_res_size), antialias=True)[None]
            present = float(np.any(mask > 0))
            score = MASK_PROMPT_SCALE * present + MASK_PROMPT_BIAS
            encoded = self._run("memory_encoder", self.memory_encoder, {
                C.IMAGE_EMBED: embed, C.MASK_LOGITS: high[None, None], C.BINARIZE_MASK: np.zeros(1, np.float32),
                C.OBJECT_SCORE_LOGITS: np.array([[score]], np.float32)})
            pad = np.array([PAD, PAD], np.float32)
            out = self._decode(encoded[C.IMAGE_FEATURES], features, np.zeros((2, 2), np.float32), pad,
                               encoded[C.MASK_PROMPT])
            decoder_present = float(out[C.OBJECT_SCORE_LOGITS][0, 0] > 0)
            result = FrameOutput(low_res.astype(np.float32), out[C.OBJECT_POINTERS][0, 0].copy(),
                                 decoder_present * present, score)
        else:
            if is_init_cond:
                conditioned = embed
            else:
                feed = {C.IMAGE_EMBED: embed, **self._memory_feed(state, obj, frame_idx, reverse)}
                conditioned = self._run("memory_attention", self.memory_attention, feed)[C.CONDITIONED_IMAGE_EMBED]
            if points is None:  # SAM2 prompts the decoder with one padding point (and appends another)
                coords, labels = np.zeros((1, 2), np.float32), np.array([PAD], np.float32)
            else:
                coords, labels = points
            num_points = 0 if points is None else len(points[1])
            multimask = num_points <= 1  # multimask_output_in_sam, for tracking too, 0..1 points
            mask_input = None if prev_low_res is None else np.clip(prev_low_res, -T.LOGIT_CLAMP, T.LOGIT_CLAMP)
            out = self._decode(conditioned, features, np.concatenate([coords, np.zeros((1, 2), np.float32)]),
                               np.concatenate([labels, np.array([PAD], np.float32)]), mask_input)
            score = float(out[C.OBJECT_SCORE_LOGITS][0, 0])
            present = float(score > 0)
            masks = out[C.LOW_RES_MASKS] if present else np.full_like(out[C.LOW_RES_MASKS], C.NO_OBJECT_SCORE)
            ious = out[C.IOU_PREDICTIONS]
            lo, hi = self.selection.multimask_slice
            if multimask:
                token = lo + int(np.argmax(ious[0, lo:hi]))
                chosen = masks[:, token : token + 1]
            else:
                token = 0
                chosen, _ = T.select_masks(masks, ious, False, self.selection)
            result = FrameOutput(np.ascontiguousarray(chosen, np.float32), out[C.OBJECT_POINTERS][0, token].copy(),
                                 present, score)
            if run_memory_encoder:
                result.maskmem = self._encode_memory(embed, result.low_res, result.object_score, points is not None)
        if self.fill_hole_area > 0:
            from nanosam2.masks import fill_holes_and_sprinkles

            result.low_res = fill_holes_and_sprinkles(result.low_res, self.fill_hole_area, 0, hole_logit=0.1)
        return result

    def _encode_memory(self, embed: Any, low_res: np.ndarray, object_score: float, binarize: bool) -> np.ndarray:
        out = self._run("memory_encoder", self.memory_encoder, {
            C.IMAGE_EMBED: embed, C.MASK_LOGITS: low_res, C.BINARIZE_MASK: np.array([float(binarize)], np.float32),
            C.OBJECT_SCORE_LOGITS: np.array([[object_score]], np.float32)})
        return to_bfloat16_bits(out[C.MASKMEM_FEATURES])

    # ---------------------------------------------------------------- prompts
    def add_new_points_or_box(self, state: TrackingState, frame_idx: int, obj_id: Any,
                              points: Sequence[Sequence[float]] | np.ndarray | None = None,
                              labels: Sequence[int] | np.ndarray | None = None, clear_old_points: bool = True,
                              normalize_coords: bool = True, box: Sequence[float] | np.ndarray | None = None,
                              frame: np.ndarray | None = None) -> tuple[int, list[Any], np.ndarray]:
        """Clicks (label 1 foreground, 0 background) and/or a box [x0, y0, x1, y1] for one object on one
        frame, in the video's pixels (``normalize_coords=False``: already in the model's S x S frame).
        Returns (frame_idx, obj_ids, mask logits [O, 1, H, W] at the video's size)."""
        self._check_frame(state, frame_idx)
        if (points is None) != (labels is None):
            raise NanoSam2Error("points and labels must be given together")
        if points is None and box is None:
            raise NanoSam2Error("give points and labels, or a box")
        coords = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32).reshape(-1, 2)
        labs = np.zeros(0, np.float32) if labels is None else np.asarray(labels, np.float32).reshape(-1)
        if len(coords) != len(labs):
            raise NanoSam2Error(f"{len(coords)} points but {len(labs)} labels")
        if box is not None:
            if not clear_old_points:
                raise NanoSam2Error("a box must come before any click: use clear_old_points=True with a box")
            corners = np.asarray(box, np.float32).reshape(-1)
            if corners.shape != (4,):
                raise NanoSam2Error(f"a box is [x0, y0, x1, y1], got {corners.tolist()}")
            coords = np.concatenate([corners.reshape(2, 2), coords])
            labs = np.concatenate([np.array([T.LABEL_BOX_TOP_LEFT, T.LABEL_BOX_BOTTOM_RIGHT], np.float32), labs])
        if normalize_coords:
            coords = coords / np.array([state.video_width, state.video_height], np.float32)
        coords = (coords * np.float32(self.image_size)).astype(np.float32)
        obj = self._object(state, obj_id)
        if not clear_old_points and frame_idx in obj.points:
            old_coords, old_labels = obj.points[frame_idx]
            coords, labs = np.concatenate([old_coords, coords]), np.concatenate([old_labels, labs])
        obj.points[frame_idx] = (coords, labs)
        obj.masks.pop(frame_idx, None)
        is_init_cond = frame_idx not in obj.tracked
        reverse = False if is_init_cond else obj.tracked[frame_idx]
        temp = obj.temp_cond if is_init_cond else obj.temp_non_cond
        prev = temp.get(frame_idx) or obj.cond.get(frame_idx) or obj.non_cond.get(frame_idx)
        prev_low_res = prev.low_res if prev is not None else None
        temp[frame_idx] = self._track(state, obj, frame_idx, is_init_cond, (coords, labs), None, reverse, False,
                                      prev_low_res, frame)
        return frame_idx, state.obj_ids, self._frame_masks(state, frame_idx, temp_first=True)

    def add_new_mask(self, state: TrackingState, frame_idx: int, obj_id: Any, mask: np.ndarray,
                     frame: np.ndarray | None = None) -> tuple[int, list[Any], np.ndarray]:
        """A mask [H, W] (bool or 0/1, any size; resized to S x S as Meta does) for one object on one frame."""
        self._check_frame(state, frame_idx)
        array = np.asarray(mask)
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise NanoSam2Error(f"a mask prompt is a 2-D array of 0/1, got {array.dtype} {tuple(array.shape)}")
        binary = (array > 0).astype(np.float32)
        size = self.image_size
        if binary.shape != (size, size):
            binary = (T._resample(binary[None], (size, size), antialias=True)[0] >= 0.5).astype(np.float32)
        obj = self._object(state, obj_id)
        obj.masks[frame_idx] = binary
        obj.points.pop(frame_idx, None)
        is_init_cond = frame_idx not in obj.tracked
        reverse = False if is_init_cond else obj.tracked[frame_idx]
        temp = obj.temp_cond if is_init_cond else obj.temp_non_cond
        temp[frame_idx] = self._track(state, obj, frame_idx, is_init_cond, None, binary, reverse, False, frame=frame)
        return frame_idx, state.obj_ids, self._frame_masks(state, frame_idx, temp_first=True)

    def _frame_masks(self, state: TrackingState, frame_idx: int, temp_first: bool = False) -> np.ndarray:
        """Mask logits [O, 1, H, W] of every object on one frame (NO_OBJECT_SCORE where none is known)."""
        planes = []
        for obj in state.objects.values():
            out = None
            if temp_first:
                out = obj.temp_cond.get(frame_idx) or obj.temp_non_cond.get(frame_idx)
            out = out or obj.cond.get(frame_idx) or obj.non_cond.get(frame_idx)
            if out is None or out.low_res is None:
                planes.append(np.full((1, self.low_res_size, self.low_res_size), C.NO_OBJECT_SCORE, np.float32))
            else:
                planes.append(out.low_res[0])
        if not planes:
            return np.zeros((0, 1, state.video_height, state.video_width), np.float32)
        return T.upsample_masks(np.stack(planes), (state.video_height, state.video_width))

    # ---------------------------------------------------------------- propagation
    def _preflight(self, state: TrackingState) -> None:
        """Encode the memory of the prompted frames and move them into the bank (Meta's preflight)."""
        if not state.objects:
            raise NanoSam2Error("no object has a prompt yet: add points, a box or a mask first")
        for obj_id, obj in state.objects.items():
            for temp, bank in ((obj.temp_non_cond, obj.non_cond), (obj.temp_cond, obj.cond)):
                for frame_idx, out in temp.items():
                    if out.maskmem is None:
                        embed = self._features(state, frame_idx)[C.IMAGE_EMBED]
                        out.maskmem = self._encode_memory(embed, out.low_res, out.object_score, True)  # type: ignore[arg-type]
                    bank[frame_idx] = out
                temp.clear()
            if not obj.cond:
                raise NanoSam2Error(f"object {obj_id} has no prompt: add points, a box or a mask for it first")
            for frame_idx in obj.cond:
                obj.non_cond.pop(frame_idx, None)

    def propagate_in_video(self, state: TrackingState, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None,
                           reverse: bool = False) -> Iterator[tuple[int, list[Any], np.ndarray]]:
        """Track every object from ``start_frame_idx`` (default: the first prompted frame) forwards or
        backwards; yields (frame_idx, obj_ids, mask logits [O, 1, H, W] at the video's size)."""
        self._preflight(state)
        num_frames = state.num_frames or 0
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in state.objects.values() for t in obj.cond)
        self._check_frame(state, start_frame_idx)
        count = num_frames if max_frame_num_to_track is None else max_frame_num_to_track
        if reverse:
            end = max(start_frame_idx - count, 0)
            order: Iterable[int] = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else []
        else:
            end = min(start_frame_idx + count, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        for frame_idx in order:
            yield frame_idx, state.obj_ids, self._step(state, frame_idx, reverse)

    def _step(self, state: TrackingState, frame_idx: int, reverse: bool, frame: np.ndarray | None = None) -> np.ndarray:
        planes = []
        for obj in state.objects.values():
            out = obj.cond.get(frame_idx)
            if out is None:
                out = self._track(state, obj, frame_idx, False, None, None, reverse, True, frame=frame)
                obj.non_cond[frame_idx] = out
            obj.tracked[frame_idx] = reverse
            planes.append(out.low_res[0])  # type: ignore[index]
        return T.upsample_masks(np.stack(planes), (state.video_height, state.video_width))

    # ---------------------------------------------------------------- streaming
    def track_stream(self, frames: Iterable[np.ndarray], prompts: dict[int, list[dict[str, Any]]] | None = None,
                     on_frame: Any = None) -> Iterator[tuple[int, list[Any], np.ndarray]]:
        """Track through frames read one at a time (a camera, a long video), forwards.

        ``prompts``: frame index -> prompt dicts (``obj_id`` with ``points``/``labels``, ``box`` or
        ``mask``), applied when that frame arrives; ``on_frame(index, frame)`` may return more (a
        live UI). Memory stays bounded: each object keeps its prompted frames, the last
        ``num_maskmem - 1`` spatial memories and the last ``max_obj_ptrs_in_encoder - 1`` pointers;
        no frame is kept after its step. Yields (frame_idx, obj_ids, mask logits [O, 1, H, W]);
        objects not prompted yet are absent from ``obj_ids``.
        """
        prompts = dict(prompts or {})
        state: TrackingState | None = None
        for frame_idx, frame in enumerate(frames):
            frame = np.asarray(frame)
            if state is None:
                state = TrackingState(None, None, int(frame.shape[0]), int(frame.shape[1]))
                self.stream_state = state  # what the bank holds: memory_size(predictor.stream_state)
            new = list(prompts.pop(frame_idx, []))
            if on_frame is not None:
                new += list(on_frame(frame_idx, frame) or [])
            for prompt in new:
                apply_prompt(self, state, frame_idx, prompt, frame)
            if new:
                self._preflight(state)
            if state.objects:
                masks = self._step(state, frame_idx, False, frame)
            else:
                masks = np.zeros((0, 1, state.video_height, state.video_width), np.float32)
            self._forget(state, frame_idx)
            yield frame_idx, state.obj_ids, masks

    def _forget(self, state: TrackingState, frame_idx: int) -> None:
        """Drop what no later forward step can read (streaming)."""
        keep_pointer = frame_idx - (self.max_object_pointers - 1)
        keep_memory = frame_idx - self.recent_frames
        for obj in state.objects.values():
            for t in [t for t in obj.non_cond if t <= keep_pointer]:
                del obj.non_cond[t]
            for t, out in obj.non_cond.items():
                if t <= keep_memory:
                    out.maskmem = None
                if t < frame_idx:
                    out.low_res = None
            for t, out in obj.cond.items():
                if t < frame_idx:
                    out.low_res = None
            for t in [t for t in obj.tracked if t < frame_idx]:
                del obj.tracked[t]
            obj.points.clear()
            obj.masks.clear()
        state.cached = None

    def memory_size(self, state: TrackingState) -> dict[str, int]:
        """What the bank holds now: spatial memories, pointers and low-res masks, and their bytes."""
        outs = [out for obj in state.objects.values() for bank in (obj.cond, obj.non_cond) for out in bank.values()]
        memories = sum(out.maskmem is not None for out in outs)
        masks = sum(out.low_res is not None for out in outs)
        nbytes = sum((out.maskmem.nbytes if out.maskmem is not None else 0) + out.pointer.nbytes
                     + (out.low_res.nbytes if out.low_res is not None else 0) for out in outs)
        return {"memories": memories, "pointers": len(outs), "masks": masks, "bytes": nbytes}



def apply_prompt(predictor: VideoPredictor, state: TrackingState, frame_idx: int, prompt: dict[str, Any],
                 frame: np.ndarray | None = None) -> np.ndarray:
    """One prompt dict (``obj_id`` and ``points``+``labels``, ``box`` or a ``mask`` array)."""
    obj_id = prompt["obj_id"]
    if prompt.get("mask") is not None:
        return predictor.add_new_mask(state, frame_idx, obj_id, prompt["mask"], frame=frame)[2]
    return predictor.add_new_points_or_box(state, frame_idx, obj_id, prompt.get("points"), prompt.get("labels"),
                                           box=prompt.get("box"), frame=frame)[2]
