"""``AutomaticMaskGenerator``: SAM2AutomaticMaskGenerator's "segment everything", torch-free.

It runs over the runtime's :class:`~nanosam2.inference.predictor.Predictor` (any backend, the
same transforms) and keeps Meta's parameter names, defaults and semantics
(``sam2/automatic_mask_generator.py``): a grid of single-point prompts per crop, each batch of
``points_per_batch`` points one decoder call, multimask outputs, filtering by predicted IoU and
stability score, box NMS within a crop, crop layers and NMS between crops, and
``min_mask_region_area`` as SAM2 applies it (holes and sprinkles of at most that many low-res
pixels removed from the logits before upsampling; Meta skips that step without its CUDA
extension, this one uses SciPy). Masks are kept as COCO RLE from the moment a batch is filtered,
so a dense grid on a large image never holds thousands of full masks at once: each batch
upsamples only the masks that passed the IoU filter, a few at a time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from nanosam2 import masks as M
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.lazy_import import require
from nanosam2.inference.predictor import Predictor, as_rgb_array

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
EDGE_TOLERANCE = 20.0  # px: a mask this close to a crop's inner edge is cut off by it (sam2.utils.amg)
MAX_PROMPTS = 100_000  # point prompts one generate() decodes unless told otherwise (SAM2's default: 32*32 = 1024)
PROGRESS_FROM = 8192  # prompts: larger grids show a progress bar
UPSAMPLE_BYTES = 8 << 20  # float32 logits upsampled at once, at most (cache-sized: 256 MB groups ran 9x slower per mask)


def point_grid(n_per_side: int) -> np.ndarray:
    """[n*n, 2] points (x, y) in [0, 1], cell centres of an n x n grid, x fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer, ``n_per_side / scale_per_layer**i`` points a side in layer i."""
    return [point_grid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def work_size(points_per_side: int | None, crop_n_layers: int, downscale: int,
              point_grids: list[np.ndarray] | None = None) -> tuple[int, int]:
    """(point prompts, crops) that one ``generate`` decodes and encodes: layer i has 4**i crops of
    ``points_per_side / downscale**i`` squared points each (or the given grids' points)."""
    if point_grids is not None:
        per_crop = [len(np.asarray(g).reshape(-1, 2)) for g in point_grids]
    else:
        per_crop = [int(points_per_side / downscale ** i) ** 2 for i in range(crop_n_layers + 1)]  # type: ignore[operator]
    return sum(4 ** i * n for i, n in enumerate(per_crop)), sum(4 ** i for i in range(len(per_crop)))


def check_crops(hw: tuple[int, int], crop_n_layers: int, crop_overlap_ratio: float) -> None:
    """Every crop of an image of ``hw`` is at least 2x2 pixels (checked before any work)."""
    if min(hw) < 2:
        raise NanoSam2Error(f"the image is {hw[1]}x{hw[0]} pixels; at least 2x2 is needed")
    for box, layer in zip(*crop_boxes(hw, crop_n_layers, crop_overlap_ratio)):
        width, height = box[2] - box[0], box[3] - box[1]
        if min(width, height) < 2:
            raise NanoSam2Error(f"crop layer {layer} cuts the {hw[1]}x{hw[0]} image into crops as small as "
                                f"{width}x{height} pixels (at least 2x2 is needed); use fewer --crop-n-layers")


def crop_boxes(hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """XYXY crops: the whole image (layer 0), then 2**i x 2**i overlapping crops in layer i."""
    height, width = hw
    boxes, layers = [[0, 0, width, height]], [0]
    short = min(height, width)
    for layer in range(1, n_layers + 1):
        per_side = 2 ** layer
        overlap = int(overlap_ratio * short * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + width) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + height) / per_side))
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layers.append(layer)
    return boxes, layers


def near_crop_edge(boxes: np.ndarray, crop_box: list[int], image_box: list[int]) -> np.ndarray:
    """Boxes (in crop coordinates) touching an edge of the crop that is not an edge of the image."""
    shifted = boxes + np.array([crop_box[0], crop_box[1], crop_box[0], crop_box[1]])
    at_crop = np.abs(shifted - np.asarray(crop_box)[None]) <= EDGE_TOLERANCE
    at_image = np.abs(shifted - np.asarray(image_box)[None]) <= EDGE_TOLERANCE
    return np.any(at_crop & ~at_image, axis=1)


