"""Pre- and post-processing as graphs, so that on a GPU only pixels go in and masks come out.

``PreprocessGraph``: uint8 pixels [H, W, 3] -> the encoder's input [1, 3, S, S]: torchvision's
antialiased bilinear resize (a square stretch) and ImageNet normalisation. The resampling
weights are derived inside the graph from H and W, with exact integer arithmetic for the tap
offsets, so nothing but the pixels crosses the bus and any resolution works.

``PostprocessGraph``: the decoder's outputs of every mask token -> the planes a caller asked for
(``mask_planes``: indices into ``[single or its stability fallback, multimask 1..3, best
multimask]``), upsampled bilinearly to the image size, thresholded to uint8 masks, with their
scores and clamped low-res logits. The image size is read from the shape of the ``pixels``
tensor the preprocess graph took (already on the device; its values are never read).

Both follow TensorRT's rule for UINT8 (docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/
infer/FoundationalTypes/DataType.html): a uint8 tensor is only a network input or output, converted by a
Cast from or to float32/float16 and used by nothing else. So the pixels are cast to float before any
other op reads them (even for their shape), and the masks are selected as float 0/1 and cast to uint8
last (``nanosam2.utils.onnx_passes.tensorrt_type_violations`` checks every exported graph for this).

Both are the numpy reference of ``nanosam2.transforms`` written in torch (the PyTorch backend
runs them as they are; the exporter writes them to ONNX for ONNX Runtime and TensorRT), and the
tests hold them to it: encoder input within 1e-4, masks IoU >= 0.999.
"""

from __future__ import annotations

import torch
from torch import nn

from nanosam2.contract import NUM_CANDIDATE_PLANES  # noqa: F401 - the planes ``mask_planes`` picks from (PLANE_*)
from nanosam2.transforms import LOGIT_CLAMP, PIXEL_MEAN, PIXEL_STD, MaskSelection


def antialias_bilinear_weights(in_len: torch.Tensor, out_size: int) -> torch.Tensor:
    """[out, in] weights of torch's antialiased bilinear resize (= ``transforms.antialias_bilinear_weights``).

    ``in_len`` is ``arange(in)``. The tap offset ``(j + 0.5) - (i + 0.5) * in / out``, divided by
    the filter support, is computed as the integer ``(2j+1)*out - (2i+1)*in`` over ``2*max(in, out)``:
    exact in float32 up to 8k pixels, where the naive float32 form loses 1e-4.
    """
    size_in = in_len[-1:] + 1.0  # [1], the input length as a tensor (dynamic in exports)
    outputs = torch.arange(out_size, dtype=torch.float32, device=in_len.device)
    offsets = (2.0 * in_len + 1.0)[None, :] * float(out_size) - (2.0 * outputs + 1.0)[:, None] * size_in
    support = 2.0 * torch.clamp(size_in, min=float(out_size))
    weights = torch.relu(1.0 - torch.abs(offsets / support))
    return weights / weights.sum(dim=1, keepdim=True)


def bilinear_weights(out_len: torch.Tensor, in_size: int) -> torch.Tensor:
    """[out, in] weights of ``interpolate(bilinear, align_corners=False)`` (= ``transforms.bilinear_weights``),
    source coordinates in float32 as torch's kernels compute them. ``out_len`` is ``arange(out)``."""
    size_out = out_len[-1:] + 1.0
    scale = float(in_size) / size_out
    source = torch.clamp(scale * (out_len + 0.5) - 0.5, min=0.0)
    first = torch.clamp(torch.floor(source), max=float(in_size - 1))
    second = torch.clamp(first + 1.0, max=float(in_size - 1))
    frac = source - first
    taps = torch.arange(in_size, dtype=torch.float32, device=out_len.device)[None, :]
    return (taps == first[:, None]).float() * (1.0 - frac)[:, None] + (taps == second[:, None]).float() * frac[:, None]


def _axis(pixels: torch.Tensor, dim: int) -> torch.Tensor:
    """``arange(pixels.shape[dim])`` in float32, derived from the data so exports keep it dynamic.
    ``pixels`` is already cast to float: TensorRT takes a uint8 tensor into a Cast and nothing else."""
    ones = torch.ones_like(pixels.select(2, 0).select(1 - dim, 0), dtype=torch.float32)
    return torch.cumsum(ones, dim=0) - 1.0


