"""Mask overlays with prompts drawn on top (numpy + pillow only, so the Jetson runtime can use it)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

# Distinct colours for successive masks (RGB).
PALETTE = [(30, 144, 255), (255, 99, 71), (50, 205, 50), (255, 215, 0), (186, 85, 211), (0, 206, 209)]


def overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
) -> Image.Image:
    """Blend boolean masks [K,H,W] over an RGB uint8 image [H,W,3]; draw points and boxes.

    Foreground points are green, background points red, boxes yellow; each mask gets a
    colour from :data:`PALETTE` and a contour-free translucent fill.
    """
    canvas = image.astype(np.float32).copy()
    for index, mask in enumerate(np.asarray(masks, dtype=bool).reshape(-1, *image.shape[:2])):
        colour = np.array(PALETTE[index % len(PALETTE)], dtype=np.float32)
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * colour
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    radius = max(3, round(min(image.shape[:2]) / 80))
    if boxes is not None:
        for x0, y0, x1, y1 in np.asarray(boxes, dtype=float).reshape(-1, 4):
            draw.rectangle([x0, y0, x1, y1], outline=(255, 215, 0), width=max(2, radius // 2))
    if points is not None:
        point_labels = np.ones(len(points)) if labels is None else np.asarray(labels).reshape(-1)
        for (x, y), label in zip(np.asarray(points, dtype=float).reshape(-1, 2), point_labels):
            fill = (0, 200, 0) if label == 1 else (220, 0, 0)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill, outline=(255, 255, 255))
    return picture


def colour_for(index: int) -> tuple[int, int, int]:
    """A bright colour for mask ``index``; successive indices step around the hue circle by the golden angle."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def masks_overlay(image: np.ndarray, masks: Iterable[np.ndarray], alpha: float = 0.55) -> Image.Image:
    """Each of many bool masks [H,W] in its own colour over an RGB uint8 image (segment everything).

    Give them largest first (as Meta's notebooks draw them) so that small masks stay visible; masks
    are taken one at a time, so an iterator that decodes RLEs keeps memory at one mask.
    """
    canvas = image.astype(np.float32).copy()
    for index, mask in enumerate(masks):
        mask = np.asarray(mask, bool)
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.array(colour_for(index), np.float32)
    return Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
