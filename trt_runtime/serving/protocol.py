"""What a nanosam2 server and its clients agree on: model names, tensor names, types and shapes, and the JSON
that prompts and settings travel in. The server (``server.py``) and the client (``client.py``) both read this
table, and ``trt_runtime/README.md`` prints it; a client in another language needs only the table.

Every model answers ``ERROR`` (empty when the request succeeded, else one line saying what was wrong with it)
and ``MODEL`` (JSON: what produced the answer, as results files record it). An output with no elements (no
object tracked yet, no mask found) is absent from the answer: read it as empty. Errors travel in ``ERROR`` rather
than as a failed request because Triton's dynamic batcher runs several clients' image requests in one call:
one client's bad prompt must not fail the others'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from nanosam2.errors import NanoSam2Error

IMAGE_MODEL = "nanosam2_image"
EVERYTHING_MODEL = "nanosam2_everything"
TRACK_MODEL = "nanosam2_track"

ERROR = "ERROR"  # BYTES [1]: "" or one line
MODEL = "MODEL"  # BYTES [1]: JSON identity of the graphs (and, for tracking, the tracker's semantics)


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: type  # numpy type; bytes for Triton's BYTES
    shape: tuple[int, ...]  # -1: any size; without the batch axis of a batching model
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batching: bool  # Triton's dynamic batcher: a leading batch axis on every tensor
    doc: str

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)


_COMMON_OUTPUTS = (Tensor(ERROR, bytes, (1,), doc='"" on success, else one line (the other outputs are then absent)'),
                   Tensor(MODEL, bytes, (1,), doc="JSON: the graphs' identity (backend, file and weights hashes)"))

IMAGE = ModelSpec(IMAGE_MODEL, inputs=(
    Tensor("IMAGE", np.uint8, (-1, -1, 3), doc="RGB pixels [H, W, 3]"),
    Tensor("PROMPTS", bytes, (1,), doc='JSON {"points": [[x, y], ...] or [[[x, y], ...], ...] (one list per prompt), '
                                       '"labels": [1, 0, ...] (same nesting), "boxes": [[x0, y0, x1, y1], ...], '
                                       '"multimask": false, "best": false} in image pixels; "best": per prompt the '
                                       'multimask output of highest predicted IoU (the COCO protocol); '
                                       '{"describe": true}: MODEL alone'),
    Tensor("MASK_INPUT", np.float32, (-1, 1, -1, -1), optional=True, doc="[P, 1, S/4, S/4] low-res logits of an earlier "
                                                                         "answer, one per prompt (S: the model's size)"),
), outputs=(
    Tensor("MASKS", np.bool_, (-1, -1, -1, -1), doc="[P, C, H, W] at the image's size (C: 3 multimask, else 1)"),
    Tensor("SCORES", np.float32, (-1, -1), doc="[P, C] predicted IoU"),
    Tensor("LOW_RES_LOGITS", np.float32, (-1, -1, -1, -1), doc="[P, C, S/4, S/4] clamped to +-32 (computed only "
                                                                "when requested)"),
    *_COMMON_OUTPUTS,
), batching=True, doc="SAM2ImagePredictor.predict on one image; concurrent requests of one image size share encoder "
                      "calls where the encoder takes a batch")

EVERYTHING = ModelSpec(EVERYTHING_MODEL, inputs=(
    Tensor("IMAGE", np.uint8, (-1, -1, 3), doc="RGB pixels [H, W, 3]"),
    Tensor("SETTINGS", bytes, (1,), optional=True,
           doc="JSON of SAM2AutomaticMaskGenerator's parameters (points_per_side, pred_iou_thresh, ...; Meta's defaults) "
               'and "multimask" (default true), "max_prompts"'),
), outputs=(
    Tensor("RECORDS", bytes, (1,), doc="JSON list of SAM2AutomaticMaskGenerator records, segmentation as COCO RLE "
                                       "(masks.json of `everything`)"),
    Tensor("SCORES", np.float32, (-1,), doc="[M] predicted IoU of each record"),
    Tensor("STATS", bytes, (1,), doc='JSON {"prompts_decoded", "crop_layers", "timings_ms"}'),
    *_COMMON_OUTPUTS,
), batching=False, doc="segment everything (SAM2AutomaticMaskGenerator) on one image")

TRACK = ModelSpec(TRACK_MODEL, inputs=(
    Tensor("SEQUENCE_ID", np.uint64, (1,), doc="the session (a camera): chosen by the client, non-zero"),
    Tensor("SEQUENCE_START", np.bool_, (1,), optional=True, doc="true on a session's first request"),
    Tensor("SEQUENCE_END", np.bool_, (1,), optional=True, doc="true on its last (with or without a frame): frees it"),
    Tensor("FRAME", np.uint8, (-1, -1, 3), optional=True, doc="the next RGB frame [H, W, 3], in order"),
    Tensor("PROMPTS", bytes, (1,), optional=True,
           doc='JSON list for this frame: {"obj_id": N, "points": [[x, y], ...], "labels": [1, ...], "box": [x0, y0, x1, '
               'y1]} or {"obj_id": N, "mask": K} (K: index into PROMPT_MASKS) or {"remove": N}'),
    Tensor("PROMPT_MASKS", np.uint8, (-1, -1, -1), optional=True, doc="[K, H, W] 0/1 mask prompts of this frame"),
    Tensor("SETTINGS", bytes, (1,), optional=True,
           doc='JSON on the first request: {"preset": "video-predictor" | "vos-inference" (or "config": a TrackerConfig '
               'record), "fill_hole_area": N, "memory_frames": N, "num_frames": N (the video\'s length where known)}'),
), outputs=(
    Tensor("FRAME_INDEX", np.int64, (1,), doc="position of this frame in the session (0, 1, ...)"),
    Tensor("OBJ_IDS", np.int64, (-1,), doc="[O] the objects tracked so far"),
    Tensor("LOGITS", np.float32, (-1, 1, -1, -1), doc="[O, 1, H, W] mask logits at the frame's size (mask: > 0)"),
    *_COMMON_OUTPUTS,
), batching=False, doc="SAM2's video predictor as a stream, one session per camera: a frame per request, each answered "
                       "with every object's mask; a bounded memory bank per session")

MODELS = {spec.name: spec for spec in (IMAGE, EVERYTHING, TRACK)}
TRITON_TYPES = {bytes: "BYTES", np.uint8: "UINT8", np.float32: "FP32", np.bool_: "BOOL", np.int64: "INT64",
                np.uint64: "UINT64"}  # a table's numpy type -> Triton's name of it


def to_json_tensor(value: Any) -> np.ndarray:
    """A BYTES tensor of one JSON document."""
    return np.array([json.dumps(value).encode()], dtype=np.object_)


def from_json_tensor(array: np.ndarray | None, what: str, default: Any = None) -> Any:
    """The JSON document of a BYTES tensor (any batch axes), or ``default`` when absent."""
    if array is None:
        return default
    items = np.asarray(array).reshape(-1)
    if items.size != 1:
        raise NanoSam2Error(f"{what} holds {items.size} elements; it is one JSON document")
    raw = items[0]
    try:
        return json.loads(raw.decode() if isinstance(raw, (bytes, bytearray)) else str(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NanoSam2Error(f"{what} is not JSON ({exc})") from None


def error_text(array: np.ndarray | None) -> str:
    if array is None:
        return ""
    raw = np.asarray(array).reshape(-1)[0]
    return raw.decode() if isinstance(raw, (bytes, bytearray)) else str(raw)


def markdown_table() -> str:
    """The table of models and tensors (trt_runtime/README.md holds a copy; a test keeps them equal)."""
    rows = ["| model | in/out | tensor | type | shape | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for spec in MODELS.values():
        for kind, tensors in (("in", spec.inputs), ("out", spec.outputs)):
            for t in tensors:
                dtype = TRITON_TYPES[t.dtype]
                shape = ("[B] + " if spec.batching else "") + str(list(t.shape)).replace(" ", "")
                rows.append(f"| `{spec.name}` | {kind}{' (optional)' if t.optional else ''} | `{t.name}` | {dtype} | "
                            f"{shape} | {t.doc.replace('|', '&#124;')} |")
    return "\n".join(rows)
