"""SA-1B for calibration: reproducible sampling and annotation prompts (torch-free).

Image discovery is ``nanosam2.data.sa1b_files`` (shared with training).

Layout as downloaded: ``ROOT/sa_000000/sa_1.jpg`` with ``sa_1.json`` beside each image (SA-1B's
per-image annotations: ``{"annotations": [{"bbox": [x, y, w, h], "point_coords": [[x, y]], ...}]}``),
or the images directly in ROOT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from nanosam2.errors import NanoSam2Error
from nanosam2.data.sa1b_files import find_images, read_chunk_list
from nanosam2.images import read_rgb

__all__ = ["annotation_prompts", "find_images", "read_chunk_list", "sample_images"]


def sample_images(files: list[Path], count: int, seed: int) -> Iterator[tuple[Path, np.ndarray | None]]:
    """Files in a seeded random order, each with its RGB array, or None when unreadable."""
    order = np.random.default_rng(seed).permutation(len(files))
    for index in order:
        path = files[int(index)]
        try:
            yield path, read_rgb(path)
        except NanoSam2Error:
            yield path, None


def annotation_prompts(image_path: Path, rng: np.random.Generator, count: int,
                       hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``count`` boxes [count,4] (xyxy) and points [count,2] for an image, in its pixels.

    Taken from SA-1B's JSON beside the image when present (its boxes and point_coords), else
    sampled: boxes of 5-60 % of the image side, points inside them.
    """
    boxes, points = [], []
    sidecar = image_path.with_suffix(".json")
    if sidecar.is_file():
        try:
            annotations = json.loads(sidecar.read_text()).get("annotations", [])
        except ValueError:
            annotations = []
        if annotations:
            for index in rng.choice(len(annotations), size=min(count, len(annotations)), replace=False):
                ann = annotations[int(index)]
                x, y, w, h = ann["bbox"]
                boxes.append([x, y, x + w, y + h])
                coords = ann.get("point_coords") or [[x + w / 2, y + h / 2]]
                points.append(coords[0])
    height, width = hw
    while len(boxes) < count:
        bw, bh = rng.uniform(0.05, 0.6) * width, rng.uniform(0.05, 0.6) * height
        x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        boxes.append([x0, y0, x0 + bw, y0 + bh])
        points.append([rng.uniform(x0, x0 + bw), rng.uniform(y0, y0 + bh)])
    return np.asarray(boxes, np.float32), np.asarray(points, np.float32)