def xyxy_to_xywh(box: Any) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


@dataclass
class MaskSet:
    """Masks found so far, as RLEs with their boxes, scores and prompts (rows stay aligned)."""

    rles: list[dict[str, Any]] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    iou_preds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    stability: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float64))
    crop_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    def __len__(self) -> int:
        return len(self.rles)

    def extend(self, other: "MaskSet") -> None:
        self.rles += other.rles
        for name in ("boxes", "iou_preds", "stability", "points", "crop_boxes"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def take(self, rows: np.ndarray) -> "MaskSet":
        return MaskSet([self.rles[i] for i in rows], self.boxes[rows], self.iou_preds[rows], self.stability[rows],
                       self.points[rows], self.crop_boxes[rows])


def check_parameters(points_per_side: int | None = 32, points_per_batch: int | None = None, pred_iou_thresh: float = 0.8,
                     stability_score_thresh: float = 0.95, stability_score_offset: float = 1.0, mask_threshold: float = 0.0,
                     box_nms_thresh: float = 0.7, crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
                     crop_overlap_ratio: float = 512 / 1500, crop_n_points_downscale_factor: int = 1,
                     point_grids: list[np.ndarray] | None = None, min_mask_region_area: int = 0,
                     output_mode: str = "binary_mask", max_prompts: int | None = MAX_PROMPTS) -> list[np.ndarray]:
    """One-line errors for parameters the generator cannot use, and for work above ``max_prompts``
    point prompts (None: no limit); returns the point grid of each crop layer.
    (A command checks these before it loads any model.)"""
    if (points_per_side is None) == (point_grids is None):
        raise NanoSam2Error("give exactly one of points_per_side and point_grids")
    checks = [
        (points_per_side is None or points_per_side >= 1, f"points_per_side must be >= 1, got {points_per_side}"),
        (points_per_batch is None or points_per_batch >= 1, f"points_per_batch must be >= 1, got {points_per_batch}"),
        (crop_n_layers >= 0, f"crop_n_layers must be >= 0, got {crop_n_layers}"),
        (crop_n_points_downscale_factor >= 1,
         f"crop_n_points_downscale_factor must be >= 1, got {crop_n_points_downscale_factor}"),
        (0 <= crop_overlap_ratio < 1, f"crop_overlap_ratio must be in [0, 1), got {crop_overlap_ratio}"),
        (min_mask_region_area >= 0, f"min_mask_region_area must be >= 0, got {min_mask_region_area}"),
        (output_mode in OUTPUT_MODES, f"output_mode must be one of {', '.join(OUTPUT_MODES)}, got {output_mode!r}"),
    ]
    for name, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh),
                        ("box_nms_thresh", box_nms_thresh), ("crop_nms_thresh", crop_nms_thresh),
                        ("stability_score_offset", stability_score_offset)):
        checks.append((math.isfinite(value) and value >= 0, f"{name} must be a number >= 0, got {value}"))
    checks.append((math.isfinite(mask_threshold), f"mask_threshold must be a number, got {mask_threshold}"))
    for ok, message in checks:
        if not ok:
            raise NanoSam2Error(message)
    if points_per_side is not None and int(points_per_side / crop_n_points_downscale_factor ** crop_n_layers) < 1:
        raise NanoSam2Error(f"points_per_side {points_per_side} / crop_n_points_downscale_factor "
                            f"{crop_n_points_downscale_factor}**{crop_n_layers} leaves no points in the last crop layer")
    if point_grids is not None and len(point_grids) != crop_n_layers + 1:
        raise NanoSam2Error(f"point_grids has {len(point_grids)} grids; crop_n_layers {crop_n_layers} needs "
                            f"{crop_n_layers + 1}")
    prompts, crops = work_size(points_per_side, crop_n_layers, crop_n_points_downscale_factor, point_grids)
    if max_prompts is not None and prompts > max_prompts:
        raise NanoSam2Error(f"these parameters decode {prompts:,} point prompts over {crops:,} crop(s), more than "
                            f"max_prompts {max_prompts:,} (--max-prompts); fewer --points-per-side or "
                            "--crop-n-layers, or raise --max-prompts to run it")
    if points_per_side is not None:
        return layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
    return [np.asarray(g, np.float64).reshape(-1, 2) for g in point_grids or []]


