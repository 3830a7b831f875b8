"""A small COCO-format dataset made on the fly: images with shapes, polygon and RLE masks.

Every image holds a small, a medium and a large object (COCO area buckets), one annotation
is stored as a crowd RLE; ``area`` is the exact mask area, as in COCO.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _polygon_mask(polygon: list[float], hw: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("L", (hw[1], hw[0]), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def make_coco(root: Path, num_images: int = 3, hw: tuple[int, int] = (240, 320), seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/images/*.jpg`` and ``root/instances.json``; returns (image folder, annotation file)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for image_id in range(1, num_images + 1):
        h, w = hw
        picture = Image.fromarray(rng.integers(0, 50, (h, w, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(picture)
        # small (< 32^2), medium (32^2..96^2), large (>= 96^2) objects
        x, y = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        shapes = [
            ("rect", [x, y, x + 12, y + 15], 1),
            ("triangle", [150.0, 20.0, 215.0, 20.0, 182.0, 85.0], 2),
            ("poly", [40.0, 110.0, 200.0, 100.0, 230.0, 220.0, 60.0, 230.0], 3),
        ]
        for index, (kind, geometry, category) in enumerate(shapes):
            colour = tuple(int(c) for c in rng.integers(120, 255, 3))
            if kind == "rect":
                x0, y0, x1, y1 = geometry
                polygon = [x0, y0, x1, y0, x1, y1, x0, y1]
            else:
                polygon = geometry
            draw.polygon(polygon, fill=colour)
            mask = _polygon_mask(polygon, hw)
            ys, xs = np.nonzero(mask)
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
            crowd = index == 1 and image_id == 1
            if crowd:
                rle = mask_utils.encode(np.asfortranarray(mask))
                segmentation: object = {"size": [h, w], "counts": rle["counts"].decode()}
            else:
                segmentation = [polygon]
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": category, "bbox": bbox,
                                "area": float(mask.sum()), "iscrowd": int(crowd), "segmentation": segmentation})
            ann_id += 1
        name = f"{image_id:012d}.jpg"
        picture.save(images_dir / name, quality=95)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
    images.append({"id": 99, "file_name": "unannotated.jpg", "height": 10, "width": 10})  # skipped by the loop
    categories = [{"id": i, "name": n} for i, n in ((1, "rect"), (2, "triangle"), (3, "poly"))]
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return images_dir, ann_file
