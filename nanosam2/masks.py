"""Binary-mask algebra in numpy: run-length encoding (COCO's), boxes, box NMS, small regions.

The semantics are those of ``sam2.utils.amg`` and torchvision's ``nms`` (which Meta's automatic
mask generator uses), so the torch-free generator in ``nanosam2.inference.automatic`` gives the
same masks; ``tests/test_everything.py`` checks each against pycocotools, torchvision or a hand
computed case.

An RLE here is a dict ``{"size": [H, W], "counts": list[int]}`` of alternating run lengths over
the mask in column-major (Fortran) order, starting with a run of zeros: COCO's uncompressed RLE.
:func:`rle_to_coco` compresses it to the string form pycocotools reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nanosam2.utils.lazy_import import require


def masks_to_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """Bool masks [N, H, W] -> COCO uncompressed RLEs (``sam2.utils.amg.mask_to_rle_pytorch``)."""
    n, height, width = masks.shape
    flat = np.asarray(masks, bool).transpose(0, 2, 1).reshape(n, height * width)  # column-major, as COCO counts
    rles = []
    for row in flat:
        changes = np.flatnonzero(row[1:] != row[:-1]) + 1
        bounds = np.concatenate([[0], changes, [row.size]])
        counts = np.diff(bounds).tolist()
        rles.append({"size": [height, width], "counts": ([0] if row.size and row[0] else []) + counts})
    return rles


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """COCO uncompressed RLE -> bool mask [H, W]."""
    height, width = rle["size"]
    counts = np.asarray(rle["counts"], np.int64)
    values = np.arange(len(counts)) % 2 == 1  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, counts)
    if flat.size != height * width:
        raise ValueError(f"RLE counts sum to {flat.size}, not {height}x{width}")
    return flat.reshape(width, height).T


def rle_area(rle: dict[str, Any]) -> int:
    return int(sum(rle["counts"][1::2]))


def rle_to_coco(rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed RLE -> COCO's compressed RLE ``{"size": [H, W], "counts": str}`` (pycocotools' rleToString)."""
    counts = [int(c) for c in rle["counts"]]
    out = bytearray()
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(c + 48)
    return {"size": list(rle["size"]), "counts": out.decode("ascii")}


def coco_to_rle(coco: dict[str, Any]) -> dict[str, Any]:
    """COCO compressed RLE -> uncompressed (pycocotools' rleFrString)."""
    text = coco["counts"]
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return {"size": list(coco["size"]), "counts": counts}


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Bool masks [N, H, W] -> XYXY boxes [N, 4] (inclusive max pixel; [0, 0, 0, 0] for an empty
    mask), as ``sam2.utils.amg.batched_mask_to_box``."""
    masks = np.asarray(masks, bool)
    rows, cols = masks.any(axis=2), masks.any(axis=1)  # [N, H], [N, W]
    boxes = np.zeros((masks.shape[0], 4), np.int64)
    has = rows.any(axis=1)
    if has.any():
        height, width = masks.shape[1:]
        boxes[has, 0] = np.argmax(cols[has], axis=1)
        boxes[has, 1] = np.argmax(rows[has], axis=1)
        boxes[has, 2] = width - 1 - np.argmax(cols[has][:, ::-1], axis=1)
        boxes[has, 3] = height - 1 - np.argmax(rows[has][:, ::-1], axis=1)
    return boxes


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one XYXY box with each of ``boxes`` (areas as (x1 - x0) * (y1 - y0), torchvision's)."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices kept, by decreasing score (ties in input order); a box is dropped when
    its IoU with a kept, higher-scored box exceeds ``iou_threshold`` (torchvision.ops.nms)."""
    boxes = np.asarray(boxes, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    suppressed = np.zeros(len(order), bool)
    keep = []
    for rank, index in enumerate(order):
        if suppressed[rank]:
            continue
        keep.append(index)
        rest = order[rank + 1:]
        suppressed[rank + 1:] |= box_iou(boxes[index], boxes[rest]) > iou_threshold
    return np.asarray(keep, np.int64)


def fill_holes_and_sprinkles(logits: np.ndarray, max_hole_area: int, max_sprinkle_area: int,
                             threshold: float = 0.0, hole_logit: float | None = None) -> np.ndarray:
    """SAM2's mask clean-up on low-res logits [..., H, W] (``SAM2Transforms.postprocess_masks``):
    background regions (8-connected, logits <= threshold) of at most ``max_hole_area`` pixels
    become foreground (threshold + 10), then foreground regions of at most ``max_sprinkle_area``
    pixels become background (threshold - 10). Meta computes the regions with its CUDA extension
    and skips this step without it; here SciPy's ``ndimage.label`` does, on any machine. ``hole_logit``:
    the value holes get instead (the video predictor's ``fill_holes_in_mask_scores`` writes 0.1)."""
    out = np.array(logits, np.float32, copy=True)
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return out
    ndimage = require("scipy.ndimage", "removing small holes and regions (min_mask_region_area / fill_hole_area)")
    eight = np.ones((3, 3), bool)
    planes = out.reshape(-1, *out.shape[-2:])
    for plane in planes:  # both region kinds are found on the logits as given (Meta's order of effects)
        filled = threshold + 10.0 if hole_logit is None else hole_logit
        for area, select, value in ((max_hole_area, plane <= threshold, filled),
                                    (max_sprinkle_area, plane > threshold, threshold - 10.0)):
            if area <= 0:
                continue
            labels, count = ndimage.label(select, structure=eight)
            if count == 0:
                continue
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            small = sizes <= area
            small[0] = False  # label 0: the pixels not selected
            plane[small[labels]] = value
    return out
