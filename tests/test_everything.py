"""Segment everything: the torch-free AutomaticMaskGenerator against Meta's SAM2AutomaticMaskGenerator
on the same random weights, its mask algebra against pycocotools / torchvision / sam2.utils.amg,
and the ``everything`` command end to end.

Meta's predictor skips its hole filling and sprinkle removal without the sam2 CUDA extension
(absent here), so the parity runs use ``min_mask_region_area=0``; ours is tested on its own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2 import masks as M
from nanosam2.errors import NanoSam2Error
from nanosam2.inference import automatic as A
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.torch_runner import TorchRunner
from nanosam2.metrics import mask_iou
from nanosam2.utils.cli import run_cli

from .conftest import make_test_image


@pytest.fixture(scope="module")
def random_masks() -> np.ndarray:
    gen = np.random.default_rng(4)
    masks = gen.random((6, 23, 31)) > 0.6
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2, 0, 0] = True  # starts with a one
    masks[3] = False
    masks[3, 5:9, 10:20] = True  # one box
    return masks


def test_rle_round_trips_through_pycocotools(random_masks):
    from pycocotools import mask as coco_mask

    for mask, rle in zip(random_masks, M.masks_to_rles(random_masks)):
        assert np.array_equal(M.rle_to_mask(rle), mask)
        assert M.rle_area(rle) == int(mask.sum())
        ours = M.rle_to_coco(rle)
        theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(theirs["size"])
        assert np.array_equal(coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()}), mask)
        assert M.coco_to_rle(ours) == rle
        assert int(coco_mask.area(theirs)) == M.rle_area(rle)


def test_boxes_and_stability_equal_sam2_amg(random_masks):
    import torch
    from sam2.utils.amg import batched_mask_to_box, calculate_stability_score

    from nanosam2.transforms import stability_scores

    assert np.array_equal(M.masks_to_boxes(random_masks), batched_mask_to_box(torch.from_numpy(random_masks)).numpy())
    logits = np.random.default_rng(2).normal(0, 3, (5, 40, 50)).astype(np.float32)
    logits[4] = -9  # empty at both thresholds: Meta divides 0 by 0, ours says 0
    theirs = calculate_stability_score(torch.from_numpy(logits), 0.5, 1.0).numpy()
    ours = stability_scores(logits, 1.0, 0.5, empty=0.0)
    np.testing.assert_allclose(ours[:4], theirs[:4], rtol=1e-6)
    assert np.isnan(theirs[4]) and ours[4] == 0.0
    by_hand = np.array([[[-2.0, -0.5, 0.5, 2.0]]])  # > +1: one pixel; > -1: three pixels
    assert stability_scores(by_hand, 1.0, 0.0)[0] == pytest.approx(1 / 3)


def test_box_nms_equals_torchvision_and_a_hand_case():
    import torch
    from torchvision.ops import nms

    gen = np.random.default_rng(0)
    xy = gen.uniform(0, 80, (60, 2))
    boxes = np.concatenate([xy, xy + gen.uniform(5, 40, (60, 2))], axis=1)
    scores = gen.permutation(60).astype(np.float64)  # distinct
    for threshold in (0.0, 0.3, 0.7, 1.0):
        theirs = nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), threshold).numpy()
        assert np.array_equal(M.box_nms(boxes, scores, threshold), theirs), threshold
    # IoU of A and B = 50 / 150: B goes at 0.3, stays at 0.4; C never overlaps
    hand = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float64)
    assert M.box_nms(hand, np.array([0.9, 0.8, 0.1]), 0.3).tolist() == [0, 2]
    assert M.box_nms(hand, np.array([0.9, 0.8, 0.1]), 0.4).tolist() == [0, 1, 2]


def test_grids_and_crops_equal_sam2_amg():
    from sam2.utils.amg import build_all_layer_point_grids, generate_crop_boxes

    for n, layers, scale in ((32, 0, 1), (7, 2, 2), (4, 1, 1)):
        for ours, theirs in zip(A.layer_point_grids(n, layers, scale), build_all_layer_point_grids(n, layers, scale)):
            np.testing.assert_allclose(ours, theirs)
    for hw, layers, ratio in (((480, 640), 1, 512 / 1500), ((17, 4000), 2, 0.2), ((160, 224), 1, 0.0)):
        assert A.crop_boxes(hw, layers, ratio) == generate_crop_boxes(hw, layers, ratio)


def test_small_holes_and_sprinkles_are_removed_from_a_drawn_mask():
    logits = np.full((1, 40, 40), -5.0, np.float32)
    logits[0, 5:35, 5:35] = 5.0  # a square ...
    logits[0, 10:12, 10:12] = -5.0  # ... with a 4-pixel hole
    logits[0, 18:28, 18:28] = -5.0  # ... and a 100-pixel hole
    logits[0, 37, 37] = 5.0  # a 1-pixel island
    logits[0, 36:38, 1:3] = 5.0  # a 4-pixel island
    out = M.fill_holes_and_sprinkles(logits, max_hole_area=4, max_sprinkle_area=1)
    assert (out[0, 10:12, 10:12] == 10.0).all()  # small hole filled (threshold + 10)
    assert (out[0, 18:28, 18:28] == -5.0).all()  # large hole kept
    assert out[0, 37, 37] == -10.0  # small island removed (threshold - 10)
    assert (out[0, 36:38, 1:3] == 5.0).all()  # 4 > 1 pixels: kept
    assert np.array_equal(out[0] > 0, (logits[0] > 0) & ~np.isin(np.arange(1600).reshape(40, 40), [37 * 40 + 37])
                          | (np.pad(np.ones((2, 2), bool), ((10, 28), (10, 28)))))
    diagonal = np.full((1, 6, 6), 5.0, np.float32)
    diagonal[0, 2, 2] = diagonal[0, 3, 3] = -5.0  # 8-connected: one 2-pixel hole, not two 1-pixel holes
    assert (M.fill_holes_and_sprinkles(diagonal, 1, 0)[0] == diagonal[0]).all()
    assert (M.fill_holes_and_sprinkles(diagonal, 2, 0)[0] > 0).all()


def _partners(ours: list[dict], theirs: list[dict]) -> float:
    """The worst, over ``ours``, of the best IoU with a mask of ``theirs`` prompted by the same point."""
    worst = 1.0
    for record in ours:
        same_point = [t for t in theirs if np.allclose(t["point_coords"], record["point_coords"])]
        worst = min(worst, max((mask_iou(record["segmentation"], t["segmentation"]) for t in same_point), default=0.0))
    return worst


@pytest.fixture(scope="module")
def generators(runtime_model):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    predictor = Predictor(*(TorchRunner(model=runtime_model, graph=g, device="cpu") for g in (C.ENCODER, C.DECODER)))
    return lambda **params: (A.AutomaticMaskGenerator(predictor, **params), SAM2AutomaticMaskGenerator(runtime_model, **params))


@pytest.mark.parametrize("case", ["every-grid-mask", "nms-and-one-crop-layer"])
def test_parity_with_sam2_automatic_mask_generator(generators, case):
    """Random weights with trained-magnitude logits; thresholds at 0 because random IoU heads predict
    ~0.5 and random masks are not stable (Meta's own default thresholds would keep nothing)."""
    if case == "every-grid-mask":  # NMS off: every grid point's three masks, compared one by one
        image = make_test_image(96, 128, seed=3)
        params = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    else:
        image = make_test_image(160, 224, seed=3)
        params = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, crop_n_layers=1)
    ours_gen, meta_gen = generators(**params)
    ours, meta = ours_gen.generate(image), meta_gen.generate(image)
    print(f"{case}: Meta {len(meta)} masks, ours {len(ours)}; crops {sorted({tuple(r['crop_box']) for r in ours})}")
    assert len(ours) == len(meta) > 0
    if case == "every-grid-mask":
        assert len(ours) == 16 * 3
    else:
        assert {tuple(r["crop_box"]) for r in ours} == {tuple(r["crop_box"]) for r in meta}
        assert len({tuple(r["crop_box"]) for r in ours}) > 1  # crop masks survived the crop NMS
    assert _partners(meta, ours) >= 0.98 and _partners(ours, meta) >= 0.98
    for a, b in zip(sorted(ours, key=lambda r: r["point_coords"]), sorted(meta, key=lambda r: r["point_coords"])):
        assert np.allclose(a["point_coords"], b["point_coords"]) and a["crop_box"] == b["crop_box"]  # Meta's: float32
    key = {(*np.round(r["point_coords"][0], 3), round(r["predicted_iou"], 4)): r for r in meta}
    for record in ours:  # same mask: same box, area and scores
        twin = key[(*np.round(record["point_coords"][0], 3), round(record["predicted_iou"], 4))]
        assert record["bbox"] == twin["bbox"] and abs(record["area"] - twin["area"]) <= 2
        assert record["predicted_iou"] == pytest.approx(twin["predicted_iou"], abs=1e-4)
        if not np.isnan(twin["stability_score"]):
            assert record["stability_score"] == pytest.approx(twin["stability_score"], abs=1e-2)


