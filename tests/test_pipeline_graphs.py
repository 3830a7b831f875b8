"""The preprocess / postprocess graphs against the numpy reference, on every backend the CPU has:
ONNX Runtime, PyTorch, and the fake TensorRT (which runs the same ONNX behind buffer addresses)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2.records import engine_record_path
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.torch_runner import TorchRunner
from nanosam2.metrics import mask_iou
from nanosam2.utils.cuda_api import CudaRuntime
from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner
from nanosam2.inference.tensorrt_runner import EngineStream, TensorRTRunner

from .conftest import make_test_image
from .fake_tensorrt import FakeCudart, FakeTensorRT, write_engine

pytestmark = pytest.mark.xdist_group("runtime_onnx")

# upscale and downscale, odd sizes, one extreme aspect ratio
SIZES = [(17, 4000), (700, 1100), (97, 131)]
PIXELS_PROFILE = [[2, 2, 3], [1024, 1024, 3], [4096, 4096, 3]]
PROFILES = {
    C.ENCODER: {C.IMAGE: [[1, 3, 1024, 1024]] * 3},
    C.DECODER: {C.IMAGE_EMBED: [[1, 256, 64, 64]] * 3, C.HIGH_RES_FEATS_0: [[1, 32, 256, 256]] * 3,
                C.HIGH_RES_FEATS_1: [[1, 64, 128, 128]] * 3, C.POINT_COORDS: [[1, 1, 2], [1, 4, 2], [8, 8, 2]],
                C.POINT_LABELS: [[1, 1], [1, 4], [8, 8]], C.MASK_INPUT: [[1, 1, 256, 256], [1, 1, 256, 256], [8, 1, 256, 256]],
                C.HAS_MASK_INPUT: [[1], [1], [8]]},
    C.PREPROCESS: {C.PIXELS: PIXELS_PROFILE},
    C.POSTPROCESS: {C.LOW_RES_MASKS: [[1, 4, 256, 256], [1, 4, 256, 256], [8, 4, 256, 256]],
                    C.IOU_PREDICTIONS: [[1, 4], [1, 4], [8, 4]], C.PIXELS: PIXELS_PROFILE, C.MASK_PLANES: [[1], [1], [5]]},
}


def open_runners(backend: str, runtime_onnx, runtime_model, tmp_path, cuda_graph: bool = False) -> dict:
    if backend == "onnxruntime":
        return {g: OnnxRuntimeRunner(runtime_onnx[g]) for g in C.IMAGE_GRAPHS}
    if backend == "torch":
        return {g: TorchRunner(model=runtime_model, graph=g, device="cpu") for g in C.IMAGE_GRAPHS}
    trt = FakeTensorRT(FakeCudart(), version="10.3.0")
    stream = EngineStream(CudaRuntime(trt._cudart), cuda_graph)  # one stream for the pipeline, as load_predictor makes
    runners = {}
    for graph in C.IMAGE_GRAPHS:
        path = write_engine(tmp_path / f"{graph}.engine", runtime_onnx[graph], PROFILES[graph])
        contract = OnnxRuntimeRunner(runtime_onnx[graph]).contract
        engine_record_path(path).write_text(json.dumps({C.METADATA_KEY: contract.to_json()}))
        runners[graph] = TensorRTRunner(path, trt=trt, stream=stream)
    return runners


@pytest.fixture(scope="module")
def images() -> dict:
    return {hw: make_test_image(*hw, seed=sum(hw)) for hw in SIZES}


@pytest.mark.parametrize("backend", ["onnxruntime", "torch", "tensorrt-fake"])
def test_preprocess_graph_equals_numpy(backend, runtime_onnx, runtime_model, tmp_path, images):
    runner = open_runners(backend, runtime_onnx, runtime_model, tmp_path)[C.PREPROCESS]
    for hw, image in images.items():
        got = runner.infer({C.PIXELS: image})[C.IMAGE]
        reference = T.preprocess_image(image)
        assert got.shape == reference.shape == (1, 3, 1024, 1024) and got.dtype == np.float32
        assert np.abs(got - reference).max() <= 1e-4, hw


@pytest.mark.parametrize("backend", ["onnxruntime", "torch", "tensorrt-fake"])
def test_predictions_through_the_graphs_equal_the_numpy_path(backend, runtime_onnx, runtime_model, tmp_path, images):
    runners = open_runners(backend, runtime_onnx, runtime_model, tmp_path)
    reference = Predictor(runners[C.ENCODER], runners[C.DECODER])
    graphs = Predictor(runners[C.ENCODER], runners[C.DECODER], runners[C.PREPROCESS], runners[C.POSTPROCESS])
    for (height, width), image in ((hw, images[hw]) for hw in ((17, 4000), (97, 131))):
        boxes = np.array([[0.1 * width, 0.1 * height, 0.6 * width, 0.7 * height],
                          [0.4 * width, 0.3 * height, 0.95 * width, 0.9 * height]], np.float32)
        prompts = T.build_prompts((height, width), boxes=boxes)
        for predictor in (reference, graphs):
            predictor.set_image(image)
        for multimask in (False, True):
            ref, got = (p.predict_prompts(prompts, multimask_output=multimask) for p in (reference, graphs))
            assert got.masks.shape == ref.masks.shape == (2, 3 if multimask else 1, height, width)
            assert got.masks.dtype == np.bool_
            ious = [mask_iou(a, b) for a, b in zip(ref.masks.reshape(-1, height, width), got.masks.reshape(-1, height, width))]
            assert min(ious) >= 0.999, (backend, (height, width), multimask, ious)
            assert np.allclose(got.scores, ref.scores, atol=1e-4)
            assert np.abs(got.low_res_logits - ref.low_res_logits).max() <= 1e-3
        (ref_masks, ref_scores), (got_masks, got_scores) = (p.predict_best(prompts) for p in (reference, graphs))
        assert min(mask_iou(a, b) for a, b in zip(ref_masks, got_masks)) >= 0.999
        assert np.allclose(got_scores, ref_scores, atol=1e-4)


def test_a_one_pixel_image_is_refused(runtime_onnx):
    with OnnxRuntimeRunner(runtime_onnx[C.ENCODER]) as enc, OnnxRuntimeRunner(runtime_onnx[C.DECODER]) as dec:
        with pytest.raises(NanoSam2Error, match="at least 2x2"):
            Predictor(enc, dec).set_image(np.zeros((1, 1, 3), np.uint8))


def test_graphs_of_another_export_are_refused(runtime_onnx, tmp_path):
    from nanosam2.utils.onnx_passes import read_metadata, save_checked, set_metadata, load_onnx

    contract = read_metadata(runtime_onnx[C.POSTPROCESS])
    contract.weights_sha256 = "0" * 64
    save_checked(set_metadata(load_onnx(runtime_onnx[C.POSTPROCESS]), contract), tmp_path / "postprocess.onnx")
    with OnnxRuntimeRunner(runtime_onnx[C.ENCODER]) as enc, OnnxRuntimeRunner(runtime_onnx[C.DECODER]) as dec, \
            OnnxRuntimeRunner(tmp_path / "postprocess.onnx") as post:
        with pytest.raises(NanoSam2Error, match="different weights"):
            Predictor(enc, dec, postprocess=post)
        with pytest.raises(NanoSam2Error, match="expected the preprocess"):
            Predictor(enc, dec, preprocess=post)


def test_predict_cli_with_the_graphs_writes_the_same_masks(runtime_onnx, tmp_path):
    from PIL import Image

    from nanosam2.utils.cli import run_cli
    from trt_runtime.cli import main

    base = ["predict", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
            "--image", "nanosam2/assets/grace_hopper.jpg", "--box", "120,60,400,420", "--multimask"]
    assert run_cli(main, [*base, "--output", str(tmp_path / "numpy")]) == 0
    assert run_cli(main, [*base, "--preprocess", str(runtime_onnx[C.PREPROCESS]), "--postprocess",
                          str(runtime_onnx[C.POSTPROCESS]), "--output", str(tmp_path / "graphs")]) == 0
    for plane in range(3):
        a, b = (np.asarray(Image.open(tmp_path / run / f"mask_0_{plane}.png")) > 0 for run in ("numpy", "graphs"))
        assert mask_iou(a, b) >= 0.999
    record = json.loads((tmp_path / "graphs" / "predict.json").read_text())
    assert set(record["model"]) == set(C.IMAGE_GRAPHS)


def test_only_pixels_prompts_and_masks_cross_the_bus(runtime_onnx, runtime_model, tmp_path):
    """The fake CUDA layer counts host<->device bytes: one set_image and N predictions move the
    image's uint8 bytes, the prompts, the masks and the scores - no features, no logits."""
    runners = open_runners("tensorrt-fake", runtime_onnx, runtime_model, tmp_path)
    cudart = runners[C.ENCODER].cuda.rt
    image = make_test_image(240, 320, seed=3)
    prompts = T.build_prompts((240, 320), boxes=np.array([[20, 30, 200, 180], [100, 60, 300, 230]], np.float32))
    feed = C.prompt_feed(prompts)
    prompt_bytes = sum(feed[name].nbytes for name in (C.POINT_COORDS, C.POINT_LABELS, C.HAS_MASK_INPUT))
    zero_masks = feed[C.MASK_INPUT].nbytes  # no mask prompt: one zero buffer, uploaded once, bound to every call
    moved = {}
    for name, predictor in (("numpy", Predictor(runners[C.ENCODER], runners[C.DECODER])),
                            ("device", Predictor(*(runners[g] for g in C.IMAGE_GRAPHS)))):
        cudart.transferred.update(htod=0, dtoh=0)
        predictor.set_image(image)
        results = []
        for index in range(3):  # the caller keeps masks and scores; a Prediction it drops leaves its logits unread
            last = predictor.predict_prompts(prompts, multimask_output=False)
            results.append((last.masks, last.scores))
            if index < 2:
                del last
        moved[name] = dict(cudart.transferred)
    masks_bytes = sum(masks.size for masks, _ in results)  # uint8 0/1 on the wire
    scores_bytes = sum(scores.nbytes for _, scores in results)
    plane_bytes = 8  # one int64 plane index per call
    print(f"bytes moved, set_image + 3 predictions: {moved}")
    assert moved["device"]["htod"] == image.nbytes + zero_masks + 3 * (prompt_bytes + plane_bytes)
    assert moved["device"]["dtoh"] == masks_bytes + scores_bytes
    # the numpy pre/post path uploads the float encoder input and downloads all four logit planes
    assert moved["numpy"]["htod"] >= 3 * 1024 * 1024 * 4 + 3 * prompt_bytes
    assert moved["numpy"]["dtoh"] >= 3 * 2 * 4 * 256 * 256 * 4
    assert last.low_res_logits.shape == (2, 1, 256, 256)  # downloaded on demand, after counting


