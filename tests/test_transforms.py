"""nanosam2.transforms (numpy) against Meta's torch transforms and mask decoder logic."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sam2.utils.transforms import SAM2Transforms

from nanosam2 import transforms as T


@pytest.fixture(scope="module")
def meta_transforms():
    return SAM2Transforms(resolution=1024, mask_threshold=0.0)


@pytest.mark.parametrize("hw", [(96, 128), (600, 512), (1500, 2000), (1024, 1024), (37, 2049)])
def test_preprocess_matches_sam2_transforms(meta_transforms, hw):
    image = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ours = T.preprocess_image(image)
    ref = meta_transforms(image)[None].numpy()
    assert ours.shape == ref.shape == (1, 3, 1024, 1024) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 5e-6


@pytest.mark.parametrize("hw", [(96, 128), (600, 512), (200, 300), (1500, 2000)])
def test_upsample_matches_torch_bilinear(hw):
    low = (np.random.default_rng(1).standard_normal((2, 3, 256, 256)) * 8).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(low), hw, mode="bilinear", align_corners=False).numpy()
    ours = T.upsample_masks(low, hw)
    assert np.abs(ours - ref).max() < 5e-4
    assert ((ours > 0) == (ref > 0)).mean() > 0.99999


def test_prompts_match_meta_prompt_assembly(meta_transforms):
    orig_hw = (600, 512)
    points, labels, box = np.array([[10.0, 20.0], [300.5, 400.0]]), np.array([1, 0]), np.array([5, 6, 400, 500])
    prompts = T.build_prompts(orig_hw, points, labels, box)
    coords = meta_transforms.transform_coords(torch.tensor(points, dtype=torch.float), normalize=True, orig_hw=orig_hw)
    box_xy = meta_transforms.transform_boxes(torch.tensor(box, dtype=torch.float), normalize=True, orig_hw=orig_hw)
    expected = torch.cat([box_xy, coords[None], torch.zeros(1, 1, 2)], dim=1).numpy()
    np.testing.assert_array_equal(prompts.point_coords, expected)
    np.testing.assert_array_equal(prompts.point_labels, [[2, 3, 1, 0, -1]])
    assert prompts.has_mask_input.tolist() == [0.0]


def test_batched_boxes_share_points():
    prompts = T.build_prompts((100, 100), np.array([[1, 2]]), np.array([1]), np.array([[0, 0, 10, 10], [5, 5, 50, 50]]))
    assert prompts.point_coords.shape == (2, 4, 2) and prompts.count == 2
    np.testing.assert_array_equal(prompts.point_labels, [[2, 3, 1, -1], [2, 3, 1, -1]])


def test_pad_prompts_uses_padding_label():
    a = T.build_prompts((100, 100), np.array([[1, 2], [3, 4]]), np.array([1, 0]))
    b = T.build_prompts((100, 100), boxes=np.array([0, 0, 10, 10]), mask_input=np.zeros((1, 256, 256)))
    both = T.pad_prompts([a, b])
    assert both.point_coords.shape == (2, 3, 2)
    np.testing.assert_array_equal(both.point_labels, [[1, 0, -1], [2, 3, -1]])
    assert both.has_mask_input.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bad", [dict(points=np.zeros((2, 2)), labels=np.zeros(3)),
                                 dict(points=np.zeros((2, 2))),
                                 dict(mask_input=np.zeros((1, 64, 64)))])
def test_bad_prompts_raise(bad):
    with pytest.raises(ValueError):
        T.build_prompts((10, 10), **bad)


def test_mask_selection_matches_sam2_decoder(resnet18_model):
    decoder = resnet18_model.sam_mask_decoder
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((6, 4, 256, 256)) * 0.5).astype(np.float32)
    logits[:3, 0] = np.sign(logits[:3, 0]) * 10  # stable single masks for half of the batch
    iou = rng.random((6, 4)).astype(np.float32)
    ref_masks, ref_iou = decoder._dynamic_multimask_via_stability(torch.from_numpy(logits), torch.from_numpy(iou))
    masks, scores = T.select_masks(logits, iou, multimask_output=False)
    np.testing.assert_array_equal(masks, ref_masks.numpy())
    np.testing.assert_array_equal(scores, ref_iou.numpy())
    multi, multi_iou = T.select_masks(logits, iou, multimask_output=True)
    np.testing.assert_array_equal(multi, logits[:, 1:])


@pytest.mark.parametrize("in_hw,out_hw,antialias", [
    ((600, 512), (1024, 1024), True), ((1080, 1920), (1024, 1024), True), ((17, 4000), (1024, 1024), True),
    ((1, 1), (1024, 1024), True), ((3000, 50), (1024, 1024), True),
    ((256, 256), (600, 512), False), ((256, 256), (17, 4000), False), ((256, 256), (97, 131), False),
])
def test_banded_resampling_equals_the_dense_product(in_hw, out_hw, antialias):
    """The CPU path multiplies only each block's non-zero band: same sums as Wh @ x @ Ww.T."""
    planes = np.random.default_rng(0).standard_normal((2, *in_hw)).astype(np.float32) * 8
    banded = T._resample(planes, out_hw, antialias)
    dense = T._resample_dense(planes, out_hw, antialias)
    assert banded.shape == dense.shape == (2, *out_hw) and banded.dtype == np.float32
    assert np.abs(banded - dense).max() <= 1e-5 * max(1.0, float(np.abs(dense).max()))
    if not antialias:
        assert ((banded > 0) == (dense > 0)).mean() >= 0.99999  # thresholded masks agree
