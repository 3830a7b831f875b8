"""Synthetic VOS sets for the Meta-script oracle: frames that are not square (DAVIS 480p is 854x480),
objects that overlap and cross, clips longer than SAM2's 16-pointer window, in DAVIS's layout (one palette
PNG a frame) and in SA-V's (one folder an object, numbered from 000, every 4th frame annotated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nanosam2.evaluation.vos_data import davis_palette, write_mask_png

COLOURS = ((220, 40, 40), (40, 200, 90), (50, 90, 230), (230, 200, 40))


def crossing_objects(height: int, width: int, t: int, num_frames: int, sequence: int = 0) -> list[np.ndarray]:
    """Three shapes on frame ``t``: two discs that cross each other (overlapping midway) and a bar
    that slides under both."""
    yy, xx = np.mgrid[:height, :width]
    s = t / max(num_frames - 1, 1)
    r = 0.2 * height
    cx1, cx2 = width * (0.25 + 0.4 * s), width * (0.75 - 0.4 * s)
    cy = height * (0.45 + 0.05 * sequence)
    disc1 = (yy - cy) ** 2 + (xx - cx1) ** 2 < r**2
    disc2 = (yy - cy - 0.1 * height) ** 2 + (xx - cx2) ** 2 < (0.8 * r) ** 2
    y0 = int(height * (0.6 - 0.2 * s))
    bar = (yy >= y0) & (yy < y0 + height // 6) & (xx >= int(width * 0.1)) & (xx < int(width * 0.7))
    return [disc1, disc2, bar]


def write_crossing_set(root: Path, sequences: int = 1, num_frames: int = 18, height: int = 480, width: int = 854,
                       per_object: bool = False, every: int = 4) -> Path:
    """``root/JPEGImages/<seq>/<t:05d>.jpg`` and ``root/Annotations``: palette PNGs on every frame (object ids
    1..3; where objects overlap the smaller id is on top, as DAVIS draws them), or with ``per_object`` SA-V's
    ``<seq>/<obj:03d>/<t:05d>.png`` (ids 000..002, 0/1 PNGs that overlap) on every ``every``-th frame."""
    palette = davis_palette()
    for index in range(sequences):
        name = f"cross-{index}"
        images, annotations = root / "JPEGImages" / name, root / "Annotations" / name
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        gen = np.random.default_rng(100 + index)
        for t in range(num_frames):
            frame = gen.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
            shapes = crossing_objects(height, width, t, num_frames, index)
            for k in reversed(range(len(shapes))):  # the first shape on top
                frame[shapes[k]] = COLOURS[k]
            Image.fromarray(frame).save(images / f"{t:05d}.jpg", quality=92)
            if not per_object:
                ids = np.zeros((height, width), np.uint8)
                for k in reversed(range(len(shapes))):
                    ids[shapes[k]] = k + 1
                write_mask_png(annotations / f"{t:05d}.png", ids, palette)
            elif t % every == 0:
                for k, shape in enumerate(shapes):
                    folder = annotations / f"{k:03d}"
                    folder.mkdir(exist_ok=True)
                    write_mask_png(folder / f"{t:05d}.png", shape.astype(np.uint8), palette)
    return root