class PreprocessGraph(nn.Module):
    """uint8 RGB pixels [H, W, 3] -> normalised float32 [1, 3, S, S], as ``transforms.preprocess_image``."""

    def __init__(self, image_size: int, mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        values = pixels.to(torch.float32)  # first: every other op reads float
        rows = antialias_bilinear_weights(_axis(values, 0), self.image_size)  # [S, H]
        cols = antialias_bilinear_weights(_axis(values, 1), self.image_size)  # [S, W]
        planes = values.permute(2, 0, 1) / 255.0  # [3, H, W]
        resized = torch.matmul(torch.matmul(rows, planes), cols.transpose(0, 1))
        return ((resized - self.mean) / self.std).unsqueeze(0)


class PostprocessGraph(nn.Module):
    """All-token decoder outputs -> chosen planes as uint8 masks at the image size, scores, logits."""

    def __init__(self, selection: MaskSelection | None = None, mask_threshold: float = 0.0,
                 low_res_size: int = 256) -> None:
        super().__init__()
        selection = selection or MaskSelection()
        self.lo, self.hi = selection.multimask_slice
        self.dynamic = bool(selection.dynamic_multimask_via_stability)
        self.delta, self.thresh = float(selection.stability_delta), float(selection.stability_thresh)
        self.mask_threshold = float(mask_threshold)
        self.low_res_size = int(low_res_size)

    def candidates(self, low_res_masks: torch.Tensor, iou_predictions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[P, 5, L, L] planes and [P, 5] scores: single (or its fallback), multimask 1..3, best multimask."""
        multi, multi_iou = low_res_masks[:, self.lo : self.hi], iou_predictions[:, self.lo : self.hi]
        best = torch.argmax(multi_iou, dim=1, keepdim=True)  # [P, 1]
        best_iou = torch.gather(multi_iou, 1, best)
        size = low_res_masks.shape[-1]
        best_mask = torch.gather(multi, 1, best[:, :, None, None].expand(-1, -1, size, size))
        single, single_iou = low_res_masks[:, 0:1], iou_predictions[:, 0:1]
        if self.dynamic:
            inner = (single > self.delta).flatten(2).to(torch.float32).sum(-1)
            outer = (single > -self.delta).flatten(2).to(torch.float32).sum(-1)
            score = torch.where(outer > 0, inner / torch.clamp(outer, min=1.0), torch.ones_like(outer))
            stable = score >= self.thresh  # [P, 1]
            single = torch.where(stable[:, :, None, None], single, best_mask)
            single_iou = torch.where(stable, single_iou, best_iou)
        return torch.cat([single, multi, best_mask], dim=1), torch.cat([single_iou, multi_iou, best_iou], dim=1)

    def forward(self, low_res_masks: torch.Tensor, iou_predictions: torch.Tensor, pixels: torch.Tensor,
                mask_planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        planes, scores = self.candidates(low_res_masks, iou_predictions)
        chosen = torch.index_select(planes, 1, mask_planes)  # [P, K, L, L]
        chosen_scores = torch.index_select(scores, 1, mask_planes)
        image = pixels.to(torch.float16)  # only its shape is read; the cast keeps uint8 at the graph's edge
        rows = bilinear_weights(_axis(image, 0), self.low_res_size)  # [H, L]
        cols = bilinear_weights(_axis(image, 1), self.low_res_size)  # [W, L]
        full = torch.matmul(torch.matmul(rows, chosen), cols.transpose(0, 1))  # [P, K, H, W]
        # 0/1 in float, then float -> uint8 (TensorRT 10 casts to uint8 from float32/float16 only, not from bool)
        selected = torch.where(full > self.mask_threshold, torch.ones_like(full), torch.zeros_like(full))
        masks = selected.to(torch.uint8)
        return masks, chosen_scores, torch.clamp(chosen, -LOGIT_CLAMP, LOGIT_CLAMP)