def test_predictions_keep_their_own_logits_when_chunked_and_after_later_calls(runtime_onnx, runtime_model, tmp_path):
    """The decoder engine takes 8 prompts: 11 boxes run in two chunks through the decoder and postprocess
    engines, which reuse their output buffers (as TensorRT does). Each chunk's logits are its own (they
    were all the last chunk's: a view of the reused buffer), and a Prediction the caller holds keeps its
    logits after later calls rewrite the buffer (they are downloaded first)."""
    runners = open_runners("tensorrt-fake", runtime_onnx, runtime_model, tmp_path)
    image = make_test_image(240, 320, seed=5)
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 150, (11, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(40, 160, (11, 2))], axis=1).astype(np.float32)
    reference = Predictor(*(OnnxRuntimeRunner(runtime_onnx[g]) for g in C.IMAGE_GRAPHS))
    predictor = Predictor(*(runners[g] for g in C.IMAGE_GRAPHS))
    assert predictor.decoder.max_batch() == 8
    for each in (reference, predictor):
        each.set_image(image)
    want = reference.predict_prompts(reference.build_prompts(boxes=boxes)).low_res_logits
    chunked = predictor.predict_prompts(predictor.build_prompts(boxes=boxes))
    assert np.abs(chunked.low_res_logits - want).max() <= 1e-3
    held = predictor.predict_prompts(predictor.build_prompts(boxes=boxes[:3]))  # one chunk: logits left on the device
    later = predictor.predict_prompts(predictor.build_prompts(boxes=boxes[5:8]))  # rewrites the same buffer
    assert np.abs(held.low_res_logits - want[:3]).max() <= 1e-3
    assert np.abs(later.low_res_logits - want[5:8]).max() <= 1e-3
    predictor.close()
    reference.close()


