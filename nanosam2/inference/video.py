"""``VideoPredictor``: SAM2VideoPredictor's semantics over four runners, torch-free.

Graphs: the image encoder (once per frame), the memory attention (per object on tracked frames),
the mask decoder and the memory encoder, each on any backend (TensorRT, ONNX Runtime, PyTorch).
Pre- and post-processing are ``nanosam2.transforms`` (the image path's), so a frame is resized
and normalised exactly as an image is. As ``sam2`` splits it: the frames are ``frames.py``, the
memory bank's rules ``memory_bank.py``, one object's step ``track_step.py`` (on the device path: a
frame's features stay where the encoder wrote them), the API and streaming here.

Two ways to use it:
- Meta's API on a whole video: ``init_state`` (a JPEG folder or a video file, both read lazily, or a list
  of frames), ``add_new_points_or_box``, ``add_new_mask``, ``propagate_in_video(reverse=...)``,
  ``remove_object``, ``reset_state``. Per frame and object it keeps what SAM2 can read again
  (memory on the device, pointer, low-res logits: ~1.3 MB at 1024 px), never the decoded frames' tensors
  (Meta keeps every frame as a float32 1024x1024 tensor: 12 MB each).
- ``track_stream``: frames from an iterator (a camera), prompts applied when their frame
  arrives, and a bounded bank: the prompted frames plus a sliding window of the last frames.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.frames import Frames
from nanosam2.inference.memory_bank import FrameOutput, MemoryBank, ObjectState
from nanosam2.inference.pipeline import Pipeline
from nanosam2.inference.runner import Runner
from nanosam2.inference.track_step import TrackStep
from nanosam2.inference.tracker_config import VIDEO_PREDICTOR, TrackerConfig
from nanosam2.inference.video_prompts import apply_prompt

logger = logging.getLogger(__name__)

STAGES = ("encoder", "memory_attention", "decoder", "memory_encoder")
# launch sequences a tracked frame replays with --cuda-graph: per object, memory attention + decoder and the
# memory encoder (its bank's address differs from the other objects'); per frame, the encoder and a spare
GRAPHS_PER_OBJECT, GRAPHS_PER_FRAME = 2, 4


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


class VideoPredictor(Pipeline):
    """Track objects through a video with SAM2.1's memory over any four runners."""

    def __init__(self, encoder: Runner, decoder: Runner, memory_attention: Runner, memory_encoder: Runner,
                 config: TrackerConfig | None = None) -> None:
        """``config``: SAM2's semantic knobs (``tracker_config``; default Meta's video predictor's)."""
        super().__init__({C.ENCODER: encoder, C.DECODER: decoder, C.MEMORY_ATTENTION: memory_attention,
                          C.MEMORY_ENCODER: memory_encoder})
        self.encoder, self.decoder = encoder, decoder
        self.memory_attention, self.memory_encoder = memory_attention, memory_encoder
        if C.OBJECT_POINTERS not in decoder.output_names:
            raise NanoSam2Error(f"{decoder.path} has no object_pointers output (exported before nanosam2 tracked "
                                "videos): export the model again")
        if memory_encoder.contract.contract_version < C.MEMORY_ROUNDED_SINCE:
            raise NanoSam2Error(f"{memory_encoder.path} was exported before the memory encoder rounded its memories to "
                                f"bfloat16 (contract v{memory_encoder.contract.contract_version}): export the model again")
        contract = memory_attention.contract
        self.image_size = encoder.contract.image_size
        self.low_res_size = encoder.contract.low_res_size
        self.num_maskmem = contract.num_maskmem
        self.config = self._resolve(config or VIDEO_PREDICTOR, contract)
        self.bank = MemoryBank(self.num_maskmem, self.config.memory_frames,  # type: ignore[arg-type]
                               self.config.max_object_pointers, self.config.max_cond_frames_in_attn)  # type: ignore[arg-type]
        self.max_object_pointers = self.bank.max_object_pointers
        self.step = TrackStep(self.run, decoder, memory_attention, memory_encoder, self.config)
        self.stage_ms = {stage: 0.0 for stage in STAGES}
        self.stage_calls = {stage: 0 for stage in STAGES}
        self.stream_state: TrackingState | None = None

    def _resolve(self, config: TrackerConfig, contract: C.GraphContract) -> TrackerConfig:
        """``config`` with the model's defaults filled in, SciPy's absence and the engines' profiles applied
        (each said once): what this tracker does, as results files record it."""
        recent = self.num_maskmem - 1 if config.memory_frames is None else config.memory_frames
        if not 0 <= recent <= self.num_maskmem - 1:
            raise NanoSam2Error(f"memory_frames (--max-memory-frames) must be 0..{self.num_maskmem - 1}, got {recent}")
        pointers = contract.max_object_pointers if config.max_object_pointers is None else config.max_object_pointers
        if pointers > contract.max_object_pointers:
            raise NanoSam2Error(f"max_object_pointers {pointers}: the model reads at most {contract.max_object_pointers}")
        config = config.replace(memory_frames=recent, max_object_pointers=pointers, name=config.name)
        if config.fill_hole_area > 0:
            try:
                import scipy.ndimage  # noqa: F401
            except ImportError:
                logger.warning("hole filling (fill_hole_area %d, Meta's default) needs SciPy (pip install "
                               "'nanosam2[masks]'): tracking without it, as Meta does without its CUDA extension",
                               config.fill_hole_area)
                config = config.replace(fill_hole_area=0)
        most_memories = self.memory_attention.max_rows(C.MASKMEM_FEATURES)
        most_pointers = self.memory_attention.max_rows(C.OBJECT_POINTERS)
        rooms = [most - used for most, used in ((most_memories, recent), (most_pointers, pointers - 1)) if most is not None]
        if rooms:
            room = min(rooms)
            if room < 1:
                raise NanoSam2Error(f"{self.memory_attention.path.name} takes at most {most_memories} memories and "
                                    f"{most_pointers} object pointers, fewer than one prompted frame with {recent} recent "
                                    f"memories and {pointers - 1} recent pointers need: build it with the default profiles")
            if config.max_cond_frames_in_attn == -1 or config.max_cond_frames_in_attn > room:
                say = logger.warning if room < C.MAX_PROMPTED_FRAMES else logger.info  # the documented limit: info
                say("%s takes at most %s memories and %s object pointers: at most %d prompted frame(s) per object in "
                    "attention, the closest ones (Meta's max_cond_frames_in_attn; Meta: %s); build it with larger "
                    "--maxShapes for more", self.memory_attention.path.name, most_memories, most_pointers, room,
                    "all" if config.max_cond_frames_in_attn == -1 else config.max_cond_frames_in_attn)
                config = config.replace(max_cond_frames_in_attn=room)
        return config

    @property
    def recent_frames(self) -> int:
        """Recent frames in the bank besides the prompted ones (``memory_frames``)."""
        return self.bank.recent_frames

    @property
    def fill_hole_area(self) -> int:
        return self.config.fill_hole_area

    @property
    def timings(self) -> dict[str, float]:
        """ms per stage, accumulated over the predictor's life."""
        return self.stage_ms

    @property
    def calls(self) -> dict[str, int]:
        return self.stage_calls

    def __enter__(self) -> "VideoPredictor":
        return self

    # ---------------------------------------------------------------- state
    def init_state(self, video: Any) -> TrackingState:
        """A video to track in: a folder of ``<index>.jpg`` frames, a video file, or a sequence of RGB
        uint8 frames."""
        frames = Frames(video)
        return TrackingState(frames, len(frames), frames.height, frames.width)

    def reset_state(self, state: TrackingState) -> None:
        """Forget every object, prompt and tracking result."""
        for obj in state.objects.values():
            if obj.ring is not None:
                obj.ring.release()
        state.objects.clear()

    def remove_object(self, state: TrackingState, obj_id: Any, strict: bool = False) -> list[Any]:
        """Drop one object (its prompts and memory); the others are unchanged. Returns the object ids left."""
        if obj_id not in state.objects:
            if strict:
                raise NanoSam2Error(f"cannot remove object id {obj_id}: the objects are {state.obj_ids}")
            return state.obj_ids
        ring = state.objects.pop(obj_id).ring
        if ring is not None:
            ring.release()
        return state.obj_ids

    def _object(self, state: TrackingState, obj_id: Any, create: bool = True) -> ObjectState:
        if obj_id not in state.objects:
            if not create:
                raise NanoSam2Error(f"unknown object id {obj_id}; the objects are {state.obj_ids}")
            state.objects[obj_id] = ObjectState()
            for runner in self.runners.values():  # CUDA graphs: each object's launches replay, none recaptured
                runner.reserve_graphs(GRAPHS_PER_OBJECT * len(state.objects) + GRAPHS_PER_FRAME)
        return state.objects[obj_id]

    def _check_frame(self, state: TrackingState, frame_idx: int) -> None:
        if state.num_frames is not None and not 0 <= frame_idx < state.num_frames:
            raise NanoSam2Error(f"frame {frame_idx} is outside the video (frames 0..{state.num_frames - 1})")

    def _features(self, state: TrackingState, frame_idx: int, frame: np.ndarray | None = None) -> dict[str, Any]:
        """The frame's encoder outputs, left where the encoder wrote them (the last frame's are cached)."""
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
        tensor = T.preprocess_video_frame(frame, contract.image_size, tuple(contract.pixel_mean),
                                          tuple(contract.pixel_std))
        self.stage_ms["encoder"] += 1000 * (time.perf_counter() - start)  # preprocessing counts with the encoder
        features = self.run("encoder", self.encoder, {C.IMAGE: tensor}, host=False)
        state.cached = (frame_idx, {name: features[name] for name in C.ENCODER_OUTPUTS})
        return state.cached[1]

    def _track(self, state: TrackingState, obj: ObjectState, frame_idx: int, is_init_cond: bool,
               points: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None, reverse: bool,
               run_memory_encoder: bool, prev_low_res: np.ndarray | None = None,
               frame: np.ndarray | None = None) -> FrameOutput:
        """``SAM2Base.track_step`` for one object on one frame."""
        features = self._features(state, frame_idx, frame)
        bank = None if is_init_cond else (lambda: self.bank.feed(obj, frame_idx, reverse, state.num_frames))
        return self.step(obj, features, bank, points, mask, run_memory_encoder, prev_low_res)

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
        return self._video_res(state, np.stack(planes))

    def _video_res(self, state: TrackingState, low_res: np.ndarray) -> np.ndarray:
        """Objects' low-res logits [O, 1, L, L] at the video's size, SAM2's ``_get_orig_video_res_output``."""
        masks = T.upsample_masks(low_res, (state.video_height, state.video_width))
        return T.non_overlapping(masks) if self.config.non_overlap_masks else masks

    # ---------------------------------------------------------------- propagation
    def _preflight(self, state: TrackingState) -> None:
        """Encode the memory of the prompted frames and move them into the bank (Meta's preflight)."""
        if not state.objects:
            raise NanoSam2Error("no object has a prompt yet: add points, a box or a mask first")
        for obj_id, obj in state.objects.items():
            for temp, bank in ((obj.temp_non_cond, obj.non_cond), (obj.temp_cond, obj.cond)):
                for frame_idx, out in temp.items():
                    bank[frame_idx] = out
                    if out.maskmem is None:
                        embed = self._features(state, frame_idx)[C.IMAGE_EMBED]
                        self.step.encode_memory(obj, out, embed, self.config.binarize_mask_from_pts_for_mem_enc)
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
        return self._video_res(state, np.stack(planes))

    # ---------------------------------------------------------------- streaming
    def track_stream(self, frames: Iterable[np.ndarray], prompts: dict[int, list[dict[str, Any]]] | None = None,
                     on_frame: Any = None, num_frames: int | None = None) -> Iterator[tuple[int, list[Any], np.ndarray]]:
        """Track through frames read one at a time (a camera, a long video), forwards.

        ``prompts``: frame index -> prompt dicts (``obj_id`` with ``points``/``labels``, ``box`` or
        ``mask``), applied when that frame arrives; ``on_frame(index, frame)`` may return more (a
        live UI). Memory stays bounded: each object keeps its prompted frames, the last
        ``num_maskmem - 1`` spatial memories and the last ``max_obj_ptrs_in_encoder - 1`` pointers;
        no frame is kept after its step. Yields (frame_idx, obj_ids, mask logits [O, 1, H, W]);
        objects not prompted yet are absent from ``obj_ids``. ``num_frames``: the video's length where it is
        known (a file): SAM2 scales the pointers' temporal offsets by ``min(num_frames, 16) - 1``, as in the
        whole-video API; unknown (a camera): by 15.
        """
        prompts = dict(prompts or {})
        state: TrackingState | None = None
        for frame_idx, frame in enumerate(frames):
            frame = np.asarray(frame)
            if state is None:
                state = self.stream_state = self.new_stream(frame, num_frames)  # memory_size(predictor.stream_state)
            new = list(prompts.pop(frame_idx, []))
            if on_frame is not None:
                new += list(on_frame(frame_idx, frame) or [])
            masks = self.stream_step(state, frame_idx, frame, new)  # before obj_ids: its prompts add objects
            yield frame_idx, state.obj_ids, masks

    def new_stream(self, first_frame: np.ndarray, num_frames: int | None = None) -> TrackingState:
        """The state of a stream whose frames are the size of ``first_frame`` (:meth:`stream_step` takes them)."""
        return TrackingState(None, num_frames, int(first_frame.shape[0]), int(first_frame.shape[1]))

    def stream_step(self, state: TrackingState, frame_idx: int, frame: np.ndarray,
                    prompts: Sequence[dict[str, Any]] = ()) -> np.ndarray:
        """One frame of a stream (:meth:`track_stream`, or a server's session: frame after frame, in order):
        ``prompts`` applied on it, then every prompted object tracked; mask logits [O, 1, H, W] of
        ``state.obj_ids``. What no later frame reads is dropped from the bank."""
        for prompt in prompts:
            apply_prompt(self, state, frame_idx, prompt, frame)
        if prompts:
            self._preflight(state)
        if state.objects:
            masks = self._step(state, frame_idx, False, frame)
        else:
            masks = np.zeros((0, 1, state.video_height, state.video_width), np.float32)
        self._forget(state, frame_idx)
        return masks

    def _forget(self, state: TrackingState, frame_idx: int) -> None:
        """Drop what no later forward step can read (streaming)."""
        self.bank.forget(list(state.objects.values()), frame_idx)
        state.cached = None

    def memory_size(self, state: TrackingState) -> dict[str, int]:
        """What the bank holds now: spatial memories, pointers and low-res masks, and their bytes."""
        return self.bank.size(list(state.objects.values()))
