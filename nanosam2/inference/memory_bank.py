"""SAM2's memory of one object, torch-free: what each frame leaves (``FrameOutput``), an object's
frames (``ObjectState``), and the rules of ``SAM2Base._prepare_memory_conditioned_features`` that pick
the bank the memory attention reads (``MemoryBank.feed``) and what streaming may forget.

The bank is every conditioning frame (t_pos 0), the ``num_maskmem - 1`` frames before the current one
(after it, in reverse), and up to ``max_obj_ptrs_in_encoder`` object pointers, conditioning frames'
pointers first (only those in the past), then the nearest tracked frames'. Spatial memories are kept
rounded to bfloat16 (stored as 16-bit words: half the memory), as Meta keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanosam2 import contract as C


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


@dataclass
class MemoryBank:
    """The bank's rules for one model: ``num_maskmem`` slots, ``recent_frames`` of them used
    (``--max-memory-frames``), ``max_object_pointers`` pointers of ``hidden_dim`` values."""

    num_maskmem: int
    recent_frames: int
    max_object_pointers: int
    hidden_dim: int = 256  # SAM2's transformer width (the pointers' size)

    def feed(self, obj: ObjectState, frame_idx: int, reverse: bool, num_frames: int | None) -> dict[str, Any]:
        """The memory attention's bank inputs on ``frame_idx``."""
        entries: list[tuple[int, FrameOutput]] = [(0, out) for _, out in sorted(obj.cond.items())]
        for t_pos in range(self.num_maskmem - self.recent_frames, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos
            out = obj.non_cond.get(frame_idx + t_rel if reverse else frame_idx - t_rel)
            if out is not None and out.maskmem is not None:
                entries.append((t_pos, out))
        num_ptrs = min(num_frames or self.max_object_pointers, self.max_object_pointers)
        sign = -1 if reverse else 1
        pointers = [((frame_idx - t) * sign, out) for t, out in sorted(obj.cond.items())
                    if (t >= frame_idx if reverse else t <= frame_idx)]
        for t_diff in range(1, num_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
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

    @staticmethod
    def size(objects: list[ObjectState]) -> dict[str, int]:
        """What the bank holds now: spatial memories, pointers and low-res masks, and their bytes."""
        outs = [out for obj in objects for bank in (obj.cond, obj.non_cond) for out in bank.values()]
        memories = sum(out.maskmem is not None for out in outs)
        masks = sum(out.low_res is not None for out in outs)
        nbytes = sum((out.maskmem.nbytes if out.maskmem is not None else 0) + out.pointer.nbytes
                     + (out.low_res.nbytes if out.low_res is not None else 0) for out in outs)
        return {"memories": memories, "pointers": len(outs), "masks": masks, "bytes": nbytes}
