"""SAM2's image and prompt transforms and mask post-processing in numpy (torch-free).

One implementation for every backend (TensorRT, ONNX Runtime, PyTorch graphs), reproducing
Meta's ``SAM2Transforms`` and ``SAM2ImagePredictor`` exactly:

- image: ``ToTensor`` (/255) -> ``Resize((1024, 1024))`` with torchvision's antialiased
  bilinear filter (a square stretch, no letterbox) -> ImageNet normalisation;
- prompts: pixels scaled to the 1024 frame; a box becomes two corner points labelled 2 and 3
  placed before the clicks; a padding point (0, 0) labelled -1 closes every prompt;
- masks: 256x256 logits -> bilinear (``align_corners=False``) to the original size ->
  threshold 0; single-mask requests fall back to the best multimask output when the
  single mask is unstable (``dynamic_multimask_via_stability``).

Resampling is a pair of weight matrices per (in, out) size, cached: ``out = Wh @ x @ Ww.T``, computed
band by band (each output row has only a few non-zero taps), which is the same sums at a fraction
of the dense product's cost.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 1024
LOW_RES_SIZE = 256
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
LOGIT_CLAMP = 32.0

LABEL_PAD, LABEL_BACKGROUND, LABEL_FOREGROUND, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


@functools.lru_cache(maxsize=64)
def antialias_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch's ``interpolate(bilinear, antialias=True)`` (= PIL's BILINEAR).

    A triangle filter stretched by the scale when shrinking, renormalised at the borders.
    """
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((taps - center + 0.5) * inv_scale), 0.0, None)
        total = w.sum()
        if total > 0:
            weights[i, lo:hi] = w / total
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=64)
def bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch's ``interpolate(mode="bilinear", align_corners=False)``.

    Source coordinates are computed in float32, as torch's CPU and CUDA kernels do, so that
    logits near the threshold round the same way.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum(scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = (src - i0.astype(np.float32)).astype(np.float64)
    weights = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - frac)
    np.add.at(weights, (rows, i1), frac)
    return weights.astype(np.float32)


BAND_BLOCK = 64  # output rows per block of the banded resampling


