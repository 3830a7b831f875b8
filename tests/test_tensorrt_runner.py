"""The TensorRT runner's logic, on CPU: a fake TensorRT runs the same ONNX graphs in ONNX
Runtime behind real buffer addresses, so results must equal the ONNX Runtime runner's exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2.records import engine_record_path
from nanosam2.errors import NanoSam2Error
from nanosam2.transforms import build_prompts
from nanosam2.utils.cuda_api import CudaRuntime
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner
from nanosam2.inference.tensorrt_runner import TensorRTRunner

from .conftest import make_test_image
from .fake_tensorrt import FakeCudart, FakeTensorRT, write_engine

pytestmark = pytest.mark.xdist_group("runtime_onnx")

ENCODER_PROFILE = {C.IMAGE: [[1, 3, 1024, 1024]] * 3}


def decoder_profile(max_prompts: int = 64, max_points: int = 16) -> dict:
    profile = {C.IMAGE_EMBED: [[1, 256, 64, 64]] * 3, C.HIGH_RES_FEATS_0: [[1, 32, 256, 256]] * 3,
               C.HIGH_RES_FEATS_1: [[1, 64, 128, 128]] * 3}
    for name, tail in ((C.POINT_COORDS, [2]), (C.POINT_LABELS, [])):
        profile[name] = [[1, 1, *tail], [1, 4, *tail], [max_prompts, max_points, *tail]]
    profile[C.MASK_INPUT] = [[1, 1, 256, 256], [1, 1, 256, 256], [max_prompts, 1, 256, 256]]
    profile[C.HAS_MASK_INPUT] = [[1], [1], [max_prompts]]
    return profile


@pytest.fixture(params=["10.3.0", "11.4.1"])
def fake(request):
    cudart = FakeCudart()
    return FakeTensorRT(cudart, version=request.param), cudart


def engines(tmp_path, runtime_onnx, max_prompts=64, sidecar=True):
    paths = {}
    for graph, profile in ((C.ENCODER, ENCODER_PROFILE), (C.DECODER, decoder_profile(max_prompts))):
        path = write_engine(tmp_path / f"{graph}.engine", runtime_onnx[graph], profile)
        if sidecar:
            contract = OnnxRuntimeRunner(runtime_onnx[graph]).contract
            engine_record_path(path).write_text(json.dumps({C.METADATA_KEY: contract.to_json()}))
        paths[graph] = path
    return paths


def open_trt(path, fake, **kw):
    trt, cudart = fake
    return TensorRTRunner(path, trt=trt, cuda=CudaRuntime(cudart), **kw)


def test_outputs_equal_onnxruntime(tmp_path, runtime_onnx, fake):
    paths = engines(tmp_path, runtime_onnx)
    image = np.random.default_rng(0).standard_normal((1, 3, 1024, 1024)).astype(np.float32)
    with open_trt(paths[C.ENCODER], fake) as trt_enc:
        ours = trt_enc.infer({C.IMAGE: image})
    reference = OnnxRuntimeRunner(runtime_onnx[C.ENCODER]).infer({C.IMAGE: image})
    assert trt_enc.contract.graph == C.ENCODER and trt_enc.max_batch() is None
    for name in C.ENCODER_OUTPUTS:
        np.testing.assert_array_equal(ours[name], reference[name])
    assert not fake[1].buffers, "close() must free every device and pinned buffer"


def test_predictor_over_tensorrt_equals_onnxruntime(tmp_path, runtime_onnx, fake):
    paths = engines(tmp_path, runtime_onnx, max_prompts=4)
    image = make_test_image(240, 320, seed=3)
    ort_predictor = Predictor(OnnxRuntimeRunner(runtime_onnx[C.ENCODER]), OnnxRuntimeRunner(runtime_onnx[C.DECODER]))
    trt_predictor = Predictor(open_trt(paths[C.ENCODER], fake), open_trt(paths[C.DECODER], fake))
    assert trt_predictor.decoder.max_batch() == 4
    boxes = np.array([[10 + 20 * i, 10 + 10 * i, 120 + 15 * i, 100 + 12 * i] for i in range(10)], np.float32)
    for predictor in (ort_predictor, trt_predictor):
        predictor.set_image(image)
    a = ort_predictor.predict(boxes=boxes, multimask_output=True)
    b = trt_predictor.predict(boxes=boxes, multimask_output=True)  # 10 prompts -> 3 engine calls of <= 4
    assert trt_predictor.decoder.ctx.engine._contexts[0]._executions == 3  # type: ignore[attr-defined]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    clicks = trt_predictor.predict(points=np.array([[100, 80], [200, 150]]), labels=np.array([1, 0]), multimask_output=False)
    np.testing.assert_array_equal(clicks[2], ort_predictor.predict(points=np.array([[100, 80], [200, 150]]),
                                                                   labels=np.array([1, 0]), multimask_output=False)[2])


def test_cuda_graph_replays_with_new_inputs(tmp_path, runtime_onnx, fake):
    paths = engines(tmp_path, runtime_onnx)
    rng = np.random.default_rng(1)
    reference = OnnxRuntimeRunner(runtime_onnx[C.DECODER])
    features = OnnxRuntimeRunner(runtime_onnx[C.ENCODER]).infer(
        {C.IMAGE: rng.standard_normal((1, 3, 1024, 1024)).astype(np.float32)})
    with open_trt(paths[C.DECODER], fake, cuda_graph=True) as runner:
        for count in [2, 2, 2, 3]:
            prompts = build_prompts((100, 100), boxes=rng.uniform(0, 50, (count, 4)) + [0, 0, 50, 50])
            feed = {**features, C.POINT_COORDS: prompts.point_coords, C.POINT_LABELS: prompts.point_labels,
                    C.MASK_INPUT: prompts.mask_input, C.HAS_MASK_INPUT: prompts.has_mask_input}
            out = runner.infer(feed)
            np.testing.assert_array_equal(out[C.LOW_RES_MASKS], reference.infer(feed)[C.LOW_RES_MASKS])
        # call 1 launches plainly and captures; calls 2 and 3 replay; call 4 has a new shape and captures again
        assert fake[1].graph_launches == 2 and runner.engine_stream.captures == 2
        assert runner.ctx.engine._contexts[0]._executions == 4  # type: ignore[attr-defined]


def test_input_outside_profile_is_one_line(tmp_path, runtime_onnx, fake):
    paths = engines(tmp_path, runtime_onnx)
    with open_trt(paths[C.ENCODER], fake) as runner, pytest.raises(NanoSam2Error) as info:
        runner.infer({C.IMAGE: np.zeros((1, 3, 512, 512), np.float32)})
    assert "outside the engine's profile" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00garbage that is not an engine"])
def test_not_an_engine(tmp_path, fake, content):
    path = tmp_path / "bad.engine"
    path.write_bytes(content)
    with pytest.raises(NanoSam2Error, match="empty|not a TensorRT engine TensorRT .* can load"):
        open_trt(path, fake)


def test_cuda_errors_are_reported(tmp_path, runtime_onnx, fake):
    paths = engines(tmp_path, runtime_onnx)
    fake[1].fail_malloc = True
    with open_trt(paths[C.ENCODER], fake) as runner, pytest.raises(NanoSam2Error, match="CUDA error in cudaMalloc"):
        runner.infer({C.IMAGE: np.zeros((1, 3, 1024, 1024), np.float32)})


def test_engine_without_sidecar_uses_tensor_names(tmp_path, runtime_onnx, fake, caplog):
    paths = engines(tmp_path, runtime_onnx, sidecar=False)
    assert open_trt(paths[C.DECODER], fake).contract.graph == C.DECODER
    assert open_trt(paths[C.ENCODER], fake).contract.graph == C.ENCODER
    assert "no nanosam2 sidecar" in caplog.text


def test_a_version_compatible_engine_loads_with_host_code_allowed(tmp_path, runtime_onnx, fake):
    """A version-compatible plan carries TensorRT's lean runtime: TensorRT deserializes it only when the runtime
    allows host code. The runner allows it for a plan its builder recorded as version compatible, and only then."""
    path = write_engine(tmp_path / "decoder.engine", runtime_onnx[C.DECODER], decoder_profile(), version_compatible=True)
    contract = OnnxRuntimeRunner(runtime_onnx[C.DECODER]).contract
    sidecar = engine_record_path(path)
    sidecar.write_text(json.dumps({C.METADATA_KEY: contract.to_json()}))
    with pytest.raises(NanoSam2Error, match="not a TensorRT engine"):
        open_trt(path, fake)
    sidecar.write_text(json.dumps({C.METADATA_KEY: contract.to_json(), "builder_flags": ["VERSION_COMPATIBLE"]}))
    with open_trt(path, fake) as runner:
        assert runner.runtime.engine_host_code_allowed and runner.contract.graph == C.DECODER
