"""Prompt parsing and validation shared by every CLI (torch-free).

Command lines spell prompts as ``--point X,Y[,LABEL]`` and ``--box X0,Y0,X1,Y1`` in pixels of
the original image; label 1 is foreground, 0 background.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import numpy as np

from nanosam2.errors import NanoSam2Error


def parse_point(text: str) -> tuple[float, float, int]:
    """argparse type for ``X,Y[,LABEL]``."""
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        label = int(parts[2]) if len(parts) == 3 else 1
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed point {text!r}: expected X,Y or X,Y,LABEL (LABEL 1 or 0)") from None
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"malformed point {text!r}: LABEL must be 1 (foreground) or 0 (background)")
    return x, y, label


def parse_box(text: str) -> tuple[float, float, float, float]:
    """argparse type for ``X0,Y0,X1,Y1`` with X0 < X1 and Y0 < Y1."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed box {text!r}: expected X0,Y0,X1,Y1 (finite numbers)") from None
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(f"malformed box {text!r}: needs X0 < X1 and Y0 < Y1")
    return x0, y0, x1, y1


@dataclass
class Prompts:
    """Points [N,2] with labels [N] and boxes [B,4], in original-image pixels."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    @classmethod
    def from_cli(cls, points: list[tuple[float, float, int]] | None, boxes: list[tuple[float, ...]] | None) -> "Prompts":
        pts = points or []
        return cls(
            points=np.array([p[:2] for p in pts], np.float32).reshape(-1, 2),
            labels=np.array([p[2] for p in pts], np.int32),
            boxes=np.array(boxes or [], np.float32).reshape(-1, 4),
        )

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and len(self.boxes) == 0

    @classmethod
    def from_dict(cls, prompt: dict) -> "Prompts":
        """A tracking prompt's ``points``/``labels``/``box`` (one object, at most one box)."""
        points = prompt.get("points") or []
        return cls(points=np.array(points, np.float32).reshape(-1, 2),
                   labels=np.array(prompt.get("labels", [1] * len(points)), np.int32),
                   boxes=np.array([prompt["box"]] if prompt.get("box") is not None else [], np.float32).reshape(-1, 4))

    def check_inside(self, width: int, height: int, where: str = "", frame: str = "image") -> None:
        """The one prompt validation of images and video: finite coordinates, labels 0/1 (one per
        point), boxes with x0 < x1 and y0 < y1, everything inside the ``width`` x ``height`` frame
        (outside is almost always a swapped X/Y or a wrong image)."""
        lead = f"{where}: " if where else ""
        if not (np.isfinite(self.points).all() and np.isfinite(self.boxes).all()):
            raise NanoSam2Error(f"{lead}prompt coordinates must be finite numbers")
        if len(self.labels) != len(self.points) or not np.isin(self.labels, (0, 1)).all():
            raise NanoSam2Error(f"{lead}labels must be one 0 (background) or 1 (foreground) per point")
        for x, y in self.points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise NanoSam2Error(f"{lead}point ({x:g}, {y:g}) is outside the {width}x{height} {frame}")
        for x0, y0, x1, y1 in self.boxes:
            if not (x0 < x1 and y0 < y1):
                raise NanoSam2Error(f"{lead}box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) needs x0 < x1 and y0 < y1")
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise NanoSam2Error(f"{lead}box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the {width}x{height} {frame}")
