"""COCO evaluation: the metric by hand, an oracle scores 1.0, the loop through a real predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanosam2.errors import NanoSam2Error
from nanosam2.evaluation.coco_eval import evaluate_coco, load_coco, xywh_to_xyxy
from nanosam2.evaluation.coco_metrics import load_results, mean_iou, select, size_bucket, summarize
from nanosam2.transforms import build_prompts

from .coco_synthetic import make_coco

pytestmark = pytest.mark.xdist_group("runtime_onnx")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("coco"))


def test_size_buckets_are_half_open():
    assert [size_bucket(a) for a in (1023.9, 1024, 9215.9, 9216)] == ["small", "medium", "medium", "large"]


def test_metric_on_hand_made_results(tmp_path):
    records = [
        {"id": 1, "area": 100, "category_id": 1, "iou": 0.2},
        {"id": 2, "area": 1024, "category_id": 1, "iou": 0.6},  # exactly 32^2: medium only
        {"id": 3, "area": 5000, "category_id": 2, "iou": 0.8},
        {"id": 4, "area": 9216, "category_id": 2, "iou": 0.9},  # exactly 96^2: large only
        {"id": 5, "area": 20000, "category_id": 1, "iou": 0.5},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records))
    loaded = load_results(path)
    assert mean_iou(select(loaded, "all")) == pytest.approx(3.0 / 5)
    assert mean_iou(select(loaded, "small")) == pytest.approx(0.2)
    assert mean_iou(select(loaded, "medium")) == pytest.approx(0.7)
    assert mean_iou(select(loaded, "large")) == pytest.approx(0.7)
    assert mean_iou(select(loaded, "all", category_id=2)) == pytest.approx(0.85)
    summary = summarize(loaded)
    assert summary.counts == {"all": 5, "small": 1, "medium": 2, "large": 2}


@pytest.mark.parametrize("content", ["not json", '{"a": 1}', '[{"iou": 1}]'])
def test_bad_results_file(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(NanoSam2Error):
        load_results(path)


class Oracle:
    """Returns each annotation's ground-truth mask; checks the loop's box prompts on the way."""

    def __init__(self, ann_file):
        self.coco = load_coco(ann_file)
        self.ids = iter(sorted(i for i in self.coco.getImgIds() if self.coco.getAnnIds(imgIds=i)))

    def identity(self):
        return {"oracle": "ground truth"}

    def set_image(self, image):
        self.image_id = next(self.ids)
        info = self.coco.loadImgs(self.image_id)[0]
        assert image.shape == (info["height"], info["width"], 3)

    def build_prompts(self, boxes):
        info = self.coco.loadImgs(self.image_id)[0]
        return build_prompts((info["height"], info["width"]), boxes=boxes)

    def predict_best(self, prompts):
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=self.image_id, iscrowd=None))
        h, w = self.coco.loadImgs(self.image_id)[0]["height"], self.coco.loadImgs(self.image_id)[0]["width"]
        expected = np.array([xywh_to_xyxy(a["bbox"]) for a in anns]) / [w, h, w, h] * 1024
        np.testing.assert_allclose(prompts.point_coords[:, :2].reshape(-1, 4), expected, rtol=1e-5)
        assert (prompts.point_labels[:, :2] == [2, 3]).all()
        return np.stack([self.coco.annToMask(a) > 0 for a in anns]), np.ones(len(anns))


def test_ground_truth_predictor_scores_one_everywhere(coco, tmp_path):
    images, ann_file = coco
    records, stats = evaluate_coco(Oracle(ann_file), images, ann_file, tmp_path / "r.json", progress=False)
    summary = summarize(records)
    assert summary.counts == {"all": 9, "small": 3, "medium": 3, "large": 3}
    assert all(summary.miou[s] == 1.0 for s in summary.miou)
    assert any(r["iscrowd"] for r in records) and stats.images == 3


def test_loop_runs_through_the_onnx_predictor_and_resumes(coco, runtime_onnx, tmp_path):
    from nanosam2.inference.factory import load_predictor

    images, ann_file = coco
    out = tmp_path / "results.json"
    with load_predictor(runtime_onnx["image_encoder"], runtime_onnx["mask_decoder"]) as predictor:
        first, _ = evaluate_coco(predictor, images, ann_file, out, limit=1, progress=False)
        records, stats = evaluate_coco(predictor, images, ann_file, out, progress=False)
    assert len(first) == 3 and stats.images == 2  # resumed: only the two remaining images ran
    assert sorted(r["id"] for r in records) == list(range(1, 10))
    assert all(0.0 <= r["iou"] <= 1.0 for r in records)
    print(f"COCO loop, ONNX Runtime CPU: {stats.annotations_per_second:.2f} annotations/s")


def test_missing_annotation_file(tmp_path):
    with pytest.raises(NanoSam2Error, match="no such COCO annotation file"):
        evaluate_coco(None, tmp_path, tmp_path / "none.json")
