"""One predictor, three backends: ONNX Runtime, PyTorch (our graphs) and Meta's SAM2ImagePredictor
agree on the same random weights (mask IoU >= 0.99)."""

from __future__ import annotations

import numpy as np
import pytest
from sam2.sam2_image_predictor import SAM2ImagePredictor

from nanosam2 import contract as C
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner
from nanosam2.inference.torch_runner import TorchRunner
from nanosam2.metrics import mask_iou

from .conftest import make_test_image

pytestmark = pytest.mark.xdist_group("runtime_onnx")
IMAGE = make_test_image(360, 480, seed=11)
CASES = {
    "point": dict(points=[[200, 120]], labels=[1]),
    "box": dict(boxes=[60, 40, 300, 260]),
    "multi-prompt": dict(points=[[200, 120], [400, 300], [50, 300]], labels=[1, 0, 1], boxes=[60, 40, 300, 260]),
    "mask input": dict(points=[[200, 120]], labels=[1], mask="previous"),
}


@pytest.fixture(scope="module")
def predictors(runtime_model, runtime_onnx):
    meta = SAM2ImagePredictor(runtime_model)
    onnx = Predictor(OnnxRuntimeRunner(runtime_onnx[C.ENCODER]), OnnxRuntimeRunner(runtime_onnx[C.DECODER]))
    torch_ = Predictor(TorchRunner(graph=C.ENCODER, model=runtime_model, device="cpu"),
                       TorchRunner(graph=C.DECODER, model=runtime_model, device="cpu"))
    for predictor in (meta, onnx, torch_):
        predictor.set_image(IMAGE)
    return meta, {"onnxruntime": onnx, "torch": torch_}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_backends_agree_with_meta(predictors, case, multimask):
    meta, ours = predictors
    prompt = {k: np.asarray(v, np.float32) for k, v in CASES[case].items() if k != "mask"}
    mask_input = None
    if "mask" in CASES[case]:
        _, scores, logits = meta.predict(np.array([[200, 120]]), np.array([1]))
        mask_input = logits[np.argmax(scores)][None]
    ref_masks, ref_scores, ref_low = meta.predict(prompt.get("points"), prompt.get("labels"), prompt.get("boxes"),
                                                  mask_input=mask_input, multimask_output=multimask)
    for name, predictor in ours.items():
        masks, scores, low = predictor.predict(prompt.get("points"), prompt.get("labels"), prompt.get("boxes"),
                                               mask_input=mask_input, multimask_output=multimask)
        ious = [mask_iou(a > 0, b) for a, b in zip(ref_masks, masks)]
        print(f"| {case} | {'multi' if multimask else 'single'} | {name} | min IoU {min(ious):.4f} | "
              f"low-res max abs {np.abs(low - ref_low).max():.2e} |")
        assert min(ious) >= 0.99, (name, ious)
        assert np.abs(scores - ref_scores).max() < 1e-3