def test_generator_on_other_output_modes_and_bad_parameters(generators):
    ours, _ = generators(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=30)
    image = make_test_image(64, 80, seed=1)
    binary = ours.generate(image)
    ours.output_mode = "coco_rle"
    coco = ours.generate(image)
    assert len(binary) == len(coco) > 0 and ours.prompts_decoded == 4
    for a, b in zip(binary, coco):
        assert np.array_equal(a["segmentation"], M.rle_to_mask(M.coco_to_rle(b["segmentation"])))
        assert a["segmentation"].shape == (64, 80) and a["area"] == int(a["segmentation"].sum())
    predictor = ours.predictor
    bad = [dict(points_per_side=0), dict(pred_iou_thresh=-0.1), dict(crop_overlap_ratio=1.0),
           dict(points_per_side=None), dict(points_per_side=2, point_grids=[np.zeros((1, 2))]),
           dict(output_mode="png"), dict(stability_score_offset=float("nan")),
           dict(points_per_side=2, crop_n_layers=1, crop_n_points_downscale_factor=4)]
    for params in bad:
        with pytest.raises(NanoSam2Error):
            A.AutomaticMaskGenerator(predictor, **params)
    with pytest.raises(NanoSam2Error, match="at least 2x2"):
        ours.generate(np.zeros((1, 1, 3), np.uint8))


