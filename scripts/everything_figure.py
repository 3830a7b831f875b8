"""The README's segment-everything picture: the point grids and crops (left) beside the overlay of an
``python -m trt_runtime everything`` run (right).

    python scripts/everything_figure.py OUT_DIR IMAGE DEST
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nanosam2.inference.automatic import crop_boxes, layer_point_grids

LAYER_COLOURS = [(255, 255, 255), (255, 215, 0), (0, 220, 255)]


def figure(out_dir: Path, image_path: Path) -> Image.Image:
    image = np.asarray(Image.open(image_path).convert("RGB"))
    params = json.loads((out_dir / "everything.json").read_text())["parameters"]
    left = Image.fromarray(image)
    draw = ImageDraw.Draw(left)
    boxes, layers = crop_boxes(image.shape[:2], params["crop_n_layers"], params["crop_overlap_ratio"])
    grids = layer_point_grids(params["points_per_side"], params["crop_n_layers"], params["crop_n_points_downscale_factor"])
    for (x0, y0, x1, y1), layer in zip(boxes, layers):
        colour, radius = LAYER_COLOURS[layer % len(LAYER_COLOURS)], 3 if layer == 0 else 2
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=radius)
        for x, y in grids[layer] * [x1 - x0, y1 - y0] + [x0, y0]:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    right = Image.open(out_dir / "overlay.png").convert("RGB")
    picture = Image.new("RGB", (left.width + right.width + 10, left.height), (255, 255, 255))
    picture.paste(left, (0, 0))
    picture.paste(right, (left.width + 10, 0))
    return picture


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python scripts/everything_figure.py OUT_DIR IMAGE DEST")
    figure(Path(sys.argv[1]), Path(sys.argv[2])).save(sys.argv[3], quality=80)