def test_one_cuda_graph_for_set_image_and_one_for_predict(runtime_onnx, runtime_model, tmp_path):
    """With --cuda-graph, set_image (preprocess + encoder) and predict (decoder + postprocess) are
    captured once each on the shared stream and replayed for every later frame of the same size
    and prompt count; replays read the new frame's pixels (the answers follow the frame)."""
    runners = open_runners("tensorrt-fake", runtime_onnx, runtime_model, tmp_path, cuda_graph=True)
    stream, cudart = runners[C.ENCODER].engine_stream, runners[C.ENCODER].cuda.rt
    predictor = Predictor(*(runners[g] for g in C.IMAGE_GRAPHS))
    frames = [make_test_image(120, 160, seed=7), make_test_image(120, 160, seed=8), make_test_image(120, 160, seed=7)]
    prompts = T.build_prompts((120, 160), boxes=np.array([[10, 10, 90, 100], [60, 20, 150, 110]], np.float32))
    results, launches = [], []
    for frame in frames:
        before = cudart.graph_launches
        predictor.set_image(frame)
        results.append(predictor.predict_prompts(prompts, multimask_output=True))
        launches.append(cudart.graph_launches - before)
    assert stream.captures == 2 and launches == [0, 2, 2]  # captured on frame 0, one replay per stage after
    assert sorted(len(graph[1]) for graph in stream.graphs.values()) == [2, 2]  # each graph spans two engines
    assert np.array_equal(results[0].masks, results[2].masks) and np.array_equal(results[0].scores, results[2].scores)
    assert not np.array_equal(results[0].masks, results[1].masks)
    eager = Predictor(*(open_runners("onnxruntime", runtime_onnx, runtime_model, tmp_path)[g] for g in C.IMAGE_GRAPHS))
    eager.set_image(frames[1])
    reference = eager.predict_prompts(prompts, multimask_output=True)
    assert np.array_equal(reference.masks, results[1].masks) and np.allclose(reference.scores, results[1].scores)
    other = T.build_prompts((120, 160), boxes=np.array([[5, 5, 60, 60]], np.float32))  # a new prompt count: captured anew
    predictor.predict_prompts(other, multimask_output=True)
    assert stream.captures == 3
    for runner in runners.values():
        runner.close()
    assert stream.stream is None and not stream.graphs and not cudart.buffers  # the last engine closes the stream


@pytest.mark.gpu
def test_torch_cuda_device_path_matches_the_cpu_numpy_path(runtime_model):
    """On a GPU: features, pre- and post-processing on CUDA; masks as on the CPU reference."""
    import copy

    image = make_test_image(480, 640, seed=5)
    prompts = T.build_prompts((480, 640), boxes=np.array([[50, 60, 400, 420], [300, 100, 620, 470]], np.float32))
    cpu = Predictor(*(TorchRunner(model=runtime_model, graph=g, device="cpu") for g in (C.ENCODER, C.DECODER)))
    cpu.set_image(image)
    reference = cpu.predict_prompts(prompts, multimask_output=True)
    gpu_model = copy.deepcopy(runtime_model).to("cuda")
    gpu = Predictor(*(TorchRunner(model=gpu_model, graph=g, device="cuda") for g in C.IMAGE_GRAPHS))
    gpu.set_image(image)
    assert gpu.state is not None and all(v.device.startswith("cuda") for v in gpu.state.features.values())
    got = gpu.predict_prompts(prompts, multimask_output=True)
    planes = zip(reference.masks.reshape(-1, 480, 640), got.masks.reshape(-1, 480, 640))
    assert min(mask_iou(a, b) for a, b in planes) >= 0.99