@pytest.mark.xdist_group("runtime_onnx")
def test_everything_command_end_to_end(runtime_onnx, tmp_path, capsys):
    from PIL import Image
    from pycocotools import mask as coco_mask

    from trt_runtime.cli import main

    image_path = tmp_path / "scene.png"
    Image.fromarray(make_test_image(120, 160, seed=2)).save(image_path)
    out = tmp_path / "out"
    base = ["everything", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
            "--image", str(image_path), "--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
            "--output", str(out)]
    assert run_cli(main, base) == 0
    printed = capsys.readouterr().out
    assert "from 9 point prompts" in printed and "decoder" in printed
    records = json.loads((out / "masks.json").read_text())
    assert records and {"segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords",
                        "crop_box"} <= set(records[0])
    for record in records:  # pycocotools reads our RLE strings
        rle = {"size": record["segmentation"]["size"], "counts": record["segmentation"]["counts"].encode()}
        assert int(coco_mask.area(rle)) == record["area"] and coco_mask.decode(rle).shape == (120, 160)
    assert Image.open(out / "overlay.png").size == (160, 120)
    assert json.loads((out / "everything.json").read_text())["masks"] == len(records)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    def exit_code(argv: list[str]) -> int:
        try:
            return run_cli(main, argv)
        except SystemExit as stop:  # argparse's own one-line errors
            return int(stop.code or 0)

    for extra, message in ((["--points-per-side", "0"], "--points-per-side"),
                           (["--box-nms-thresh", "-1"], "--box-nms-thresh"),
                           (["--crop-overlap-ratio", "1"], "crop_overlap_ratio must be in [0, 1)")):
        assert exit_code([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    assert run_cli(main, [*base[:5], "--image", str(tiny), "--output", str(tmp_path / "tiny")]) == 2
    assert "at least 2x2" in capsys.readouterr().err and not (tmp_path / "tiny").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # failed runs changed nothing
