"""A student-built model runs end to end through Meta's SAM2ImagePredictor and ours."""

import numpy as np
import pytest
from sam2.sam2_image_predictor import SAM2ImagePredictor

from nanosam2.predictor import NanoSam2Predictor


@pytest.fixture(scope="module")
def meta_predictor(resnet18_model, test_image):
    predictor = SAM2ImagePredictor(resnet18_model)
    predictor.set_image(test_image)
    return predictor


@pytest.fixture(scope="module")
def our_predictor(resnet18_model, test_image):
    predictor = NanoSam2Predictor(resnet18_model)
    predictor.set_image(test_image)
    return predictor


def _check(masks, scores, logits, count, shape):
    assert masks.shape == (count, *shape) and scores.shape == (count,) and logits.shape == (count, 256, 256)
    assert np.isfinite(masks).all() and np.isfinite(scores).all() and np.isfinite(logits).all()
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_point_box_and_mask_input(meta_predictor, test_image):
    shape = test_image.shape[:2]
    masks, scores, logits = meta_predictor.predict(np.array([[40, 30]]), np.array([1]), multimask_output=True)
    _check(masks, scores, logits, 3, shape)
    box_masks, box_scores, box_logits = meta_predictor.predict(box=np.array([20, 15, 70, 50]), multimask_output=False)
    _check(box_masks, box_scores, box_logits, 1, shape)
    refined = meta_predictor.predict(np.array([[40, 30], [90, 60]]), np.array([1, 0]),
                                     mask_input=logits[np.argmax(scores)][None], multimask_output=False)
    _check(*refined, 1, shape)


def test_our_predictor_matches_meta(meta_predictor, our_predictor):
    points, labels = np.array([[40.0, 30.0], [90.0, 64.0]]), np.array([1, 0])
    ours = our_predictor.predict(points=points, labels=labels, box=np.array([10, 10, 80, 60]))
    meta = meta_predictor.predict(point_coords=points, point_labels=labels, box=np.array([10, 10, 80, 60]))
    for a, b in zip(ours, meta):
        np.testing.assert_array_equal(a, b)


def test_batched_boxes(our_predictor, test_image):
    boxes = np.array([[10, 10, 60, 50], [50, 40, 120, 90], [0, 0, 128, 96]], dtype=np.float32)
    masks, scores, logits = our_predictor.predict(box=boxes, multimask_output=False)
    assert masks.shape == (3, 1, *test_image.shape[:2]) and scores.shape == (3, 1) and logits.shape == (3, 1, 256, 256)
    single, _, _ = our_predictor.predict(box=boxes[1], multimask_output=False)
    assert (single[0] == masks[1, 0]).mean() > 0.999


def test_from_checkpoint_rebuilds_the_same_predictions(resnet18_model, our_predictor, test_image, tmp_path):
    from nanosam2.build import save_student

    path = save_student(tmp_path / "s.pth", resnet18_model)
    rebuilt = NanoSam2Predictor.from_checkpoint(path, device="cpu")
    rebuilt.set_image(test_image)
    a = rebuilt.predict(points=np.array([[40, 30]]), labels=np.array([1]))
    b = our_predictor.predict(points=np.array([[40, 30]]), labels=np.array([1]))
    np.testing.assert_array_equal(a[2], b[2])