@functools.lru_cache(maxsize=64)
def resampling_bands(in_size: int, out_size: int, antialias: bool) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The resampling matrix as blocks of ``BAND_BLOCK`` output rows, each with the window of input
    rows that is non-zero for it: ``(out_lo, out_hi, in_lo, in_hi, weights[out_hi-out_lo, in_hi-in_lo])``.

    Every output row of these filters has only a few taps (2 for bilinear, ~2 x scale for the
    antialiased one), so multiplying the band instead of the whole matrix does the same sums
    with a fraction of the work (the dense product adds zeros, nothing else).
    """
    dense = (antialias_bilinear_weights if antialias else bilinear_weights)(in_size, out_size)
    nonzero = dense != 0
    blocks = []
    for lo in range(0, out_size, BAND_BLOCK):
        hi = min(lo + BAND_BLOCK, out_size)
        columns = np.flatnonzero(nonzero[lo:hi].any(axis=0))
        first, last = (int(columns[0]), int(columns[-1]) + 1) if len(columns) else (0, 1)
        blocks.append((lo, hi, first, last, np.ascontiguousarray(dense[lo:hi, first:last])))
    return tuple(blocks)


def _resample(planes: np.ndarray, out_hw: tuple[int, int], antialias: bool) -> np.ndarray:
    """Resample [..., H, W] float32 planes to [..., out_h, out_w]: ``Wh @ planes @ Ww.T``, band by band."""
    *lead, height, width = planes.shape
    rows = np.empty((*lead, out_hw[0], width), np.float32)
    for lo, hi, first, last, weights in resampling_bands(height, out_hw[0], antialias):
        np.matmul(weights, planes[..., first:last, :], out=rows[..., lo:hi, :])
    out = np.empty((*lead, out_hw[0], out_hw[1]), np.float32)
    for lo, hi, first, last, weights in resampling_bands(width, out_hw[1], antialias):
        np.matmul(rows[..., first:last], weights.T, out=out[..., lo:hi])
    return out


def _resample_dense(planes: np.ndarray, out_hw: tuple[int, int], antialias: bool) -> np.ndarray:
    """The reference: the same product with the dense matrices (tests and benchmarks compare)."""
    make = antialias_bilinear_weights if antialias else bilinear_weights
    return np.matmul(np.matmul(make(planes.shape[-2], out_hw[0]), planes), make(planes.shape[-1], out_hw[1]).T)


def preprocess_image(image: np.ndarray, image_size: int = IMAGE_SIZE,
                     mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> normalised float32 [1, 3, S, S], exactly as ``SAM2Transforms``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got {tuple(image.shape)}")
    planes = image.transpose(2, 0, 1).astype(np.float32)  # [3, H, W], contiguous
    planes /= np.float32(255.0)
    resized = _resample(planes, (image_size, image_size), antialias=True)
    resized -= np.asarray(mean, np.float32).reshape(3, 1, 1)  # in place: no full-size temporaries
    resized /= np.asarray(std, np.float32).reshape(3, 1, 1)
    return resized[None]


def preprocess_video_frame(frame: np.ndarray, image_size: int = IMAGE_SIZE,
                           mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> normalised float32 [1, 3, S, S], exactly as Meta's video loader
    (``sam2.utils.misc.load_video_frames`` on a JPEG folder): Pillow resizes the uint8 frame to S x S with
    its default filter (bicubic), then /255 in float64, stored as float32, minus the mean, over the std.
    (The image predictor resizes differently: :func:`preprocess_image`.)"""
    from PIL import Image

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame of shape [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
    resized = np.asarray(Image.fromarray(frame).resize((image_size, image_size)))
    planes = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    planes = planes - np.asarray(mean, np.float32).reshape(3, 1, 1)
    planes /= np.asarray(std, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray(planes[None])


def transform_coords(coords: np.ndarray, orig_hw: tuple[int, int], image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Pixel (x, y) of the original image -> the model's square input frame (x / W * S, y / H * S)."""
    h, w = orig_hw
    normalised = np.asarray(coords, np.float32) / np.array([w, h], np.float32)
    return (normalised * np.float32(image_size)).astype(np.float32)


@dataclass
class DecoderPrompts:
    """A batch of P prompts for the decoder graph, all in the model's input frame."""

    point_coords: np.ndarray  # [P, N, 2] float32
    point_labels: np.ndarray  # [P, N] float32 (-1 pad, 0 bg, 1 fg, 2/3 box corners)
    mask_input: np.ndarray  # [P, 1, 256, 256] float32
    has_mask_input: np.ndarray  # [P] float32 (0 or 1)

    @property
    def count(self) -> int:
        return int(self.point_coords.shape[0])


def build_prompts(
    orig_hw: tuple[int, int],
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
    image_size: int = IMAGE_SIZE,
) -> DecoderPrompts:
    """SAM2ImagePredictor's prompt assembly as arrays for one decoder call.

    ``points`` [N,2] or [P,N,2] and ``labels`` [N] or [P,N] in original pixels; ``boxes`` [4]
    or [P,4]; ``mask_input`` [1,256,256] or [P,1,256,256] low-res logits. With P boxes and
    one set of points, the points are shared by every box (as in Meta's batched predict).
    """
    parts_xy: list[np.ndarray] = []
    parts_lab: list[np.ndarray] = []
    batch = 1
    low_res = image_size // 4  # the mask decoder's output (and mask-prompt) size
    if boxes is not None:
        box_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
        batch = box_arr.shape[0]
        parts_xy.append(transform_coords(box_arr.reshape(-1, 2, 2), orig_hw, image_size))
        parts_lab.append(np.tile(np.array([[LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]], np.float32), (batch, 1)))
    if points is not None:
        if labels is None:
            raise ValueError("labels must be given with points")
        pts = np.asarray(points, np.float32)
        labs = np.asarray(labels, np.float32)
        if pts.ndim == 2:
            pts, labs = pts[None], labs.reshape(1, -1)
        if pts.shape[:2] != labs.shape or pts.shape[-1] != 2:
            raise ValueError(f"points {pts.shape} and labels {labs.shape} do not match")
        if pts.shape[0] != batch:
            if pts.shape[0] != 1 and batch != 1:
                raise ValueError(f"{pts.shape[0]} point sets for {batch} boxes")
            batch = max(batch, pts.shape[0])
            pts, labs = np.broadcast_to(pts, (batch, *pts.shape[1:])), np.broadcast_to(labs, (batch, labs.shape[1]))
            parts_xy = [np.broadcast_to(p, (batch, *p.shape[1:])) for p in parts_xy]
            parts_lab = [np.broadcast_to(p, (batch, p.shape[1])) for p in parts_lab]
        parts_xy.append(transform_coords(pts, orig_hw, image_size))
        parts_lab.append(labs)
    if mask_input is not None:
        masks = np.asarray(mask_input, np.float32)
        masks = masks.reshape(-1, 1, *masks.shape[-2:])
        if masks.shape[-2:] != (low_res, low_res):
            raise ValueError(f"mask_input must be {low_res}x{low_res} logits, got {masks.shape[-2:]}")
        if masks.shape[0] not in (1, batch):
            raise ValueError(f"{masks.shape[0]} mask inputs for {batch} prompts")
        masks = np.broadcast_to(masks, (batch, 1, low_res, low_res))
        has_mask = np.ones(batch, np.float32)
    else:
        masks = np.zeros((batch, 1, low_res, low_res), np.float32)
        has_mask = np.zeros(batch, np.float32)
    if not parts_xy:
        # Meta's predictor with neither points nor boxes still embeds the padding point.
        parts_xy.append(np.zeros((batch, 0, 2), np.float32))
        parts_lab.append(np.zeros((batch, 0), np.float32))
    # The padding point SAM2's prompt encoder appends when no separate box embedding is given.
    parts_xy.append(np.zeros((batch, 1, 2), np.float32))
    parts_lab.append(np.full((batch, 1), LABEL_PAD, np.float32))
    return DecoderPrompts(
        point_coords=np.ascontiguousarray(np.concatenate(parts_xy, axis=1), np.float32),
        point_labels=np.ascontiguousarray(np.concatenate(parts_lab, axis=1), np.float32),
        mask_input=np.ascontiguousarray(masks, np.float32),
        has_mask_input=has_mask,
    )


def pad_prompts(prompts: list[DecoderPrompts]) -> DecoderPrompts:
    """Stack prompts with different point counts into one batch, padding with label -1 points."""
    width = max(p.point_coords.shape[1] for p in prompts)

    def pad(p: DecoderPrompts) -> tuple[np.ndarray, np.ndarray]:
        extra = width - p.point_coords.shape[1]
        xy = np.concatenate([p.point_coords, np.zeros((p.count, extra, 2), np.float32)], axis=1)
        lab = np.concatenate([p.point_labels, np.full((p.count, extra), LABEL_PAD, np.float32)], axis=1)
        return xy, lab

    padded = [pad(p) for p in prompts]
    return DecoderPrompts(
        point_coords=np.concatenate([xy for xy, _ in padded]),
        point_labels=np.concatenate([lab for _, lab in padded]),
        mask_input=np.concatenate([p.mask_input for p in prompts]),
        has_mask_input=np.concatenate([p.has_mask_input for p in prompts]),
    )


@dataclass(frozen=True)
class MaskSelection:
    """How SAM2's mask decoder picks outputs from its mask tokens (token 0 = single mask)."""

    multimask_slice: tuple[int, int] = (1, 4)
    dynamic_multimask_via_stability: bool = True
    stability_delta: float = 0.05
    stability_thresh: float = 0.98


def stability_scores(logits: np.ndarray, delta: float, threshold: float = 0.0, empty: float = 1.0) -> np.ndarray:
    """IoU between the masks thresholded at threshold + delta and threshold - delta ([..., H, W] -> [...]);
    ``empty`` where both are empty (the decoder's fallback says 1; Meta's generator divides 0 by 0)."""
    flat = logits.reshape(*logits.shape[:-2], -1)
    inner = np.count_nonzero(flat > threshold + delta, axis=-1).astype(np.float32)
    outer = np.count_nonzero(flat > threshold - delta, axis=-1).astype(np.float32)
    return np.where(outer > 0, inner / np.maximum(outer, 1.0), np.float32(empty))


def select_masks(
    low_res_masks: np.ndarray, iou_predictions: np.ndarray, multimask_output: bool, selection: MaskSelection = MaskSelection()
) -> tuple[np.ndarray, np.ndarray]:
    """All-token decoder outputs [P,T,256,256], [P,T] -> the masks SAM2 returns for the request."""
    lo, hi = selection.multimask_slice
    if multimask_output:
        return low_res_masks[:, lo:hi], iou_predictions[:, lo:hi]
    single, single_iou = low_res_masks[:, 0:1], iou_predictions[:, 0:1]
    if not selection.dynamic_multimask_via_stability:
        return single, single_iou
    multi, multi_iou = low_res_masks[:, lo:hi], iou_predictions[:, lo:hi]
    best = np.argmax(multi_iou, axis=-1)
    rows = np.arange(multi.shape[0])
    best_masks, best_iou = multi[rows, best][:, None], multi_iou[rows, best][:, None]
    stable = stability_scores(single[:, 0], selection.stability_delta) >= selection.stability_thresh
    return (
        np.where(stable[:, None, None, None], single, best_masks),
        np.where(stable[:, None], single_iou, best_iou),
    )


def upsample_masks(low_res: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """Logits [..., 256, 256] -> [..., H, W] with torch's bilinear (align_corners=False)."""
    return _resample(np.asarray(low_res, np.float32), orig_hw, antialias=False)


NON_OVERLAP_CLAMP = -10.0  # SAM2's ceiling of the logits of the objects that lose a pixel


def non_overlapping(logits: np.ndarray) -> np.ndarray:
    """SAM2's ``_apply_non_overlapping_constraints`` on objects' logits [O, ...]: each pixel stays with the
    object of the highest logit (the first on ties); the others' logits there are clamped to at most -10."""
    logits = np.asarray(logits, np.float32)
    if logits.shape[0] <= 1:
        return logits
    best = np.argmax(logits, axis=0)
    keep = best[None] == np.arange(logits.shape[0]).reshape(-1, *([1] * (logits.ndim - 1)))
    return np.where(keep, logits, np.minimum(logits, np.float32(NON_OVERLAP_CLAMP)))


def postprocess_masks(
    low_res_masks: np.ndarray, orig_hw: tuple[int, int], mask_threshold: float = 0.0, return_logits: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Upsampled masks (bool, or logits with ``return_logits``) and low-res logits clamped to +-32."""
    full = upsample_masks(low_res_masks, orig_hw)
    masks = full if return_logits else full > mask_threshold
    return masks, np.clip(low_res_masks, -LOGIT_CLAMP, LOGIT_CLAMP)