class AutomaticMaskGenerator:
    """Masks for everything in an image, with SAM2AutomaticMaskGenerator's parameters.

    ``points_per_batch`` defaults to the decoder's largest batch (an engine profile's max), else
    64. ``generate(image)`` returns Meta's records: ``segmentation`` (per ``output_mode``),
    ``area``, ``bbox`` (XYWH), ``predicted_iou``, ``point_coords``, ``stability_score`` and
    ``crop_box`` (XYWH). ``timings`` holds the last call's stage times in milliseconds.
    """

    def __init__(self, predictor: Predictor, points_per_side: int | None = 32, points_per_batch: int | None = None,
                 pred_iou_thresh: float = 0.8, stability_score_thresh: float = 0.95, stability_score_offset: float = 1.0,
                 mask_threshold: float = 0.0, box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                 crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                 crop_n_points_downscale_factor: int = 1, point_grids: list[np.ndarray] | None = None,
                 min_mask_region_area: int = 0, output_mode: str = "binary_mask", multimask_output: bool = True,
                 max_prompts: int | None = MAX_PROMPTS, progress: bool | None = None) -> None:
        grids = check_parameters(points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
                                 stability_score_offset, mask_threshold, box_nms_thresh, crop_n_layers, crop_nms_thresh,
                                 crop_overlap_ratio, crop_n_points_downscale_factor, point_grids, min_mask_region_area,
                                 output_mode, max_prompts)
        self.total_prompts = work_size(None, crop_n_layers, 1, grids)[0]
        self.progress = self.total_prompts >= PROGRESS_FROM if progress is None else progress  # a bar for big grids
        self.predictor = predictor
        self.point_grids = grids
        self.points_per_batch = points_per_batch or predictor.decoder.max_batch() or 64
        self.pred_iou_thresh, self.stability_score_thresh = pred_iou_thresh, stability_score_thresh
        self.stability_score_offset, self.mask_threshold = stability_score_offset, mask_threshold
        self.box_nms_thresh, self.crop_nms_thresh = box_nms_thresh, crop_nms_thresh
        self.crop_n_layers, self.crop_overlap_ratio = crop_n_layers, crop_overlap_ratio
        self.min_mask_region_area, self.output_mode = min_mask_region_area, output_mode
        self.multimask_output = multimask_output
        self.timings: dict[str, float] = {}
        self.prompts_decoded = 0
        self._bar: Any = None

    def generate(self, image: Any) -> list[dict[str, Any]]:
        """Records for every mask found in ``image`` (HxWx3 uint8 RGB, or a PIL image)."""
        rgb = as_rgb_array(image)
        check_crops(rgb.shape[:2], self.crop_n_layers, self.crop_overlap_ratio)
        self.timings = {"encoder_ms": 0.0, "decoder_ms": 0.0, "masks_ms": 0.0, "nms_ms": 0.0}
        self.prompts_decoded = 0
        found = self._generate_masks(rgb)
        records = []
        for i, rle in enumerate(found.rles):
            if self.output_mode == "coco_rle":
                segmentation: Any = M.rle_to_coco(rle)
            elif self.output_mode == "binary_mask":
                segmentation = M.rle_to_mask(rle)
            else:
                segmentation = rle
            records.append({"segmentation": segmentation, "area": M.rle_area(rle),
                            "bbox": xyxy_to_xywh(found.boxes[i]), "predicted_iou": float(found.iou_preds[i]),
                            "point_coords": [found.points[i].tolist()], "stability_score": float(found.stability[i]),
                            "crop_box": xyxy_to_xywh(found.crop_boxes[i])})
        return records

    def _generate_masks(self, image: np.ndarray) -> MaskSet:
        boxes, layers = crop_boxes(image.shape[:2], self.crop_n_layers, self.crop_overlap_ratio)
        found = MaskSet()
        self._bar = None
        if self.progress:
            self._bar = require("tqdm", "progress bars").tqdm(total=self.total_prompts, desc="everything", unit="prompt")
        try:
            for box, layer in zip(boxes, layers):
                found.extend(self._process_crop(image, box, layer))
        finally:
            if self._bar is not None:
                self._bar.close()
        if len(boxes) > 1 and len(found):
            start = time.perf_counter()
            widths, heights = found.crop_boxes[:, 2] - found.crop_boxes[:, 0], found.crop_boxes[:, 3] - found.crop_boxes[:, 1]
            keep = M.box_nms(found.boxes, 1.0 / (widths * heights).astype(np.float64), self.crop_nms_thresh)  # small crops win
            found = found.take(keep)
            self.timings["nms_ms"] += 1000 * (time.perf_counter() - start)
        return found

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> MaskSet:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        start = time.perf_counter()
        self.predictor.set_image(crop)
        self.timings["encoder_ms"] += 1000 * (time.perf_counter() - start)
        hw = crop.shape[:2]
        points = self.point_grids[layer] * np.array([hw[1], hw[0]], np.float64)
        found = MaskSet()
        for lo in range(0, len(points), self.points_per_batch):
            found.extend(self._process_batch(points[lo:lo + self.points_per_batch], hw, crop_box, image.shape[:2]))
        start = time.perf_counter()
        found = found.take(M.box_nms(found.boxes, found.iou_preds, self.box_nms_thresh))
        found.boxes = found.boxes + np.array([x0, y0, x0, y0], np.int64)
        found.points = found.points + np.array([x0, y0], np.float64)
        found.crop_boxes = np.tile(np.asarray(crop_box, np.int64), (len(found), 1))
        self.timings["nms_ms"] += 1000 * (time.perf_counter() - start)
        return found

    def _process_batch(self, points: np.ndarray, hw: tuple[int, int], crop_box: list[int],
                       image_hw: tuple[int, int]) -> MaskSet:
        start = time.perf_counter()
        prompts = T.build_prompts(hw, points=points[:, None, :], labels=np.ones((len(points), 1), np.float32),
                                  image_size=self.predictor.contract.image_size)
        low, iou = self.predictor.decode(prompts)
        self.prompts_decoded += len(points)
        if self._bar is not None:
            self._bar.update(len(points))
        decoded = time.perf_counter()
        low, iou = T.select_masks(low, iou, self.multimask_output, self.predictor.selection)
        planes = low.shape[1]
        low, iou = low.reshape(-1, *low.shape[2:]), iou.reshape(-1)
        point_rows = np.repeat(points, planes, axis=0)
        rows = np.flatnonzero(iou > self.pred_iou_thresh) if self.pred_iou_thresh > 0 else np.arange(len(iou))
        found = MaskSet()
        group = max(1, UPSAMPLE_BYTES // (4 * hw[0] * hw[1]))
        for lo in range(0, len(rows), group):
            part = rows[lo:lo + group]
            logits = low[part]
            if self.min_mask_region_area > 0:
                logits = M.fill_holes_and_sprinkles(logits, self.min_mask_region_area, self.min_mask_region_area,
                                                    self.mask_threshold)
            full = T.upsample_masks(logits, hw)
            stability = T.stability_scores(full, self.stability_score_offset, self.mask_threshold, empty=0.0)
            keep = stability >= self.stability_score_thresh if self.stability_score_thresh > 0 else np.ones(len(part), bool)
            masks = full[keep] > self.mask_threshold
            del full
            boxes = M.masks_to_boxes(masks)
            inside = ~near_crop_edge(boxes, crop_box, [0, 0, image_hw[1], image_hw[0]])
            masks, boxes = masks[inside], boxes[inside]
            chosen = part[keep][inside]
            found.extend(MaskSet(self._rles(masks, crop_box, image_hw), boxes, iou[chosen],
                                 stability[keep][inside], point_rows[chosen], np.zeros((len(chosen), 4), np.int64)))
        self.timings["decoder_ms"] += 1000 * (decoded - start)
        self.timings["masks_ms"] += 1000 * (time.perf_counter() - decoded)
        return found

    @staticmethod
    def _rles(masks: np.ndarray, crop_box: list[int], image_hw: tuple[int, int]) -> list[dict[str, Any]]:
        """RLEs of crop masks placed in the full image (one full-size mask at a time)."""
        x0, y0, x1, y1 = crop_box
        if (x0, y0, x1, y1) == (0, 0, image_hw[1], image_hw[0]):
            return M.masks_to_rles(masks)
        rles = []
        for mask in masks:
            full = np.zeros((1, *image_hw), bool)
            full[0, y0:y1, x0:x1] = mask
            rles += M.masks_to_rles(full)
        return rles
