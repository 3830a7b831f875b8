"""SAM2's memory of one object, torch-free: what each frame leaves (``FrameOutput``), an object's
frames (``ObjectState``), its spatial memories on the device (``MemoryRing``), and the rules of
``SAM2Base._prepare_memory_conditioned_features`` that pick the bank the memory attention reads
(``MemoryBank.feed``) and what streaming may forget.

The bank is every conditioning frame (t_pos 0), the ``num_maskmem - 1`` frames before the current one
(after it, in reverse), and up to ``max_obj_ptrs_in_encoder`` object pointers, conditioning frames'
pointers first (only those in the past), then the nearest tracked frames'.

Spatial memories never visit the host: the memory encoder graph rounds each to bfloat16 (as Meta stores
them) and the tracker copies it, device to device, into a row of the object's ring, one buffer on the
memory attention's backend. The memory attention reads the rows it needs in place: its result does not
depend on the order of the memories (each carries its temporal encoding; attention sums over them), so
when the bank is exactly the rows ``0..n-1`` (streaming, once ``forget`` has compacted the ring: one row
copy per frame) the feed is a view of the ring, with no copy at all; otherwise (the whole-video API,
which keeps every frame's memory) the chosen rows are gathered device to device. Pointers (1 KB each)
stay on the host, with the decoder's answers they come from.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from nanosam2 import contract as C
from nanosam2.inference.device import DeviceArray, DeviceBuffer
from nanosam2.inference.runner import Runner
from nanosam2.inference.tracker_config import select_closest_cond_frames


@dataclass
class FrameOutput:
    """What one object keeps of one frame (SAM2's ``compact_current_out``)."""

    low_res: np.ndarray | None  # [1, 1, L, L] mask logits (NO_OBJECT_SCORE where absent)
    pointer: np.ndarray  # [256] object pointer before the no-object blend
    present: float  # 1.0 where the pointer counts as the object's (else the no-object pointer is used)
    object_score: float
    maskmem: int | None = None  # its spatial memory's row in the object's ring, once encoded


@dataclass
class ObjectState:
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    points: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # scaled coords, labels
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    ring: "MemoryRing | None" = None  # the spatial memories, on the memory attention's device

    def outputs(self) -> Iterator[FrameOutput]:
        for frames in (self.cond, self.non_cond, self.temp_cond, self.temp_non_cond):
            yield from frames.values()


class MemoryRing:
    """One object's spatial memories: rows of one buffer on ``runner``'s device (``Runner.new_buffer``),
    written in place. A row is free when no output of the object holds it (forgotten, replaced)."""

    def __init__(self, runner: Runner, capacity: int) -> None:
        self.runner = runner
        self.capacity = max(int(capacity), 1)
        self.buffer: DeviceBuffer | None = None  # allocated on the first memory (its shape is the graph's)
        self.staging: DeviceBuffer | None = None  # gathered feeds (the whole-video API)
        self.holders: list[FrameOutput | None] = []
        self.row_copies = 0  # device-to-device row copies besides writing new memories (tests, logs)

    @property
    def row_bytes(self) -> int:
        return 0 if self.buffer is None else self.buffer.nbytes // self.buffer.shape[0]

    def _allocate(self, shape: tuple[int, ...]) -> DeviceBuffer:
        buffer = self.runner.new_buffer(C.MASKMEM_FEATURES, shape)
        # freed when the ring goes, if not before (a handle frees once: a buffer freed when the ring grew is not
        # freed again, whatever lives at its address now); not at interpreter exit (the GPU memory goes with it)
        weakref.finalize(self, buffer.free).atexit = False
        return buffer

    def add(self, out: FrameOutput, memory: Any, live: list[FrameOutput]) -> None:
        """Write ``memory`` [1, 64, h, w] (the memory encoder's output, on its device) into a free row."""
        if self.buffer is None:
            self.buffer = self._allocate((self.capacity, *memory.shape[1:]))
            self.holders = [None] * self.capacity
        row = self._free_row(live)
        if row is None:  # every row is held: twice the rows, the old ones copied over
            old, rows = self.buffer, self.capacity
            self.capacity *= 2
            self.buffer = self._allocate((self.capacity, *old.shape[1:]))
            self.runner.write_rows(self.buffer, 0, self.runner.rows(old, 0, rows))
            old.free()
            self.holders += [None] * rows
            row = rows
        self.runner.write_rows(self.buffer, row, memory)
        self.holders[row] = out
        out.maskmem = row

    def _free_row(self, live: list[FrameOutput]) -> int | None:
        alive = {id(out) for out in live}
        for row, holder in enumerate(self.holders):
            if holder is None or holder.maskmem != row or id(holder) not in alive:
                self.holders[row] = None
                return row
        return None

    def compact(self, live: list[FrameOutput]) -> None:
        """Move the held rows to the front (one row copy per hole), so that a bank of every held memory
        is a view of the ring."""
        if self.buffer is None:
            return
        alive = {id(out) for out in live}
        held = [h if h is not None and h.maskmem == row and id(h) in alive else None
                for row, h in enumerate(self.holders)]
        count = sum(h is not None for h in held)
        holes = [row for row in range(count) if held[row] is None]
        movers = [row for row in range(count, len(held)) if held[row] is not None]
        for hole, row in zip(holes, movers):
            self.runner.write_rows(self.buffer, hole, self.runner.rows(self.buffer, row, 1))
            self.row_copies += 1
            held[hole], held[row] = held[row], None
            held[hole].maskmem = hole  # type: ignore[union-attr]
        self.holders = held

    def feed(self, rows: list[int]) -> tuple[DeviceArray, list[int]]:
        """The memories of ``rows`` as one device array, and the order its rows hold them in (a view of
        the ring when ``rows`` are exactly its first rows, else a device-to-device gather)."""
        assert self.buffer is not None, "no memory was encoded yet"
        count = len(rows)
        if sorted(rows) == list(range(count)):
            return self.runner.rows(self.buffer, 0, count), sorted(rows)
        if self.staging is None or self.staging.shape[0] < count:
            if self.staging is not None:
                self.staging.free()
            self.staging = self._allocate((max(count, self.capacity), *self.buffer.shape[1:]))
        start = 0
        while start < count:  # runs of consecutive rows in one copy each
            end = start + 1
            while end < count and rows[end] == rows[end - 1] + 1:
                end += 1
            self.runner.write_rows(self.staging, start, self.runner.rows(self.buffer, rows[start], end - start))
            self.row_copies += end - start
            start = end
        return self.runner.rows(self.staging, 0, count), list(rows)

    def release(self) -> None:
        """Free the buffers now (an object removed; otherwise when the ring is garbage-collected)."""
        for buffer in (self.buffer, self.staging):
            if buffer is not None:
                buffer.free()
        self.buffer = self.staging = None
        self.holders = []


@dataclass
class MemoryBank:
    """The bank's rules for one model: ``num_maskmem`` slots, ``recent_frames`` of them used
    (``memory_frames``), ``max_object_pointers`` pointers of ``hidden_dim`` values, at most
    ``max_cond_frames`` prompted frames (-1: all; the closest when capped, Meta's ``max_cond_frames_in_attn``)."""

    num_maskmem: int
    recent_frames: int
    max_object_pointers: int
    max_cond_frames: int = -1
    hidden_dim: int = 256  # SAM2's transformer width (the pointers' size)

    def feed(self, obj: ObjectState, frame_idx: int, reverse: bool, num_frames: int | None) -> dict[str, Any]:
        """The memory attention's bank inputs on ``frame_idx`` (``num_frames``: the video's length, None
        when unknown: a camera)."""
        selected, unselected = select_closest_cond_frames(frame_idx, obj.cond, self.max_cond_frames)
        entries: list[tuple[int, FrameOutput]] = [(0, out) for out in selected.values()]
        for t_pos in range(self.num_maskmem - self.recent_frames, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos
            t = frame_idx + t_rel if reverse else frame_idx - t_rel
            out = obj.non_cond.get(t, unselected.get(t))  # a prompted frame left out counts as a recent one
            if out is not None and out.maskmem is not None:
                entries.append((t_pos, out))
        num_ptrs = min(num_frames or self.max_object_pointers, self.max_object_pointers)
        sign = -1 if reverse else 1
        pointers = [((frame_idx - t) * sign, out) for t, out in selected.items()
                    if (t >= frame_idx if reverse else t <= frame_idx)]
        for t_diff in range(1, num_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = obj.non_cond.get(t, unselected.get(t))
            if out is not None:
                pointers.append((t_diff, out))
        denominator = np.float32(max(num_ptrs - 1, 1))
        assert obj.ring is not None
        memories, order = obj.ring.feed([out.maskmem for _, out in entries])  # type: ignore[misc]
        t_pos_of = {out.maskmem: t_pos for t_pos, out in entries}
        return {
            C.MASKMEM_FEATURES: memories,
            C.MASKMEM_TPOS_INDEX: np.array([self.num_maskmem - t_pos_of[row] - 1 for row in order], np.int64),
            C.OBJECT_POINTERS: np.array([out.pointer for _, out in pointers], np.float32).reshape(
                len(pointers), self.hidden_dim),
            C.OBJECT_POINTER_OFFSETS: np.array([np.float32(p) / denominator for p, _ in pointers], np.float32),
            C.OBJECT_POINTER_PRESENT: np.array([out.present for _, out in pointers], np.float32),
        }

    def forget(self, objects: list[ObjectState], frame_idx: int) -> None:
        """Drop what no later forward step can read (streaming)."""
        keep_pointer = frame_idx - (self.max_object_pointers - 1)
        keep_memory = frame_idx - self.recent_frames
        for obj in objects:
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
            if obj.ring is not None:
                obj.ring.compact(list(obj.outputs()))

    @staticmethod
    def size(objects: list[ObjectState]) -> dict[str, int]:
        """What the bank holds now: spatial memories, pointers and low-res masks, and their bytes."""
        outs = [(obj, out) for obj in objects for bank in (obj.cond, obj.non_cond) for out in bank.values()]
        memories = sum(out.maskmem is not None for _, out in outs)
        masks = sum(out.low_res is not None for _, out in outs)
        nbytes = sum((obj.ring.row_bytes if out.maskmem is not None and obj.ring is not None else 0)
                     + out.pointer.nbytes + (out.low_res.nbytes if out.low_res is not None else 0) for obj, out in outs)
        device = sum(obj.ring.buffer.nbytes for obj in objects if obj.ring is not None and obj.ring.buffer is not None)
        return {"memories": memories, "pointers": len(outs), "masks": masks, "bytes": nbytes, "device_bytes": device}
