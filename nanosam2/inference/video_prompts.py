"""Video prompts, checked where they are applied: parsed from JSON or the command line (one validation with
images: finite, inside the frame, labels 0/1), merged per object and frame, placed on the video's frames, and
applied to a ``VideoPredictor`` (Meta's ``add_new_points_or_box`` / ``add_new_mask``).

A prompt is ``{"frame", "obj_id", "points" + "labels"}``, ``{"frame", "obj_id", "box"}``, both, or
``{"frame", "obj_id", "mask": "file.png"}``; prompts of one object on one frame become one.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from nanosam2.errors import NanoSam2Error
from nanosam2.inference.frames import Frames
from nanosam2.prompts import Prompts

logger = logging.getLogger("trt_runtime")


def _number_list(value: Any, length: int | None, what: str) -> list[float]:
    if not isinstance(value, list) or (length is not None and len(value) != length) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise NanoSam2Error(f"{what} must be a list of {length or 'some'} finite numbers, got {json.dumps(value)[:80]}")
    return [float(v) for v in value]


def parse_prompts(data: Any, base: Path, source: str = "prompts") -> list[dict[str, Any]]:
    """Check a prompts list (``[{"frame": F, "obj_id": K, "points": [[x, y], ...], "labels": [1, ...]}``,
    ``{"frame", "obj_id", "box": [x0, y0, x1, y1]}`` or ``{"frame", "obj_id", "mask": "file.png"}``);
    mask files are read relative to ``base``. Returns prompt dicts for ``apply_prompt``."""
    if not isinstance(data, list) or not data:
        raise NanoSam2Error(f"{source}: expected a non-empty JSON list of prompts")
    prompts = []
    for index, item in enumerate(data):
        where = f"{source}[{index}]"
        if not isinstance(item, dict):
            raise NanoSam2Error(f"{where}: a prompt is an object with frame, obj_id and points/box/mask")
        unknown = set(item) - {"frame", "obj_id", "points", "labels", "box", "mask"}
        if unknown:
            raise NanoSam2Error(f"{where}: unknown keys {sorted(unknown)}")
        frame, obj_id = item.get("frame"), item.get("obj_id")
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            raise NanoSam2Error(f"{where}: frame must be a frame index >= 0, got {frame!r}")
        if not isinstance(obj_id, int) or isinstance(obj_id, bool):
            raise NanoSam2Error(f"{where}: obj_id must be an integer, got {obj_id!r}")
        prompt: dict[str, Any] = {"frame": frame, "obj_id": obj_id}
        kinds = [k for k in ("points", "box", "mask") if k in item]
        if not kinds or ("mask" in kinds and len(kinds) > 1):
            raise NanoSam2Error(f"{where}: give points (with labels), a box, points and a box, or a mask")
        if "points" in item:
            points = item["points"]
            if not isinstance(points, list) or not points:
                raise NanoSam2Error(f"{where}: points must be a non-empty list of [x, y]")
            prompt["points"] = [_number_list(p, 2, f"{where}.points") for p in points]
            labels = item.get("labels", [1] * len(points))
            if not isinstance(labels, list) or len(labels) != len(points) or any(v not in (0, 1) for v in labels):
                raise NanoSam2Error(f"{where}: labels must be one 0 (background) or 1 (foreground) per point")
            prompt["labels"] = [int(v) for v in labels]
        elif "labels" in item:
            raise NanoSam2Error(f"{where}: labels without points")
        if "box" in item:
            prompt["box"] = _number_list(item["box"], 4, f"{where}.box")
        if "mask" in item:
            if not isinstance(item["mask"], str):
                raise NanoSam2Error(f"{where}: mask must be the path of a PNG")
            from nanosam2.images import read_rgb

            prompt["mask"] = read_rgb(base / item["mask"]).max(axis=2) > 127
            prompt["mask_file"] = item["mask"]
            prompt["mask_path"] = str(base / item["mask"])
        prompts.append(prompt)
    return merge_prompts(prompts, source)


def merge_prompts(prompts: list[dict[str, Any]], source: str = "prompts") -> list[dict[str, Any]]:
    """Prompts for the same object on the same frame, as one: their clicks together, with the box (one call of
    Meta's ``add_new_points_or_box``, box first). Applied one after another they would not add up: a box (or
    clicks, with ``clear_old_points``) replaces what came before, while the record listed both. Two boxes, or a
    mask with anything else, cannot be one prompt and are refused."""
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    first: dict[tuple[int, int], int] = {}
    for index, prompt in enumerate(prompts):
        key = (prompt["frame"], prompt["obj_id"])
        if key not in merged:
            merged[key], first[key] = dict(prompt), index
            continue
        into = merged[key]
        where = f"{source}[{first[key]}] and [{index}] (object {key[1]}, frame {key[0]})"
        if "mask" in prompt or "mask" in into:
            raise NanoSam2Error(f"{where}: a mask prompt replaces anything else on its frame: give one of them")
        if "box" in prompt and "box" in into:
            raise NanoSam2Error(f"{where}: two boxes for one object on one frame (one box a prompt)")
        if "box" in prompt:
            into["box"] = prompt["box"]
        if "points" in prompt:
            into["points"] = into.get("points", []) + prompt["points"]
            into["labels"] = into.get("labels", []) + prompt["labels"]
        logger.info("%s: applied together as one prompt (%s)", where,
                    " and ".join(k for k in ("points", "box") if k in into))
    return list(merged.values())


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise NanoSam2Error(f"no such prompts file: {file}") from None
    except (OSError, ValueError) as exc:
        raise NanoSam2Error(f"{file}: not a valid JSON prompts file ({exc})") from None
    return parse_prompts(data, file.parent, str(file))


def place_prompts(prompts: list[dict[str, Any]], frames: Frames | None, height: int, width: int,
                  count: int | None = None) -> list[dict[str, Any]]:
    """Each prompt checked against the video (its frame exists among the first ``count``, its points
    and box inside the frame, its mask of the frame's size) with the frame's position added
    (``"position"``); ``frames`` None (a camera): frame numbers are positions."""
    placed = []
    for index, prompt in enumerate(prompts):
        where = f"prompt {index} (frame {prompt['frame']}, object {prompt['obj_id']})"
        position = frames.position(prompt["frame"]) if frames is not None else prompt["frame"]
        if count is not None and position >= count:
            raise NanoSam2Error(f"{where} is past the end of the frames to track ({count})")
        Prompts.from_dict(prompt).check_inside(width, height, where, "frame")
        if "mask" in prompt and prompt["mask"].shape != (height, width):
            raise NanoSam2Error(f"mask {prompt['mask_file']} is {prompt['mask'].shape[1]}x{prompt['mask'].shape[0]}, "
                                f"the video {width}x{height}")
        placed.append({**prompt, "position": position})
    return placed


def apply_prompt(predictor: Any, state: Any, frame_idx: int, prompt: dict[str, Any],
                 frame: np.ndarray | None = None) -> np.ndarray:
    """One prompt dict (``obj_id`` and ``points``+``labels``, ``box`` or a ``mask`` array) applied to a
    ``VideoPredictor``'s ``state`` on ``frame_idx``."""
    obj_id = prompt["obj_id"]
    if prompt.get("mask") is not None:
        return predictor.add_new_mask(state, frame_idx, obj_id, prompt["mask"], frame=frame)[2]
    return predictor.add_new_points_or_box(state, frame_idx, obj_id, prompt.get("points"), prompt.get("labels"),
                                           box=prompt.get("box"), frame=frame)[2]
