"""What the tracker does besides running graphs, in one place: SAM2's semantic knobs (``SAM2Base`` and
``SAM2VideoPredictor`` take them as constructor options) and two presets, Meta's own:

- ``video-predictor``: ``sam2.build_sam.build_sam2_video_predictor`` with its defaults
  (``apply_postprocessing=True``): prompted frames enter the memory binarised, a prompt of two or more
  points falls back to the best multimask output when its single mask is unstable, holes up to 8
  low-res pixels are filled (Meta skips that without its CUDA extension, and so does this tracker without
  SciPy: said once), objects may overlap. What ``track`` and the Python API use by default.
- ``vos-inference``: Meta's ``tools/vos_inference.py`` (SAM2's VOS evaluation: no
  ``--apply_postprocessing``): prompted masks enter the memory as sigmoid(logits), no stability fallback,
  no hole filling; objects do not overlap where the annotations are one palette PNG a frame (DAVIS,
  MOSE) and may overlap where they are one PNG an object (SA-V's ``--per_obj_png_file``), as the script
  chooses. What ``eval-vos`` uses.

The bank the memory attention reads is every prompted frame ("conditioning frame"), the
``memory_frames`` frames before the current one and up to ``max_object_pointers`` object pointers.
Meta's ``max_cond_frames_in_attn`` (-1: every prompted frame) keeps the temporally closest prompted
frames when capped; an engine whose profile could not take a longer bank gets that cap at open
(``VideoPredictor``), said once, instead of failing N frames later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nanosam2.errors import NanoSam2Error

# SAM2.1's memory encoder input: sigmoid(scale * logits + bias); baked into memory_encoder.onnx at export
SAM2_SIGMOID_SCALE_FOR_MEM_ENC, SAM2_SIGMOID_BIAS_FOR_MEM_ENC = 20.0, -10.0


@dataclass(frozen=True)
class TrackerConfig:
    name: str = "custom"
    memory_frames: int | None = None  # recent spatial memories besides prompted frames (None: num_maskmem - 1)
    max_object_pointers: int | None = None  # Meta's max_obj_ptrs_in_encoder (None: the model's, 16)
    max_cond_frames_in_attn: int = -1  # prompted frames in the bank; -1: all (Meta's default), else the closest
    binarize_mask_from_pts_for_mem_enc: bool = True  # a prompted frame's mask enters the memory as mask > 0
    non_overlap_masks: bool = False  # a pixel goes to the object of the highest logit (the others clamped to -10)
    fill_hole_area: int = 8  # fill background holes up to this many low-res pixels (0: off)
    dynamic_multimask_via_stability: bool = True  # 2+ points: the best multimask output when the single is unstable
    sigmoid_scale_for_mem_enc: float = SAM2_SIGMOID_SCALE_FOR_MEM_ENC
    sigmoid_bias_for_mem_enc: float = SAM2_SIGMOID_BIAS_FOR_MEM_ENC

    def __post_init__(self) -> None:
        if self.memory_frames is not None and self.memory_frames < 0:
            raise NanoSam2Error(f"memory_frames must be >= 0, got {self.memory_frames}")
        if self.max_object_pointers is not None and self.max_object_pointers < 1:
            raise NanoSam2Error(f"max_object_pointers must be >= 1, got {self.max_object_pointers}")
        if self.max_cond_frames_in_attn != -1 and self.max_cond_frames_in_attn < 1:
            raise NanoSam2Error(f"max_cond_frames_in_attn is -1 (every prompted frame) or >= 1, got "
                                f"{self.max_cond_frames_in_attn}")
        if self.fill_hole_area < 0:
            raise NanoSam2Error(f"fill_hole_area must be >= 0, got {self.fill_hole_area}")
        if (self.sigmoid_scale_for_mem_enc, self.sigmoid_bias_for_mem_enc) != (SAM2_SIGMOID_SCALE_FOR_MEM_ENC,
                                                                               SAM2_SIGMOID_BIAS_FOR_MEM_ENC):
            raise NanoSam2Error("the memory encoder graph bakes SAM2.1's sigmoid scale 20 and bias -10 at export; "
                                "other values need another export")

    def replace(self, **changes: Any) -> "TrackerConfig":
        """A copy with ``changes``; a preset that is changed is named ``<preset>+`` (unless ``name`` is given: the
        tracker fills in the model's defaults under the preset's own name)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise NanoSam2Error(f"unknown tracker settings {sorted(unknown)}")
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if changed and "name" not in changes and not self.name.endswith("+") and self.name != "custom":
            changed["name"] = self.name + "+"
        return replace(self, **changed) if changed else self

    def record(self) -> dict[str, Any]:
        """What results files record."""
        return asdict(self)


VIDEO_PREDICTOR = TrackerConfig("video-predictor")
VOS_INFERENCE = TrackerConfig("vos-inference", binarize_mask_from_pts_for_mem_enc=False, non_overlap_masks=True,
                              fill_hole_area=0, dynamic_multimask_via_stability=False)
PRESETS = {config.name: config for config in (VIDEO_PREDICTOR, VOS_INFERENCE)}


def preset(name: str) -> TrackerConfig:
    if name not in PRESETS:
        raise NanoSam2Error(f"unknown tracker preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def vos_inference_config(per_object: bool) -> TrackerConfig:
    """``tools/vos_inference.py``'s model: ``non_overlap_masks`` unless the annotations are one PNG an object
    (``--per_obj_png_file``: SA-V)."""
    return VOS_INFERENCE if not per_object else replace(VOS_INFERENCE, non_overlap_masks=False)


def select_closest_cond_frames(frame_idx: int, cond: dict[int, Any], max_cond_frames: int) -> tuple[dict[int, Any],
                                                                                                   dict[int, Any]]:
    """Meta's ``sam2.modeling.sam2_utils.select_closest_cond_frames``: at most ``max_cond_frames`` prompted
    frames, the closest before ``frame_idx`` and the closest at or after it first, then the temporally
    closest others; returns (selected, unselected). (Meta asserts a cap of 2 or more; a cap of 1 keeps the
    closest one.)"""
    if max_cond_frames == -1 or len(cond) <= max_cond_frames:
        return dict(cond), {}
    selected: dict[int, Any] = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    after = min((t for t in cond if t >= frame_idx), default=None)
    for t in (before, after):
        if t is not None:
            selected[t] = cond[t]
    if len(selected) > max_cond_frames:  # a cap of 1: the closer of the two
        assert before is not None and after is not None
        keep = before if frame_idx - before <= after - frame_idx else after
        selected = {keep: cond[keep]}
    remain = sorted((t for t in cond if t not in selected), key=lambda t: abs(t - frame_idx))
    selected.update((t, cond[t]) for t in remain[: max_cond_frames - len(selected)])
    return selected, {t: v for t, v in cond.items() if t not in selected}
