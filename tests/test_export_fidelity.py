"""Exported ONNX graphs, run by the runtime predictor in ONNX Runtime, reproduce Meta's
SAM2ImagePredictor on the same random weights (the acceptance bar of the export)."""

from __future__ import annotations

import numpy as np
import pytest
from sam2.sam2_image_predictor import SAM2ImagePredictor

from export.exporter import export_model
from nanosam2 import contract as C
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.factory import open_runner
from nanosam2.metrics import mask_iou

from .conftest import export_once, make_test_image, with_trained_logit_scale

IMAGE = make_test_image(480, 640, seed=7)  # a photo-sized image: tiny masks still span pixels
CASES = {
    "one point": dict(points=[[240, 160]], labels=[1]),
    "several points": dict(points=[[240, 160], [400, 360], [80, 400], [560, 80]], labels=[1, 1, 0, 0]),
    "box": dict(box=[120, 80, 440, 320]),
    "box + point": dict(box=[120, 80, 440, 320], points=[[280, 200]], labels=[0]),
    "8 boxes": dict(box=[[20 + 40 * i, 20 + 20 * i, 240 + 48 * i, 200 + 32 * i] for i in range(8)]),
}
THRESHOLDS = {"fp32": 0.99, "fp16": 0.98}
FIDELITY: list[str] = []  # table rows printed at the end of each model's test


class CountingRunner:
    """Wraps a runner and counts decoder calls (the 8-box batch must be one call)."""

    def __init__(self, runner):
        self.runner, self.calls = runner, 0

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def infer(self, feed, **options):
        self.calls += 1
        return self.runner.infer(feed, **options)


# One worker runs the module (and test_tensorrt_rtx, which builds engines from the same hiera_t export): a
# pipeline is made once, instead of a second worker waiting for the first's export of it.
pytestmark = pytest.mark.xdist_group("hiera_t")


@pytest.fixture(scope="module", params=[
    ("hiera_t", "fp32"), pytest.param(("hiera_t", "fp16"), marks=pytest.mark.slow), ("resnet18", "fp32"),
    ("resnet18", "fp16"),
], ids=lambda p: "-".join(p))
def pipelines(request, tmp_path_factory):
    # once per worker and parameter: xdist may interleave the parameters, which would export again
    if request.param not in _PIPELINES:
        _PIPELINES[request.param] = _make_pipelines(request.param, tmp_path_factory)
    return _PIPELINES[request.param]


_PIPELINES: dict = {}


def _make_pipelines(param, tmp_path_factory):
    import torch

    from nanosam2.build import build_nanosam2, build_teacher

    backbone, precision = param
    torch.manual_seed(0)
    model = (build_teacher(backbone, None, device="cpu") if backbone.startswith("hiera")
             else build_nanosam2(backbone, device="cpu"))
    with_trained_logit_scale(model)
    graphs = export_once(tmp_path_factory, f"{backbone}-{precision}",
                         lambda folder: export_model(model, backbone, folder, precision=precision, video=False))
    meta = SAM2ImagePredictor(model)
    meta.set_image(IMAGE)
    decoder = CountingRunner(open_runner(graphs[C.DECODER]))
    ours = Predictor(open_runner(graphs[C.ENCODER]), decoder)
    ours.set_image(IMAGE)
    return backbone, precision, meta, ours, decoder


def _compare(meta_out, our_out):
    (m_masks, m_scores, m_low), (o_masks, o_scores, o_low) = meta_out, our_out
    assert m_masks.shape == o_masks.shape and m_low.shape == o_low.shape
    planes = m_masks.shape[-2:]
    ious = [mask_iou(a > 0, b) for a, b in zip(m_masks.reshape(-1, *planes), o_masks.reshape(-1, *planes))]
    return (min(ious), float(np.abs(m_low - o_low).max()), float(np.abs(m_scores - o_scores).max()),
            float(np.mean(m_masks > 0)))


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("case", list(CASES) + ["mask input"])
def test_onnx_predictor_matches_meta(pipelines, case, multimask):
    backbone, precision, meta, ours, decoder = pipelines
    if case == "mask input":
        _, scores, logits = meta.predict(np.array([[240, 160]]), np.array([1]), multimask_output=True)
        prompt = dict(points=[[240, 160], [400, 360]], labels=[1, 0], mask_input=logits[np.argmax(scores)][None])
    else:
        prompt = CASES[case]
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in prompt.items()}
    meta_out = meta.predict(point_coords=arrays.get("points"), point_labels=arrays.get("labels"), box=arrays.get("box"),
                            mask_input=arrays.get("mask_input"), multimask_output=multimask)
    calls = decoder.calls
    our_out = ours.predict(points=arrays.get("points"), labels=arrays.get("labels"), boxes=arrays.get("box"),
                           mask_input=arrays.get("mask_input"), multimask_output=multimask)
    assert decoder.calls == calls + 1, "every prompt batch must be a single decoder call"
    iou, low_err, score_err, fg = _compare(meta_out, our_out)
    print(f"| {backbone} | {precision} | {case} | {'multi' if multimask else 'single'} | "
          f"IoU {iou:.4f} | low-res max abs {low_err:.2e} | score max abs {score_err:.2e} | fg {fg:.2f} |")
    assert iou >= THRESHOLDS[precision]
    assert 0.001 < fg < 0.999, "degenerate reference masks would make the IoU meaningless"
    if precision == "fp32":
        assert low_err <= 1e-3 and score_err <= 1e-3
