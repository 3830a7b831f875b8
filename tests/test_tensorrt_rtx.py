"""Real engines from NVIDIA's own builder: TensorRT-RTX builds without a GPU (CPU-only ahead-of-time
build), so every graph of resnet18 and hiera_t is built here at FP32 and FP16, the Q/DQ INT8 graphs too,
with the default profiles and with user profiles at their edges, through the library function
``engines.build_engine.build_engine``. Running the engines needs a GPU (``scripts/gpu_check.sh``).

TensorRT-RTX is part of the ``dev`` extra that CI installs: there a missing one fails, elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from engines.build_engine import build_engine
from engines.builder import BuilderOptions
from engines.plan import BuildRequest, read_onnx_info, resolve_profile
from nanosam2 import contract as C
from nanosam2.records import engine_record_path
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.tensorrt_flavour import RTX, import_tensorrt

from .conftest import export_once, made_once

pytestmark = pytest.mark.xdist_group("hiera_t")  # with test_export_fidelity: one export of hiera_t, on one worker
SIZE = 512  # resnet18's graphs (the 512-px video export the tracker tests share); hiera_t's image graphs: 1024
RTX_OPTIONS = BuilderOptions(flavour=RTX)
BUILT: list[tuple[str, str, str, float, float]] = []  # (model, graph, precision, MB, s): printed for the record


@pytest.fixture(scope="module")
def rtx():
    try:
        return import_tensorrt(RTX)
    except NanoSam2Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build real engines: {exc}")
        pytest.skip(str(exc))


def _hiera_t_graphs(tmp_path_factory) -> dict:
    """hiera_t's image graphs are the fidelity tests' 1024-px export (made once per session, shared);
    its two video graphs are exported here alone (the encoder's export and PyTorch check, which the
    fidelity and tracker tests do, would double this module's time)."""
    import torch

    from export.examples import graph_inputs
    from export.exporter import export_graph, export_model
    from nanosam2.build import build_teacher
    from nanosam2.modeling.predictor_graphs import ImageEncoderGraph, build_graph_module, graph_contract

    from .conftest import with_trained_logit_scale
    from .test_video import video_model

    def image_export(folder):  # what test_export_fidelity exports under the same key
        torch.manual_seed(0)
        model = with_trained_logit_scale(build_teacher("hiera_t", None, device="cpu"))
        return export_model(model, "hiera_t", folder, precision="fp32", video=False)

    graphs = export_once(tmp_path_factory, "hiera_t-fp32", image_export)

    def video_export(folder):
        model = video_model("hiera_t", SIZE).eval()
        with torch.no_grad():
            embed = ImageEncoderGraph(model)(torch.zeros(1, 3, SIZE, SIZE))[0]
        for name in C.VIDEO_GRAPHS:
            export_graph(name, build_graph_module(name, model).eval(), graph_inputs(name, model, (embed,)),
                         folder / f"{name}.onnx", graph_contract(name, model, "hiera_t"), C.DEFAULT_OPSET, "fp32", True)

    folder = made_once(tmp_path_factory, "hiera_t-video-graphs", video_export)
    return {**graphs, **{name: folder / f"{name}.onnx" for name in C.VIDEO_GRAPHS}}


@pytest.fixture(scope="module")
def exports(rtx, tmp_path_factory):
    """Every graph of resnet18 (the tracker tests' 512-px export) and of hiera_t, FP32."""
    from export.exporter import export_model

    from .test_video import video_model

    resnet18 = export_once(tmp_path_factory, "onnx-video-512",
                           lambda folder: export_model(video_model("resnet18", SIZE), "resnet18", folder))
    return {"resnet18": resnet18, "hiera_t": _hiera_t_graphs(tmp_path_factory)}


@pytest.fixture(scope="module")
def qdq_graphs(exports, tmp_path_factory):
    """Q/DQ INT8 encoder and decoder of resnet18 (calib.qdq, TensorRT form, calibrated on random data)."""
    from calib.qdq import quantize
    from nanosam2.inference.factory import open_runner

    graphs = exports["resnet18"]
    gen = np.random.default_rng(0)
    images = [{C.IMAGE: gen.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)} for _ in range(2)]

    def make(folder):
        with open_runner(graphs[C.ENCODER]) as encoder:
            features = encoder.infer(images[0])
        prompts = {C.POINT_COORDS: gen.uniform(0, SIZE, (1, 2, 2)).astype(np.float32),
                   C.POINT_LABELS: np.array([[1, 0]], np.float32),
                   C.MASK_INPUT: np.zeros((1, 1, SIZE // 4, SIZE // 4), np.float32),
                   C.HAS_MASK_INPUT: np.zeros(1, np.float32)}
        quantize(graphs[C.ENCODER], images, folder / "image_encoder.int8.onnx", method="minmax")
        quantize(graphs[C.DECODER], [{**features, **prompts}], folder / "mask_decoder.int8.onnx", method="minmax")

    folder = made_once(tmp_path_factory, "qdq-512", make)
    return {C.ENCODER: folder / "image_encoder.int8.onnx", C.DECODER: folder / "mask_decoder.int8.onnx"}


def _build(onnx_path, engine, request: BuildRequest, model: str, graph: str) -> dict:
    start = time.perf_counter()
    record = build_engine(onnx_path, engine, request, RTX_OPTIONS)
    BUILT.append((model, graph, record["precision"], engine.stat().st_size / 1e6, time.perf_counter() - start))
    print(f"| {model} | {graph} | {record['precision']} | built | {engine.stat().st_size / 1e6:.1f} MB | "
          f"{time.perf_counter() - start:.1f} s |")
    return record


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", ["resnet18", "hiera_t"])
def test_every_graph_builds(exports, rtx, tmp_path, model, precision):
    """All six graphs parse and build; the record names the flavour, version, targets and precision,
    and the precision policy keeps pre/post-processing and the memory encoder FP32."""
    for graph, onnx_path in exports[model].items():
        engine = tmp_path / f"{graph}.{precision}.engine"
        record = _build(onnx_path, engine, BuildRequest(fp16=precision == "fp16"), model, graph)
        assert engine.stat().st_size > 10_000
        want = "fp32" if graph in C.FP32_GRAPHS else precision
        assert (record["tensorrt_flavour"], record["tensorrt_version"], record["precision"]) == (RTX, rtx.version, want)
        assert record["compute_capabilities"] == "default" and record["strongly_typed"]
        assert json.loads(record[C.METADATA_KEY])["graph"] == graph
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("graph", [C.ENCODER, C.DECODER])
def test_qdq_int8_graphs_build(qdq_graphs, rtx, tmp_path, graph):
    engine = tmp_path / f"{graph}.int8.engine"
    record = _build(qdq_graphs[graph], engine, BuildRequest(int8=True), "resnet18", f"{graph} (Q/DQ)")
    assert record["precision"] == "int8" and record["tensorrt_flavour"] == RTX


# user profiles at the edges of what each graph takes: 1 prompt, the most prompts and points,
# an empty pointer bank, the largest bank (16 prompted frames); image sizes at the preprocess graph's extremes
EDGES = {
    C.DECODER: ({C.POINT_COORDS: (1, 1, 2), C.POINT_LABELS: (1, 1), C.MASK_INPUT: (1, 1, SIZE // 4, SIZE // 4),
                 C.HAS_MASK_INPUT: (1,)},
                {C.POINT_COORDS: (C.EXPORT_MAX_PROMPTS, C.EXPORT_MAX_POINTS, 2),
                 C.POINT_LABELS: (C.EXPORT_MAX_PROMPTS, C.EXPORT_MAX_POINTS),
                 C.MASK_INPUT: (C.EXPORT_MAX_PROMPTS, 1, SIZE // 4, SIZE // 4), C.HAS_MASK_INPUT: (C.EXPORT_MAX_PROMPTS,)}),
    C.MEMORY_ATTENTION: ({C.OBJECT_POINTERS: (0, 256), C.OBJECT_POINTER_OFFSETS: (0,), C.OBJECT_POINTER_PRESENT: (0,),
                          C.MASKMEM_FEATURES: (1, 64, SIZE // 16, SIZE // 16), C.MASKMEM_TPOS_INDEX: (1,)},
                         {C.OBJECT_POINTERS: (C.EXPORT_MAX_POINTERS, 256), C.OBJECT_POINTER_OFFSETS: (C.EXPORT_MAX_POINTERS,),
                          C.OBJECT_POINTER_PRESENT: (C.EXPORT_MAX_POINTERS,),
                          C.MASKMEM_FEATURES: (C.EXPORT_MAX_MEMORIES, 64, SIZE // 16, SIZE // 16),
                          C.MASKMEM_TPOS_INDEX: (C.EXPORT_MAX_MEMORIES,)}),
    C.PREPROCESS: ({C.PIXELS: (2, 2, 3)}, {C.PIXELS: (4096, 4096, 3)}),
    C.POSTPROCESS: ({C.LOW_RES_MASKS: (1, 4, SIZE // 4, SIZE // 4), C.IOU_PREDICTIONS: (1, 4), C.PIXELS: (2, 2, 3),
                     C.MASK_PLANES: (1,)},
                    {C.LOW_RES_MASKS: (C.EXPORT_MAX_PROMPTS, 4, SIZE // 4, SIZE // 4),
                     C.IOU_PREDICTIONS: (C.EXPORT_MAX_PROMPTS, 4), C.PIXELS: (4096, 4096, 3), C.MASK_PLANES: (5,)}),
}


@pytest.mark.parametrize("graph", list(EDGES))
def test_user_profiles_at_the_edges(exports, rtx, tmp_path, graph):
    """min (and opt) at the smallest case, max at the largest: the engine's profile is exactly what was asked."""
    lo, hi = EDGES[graph]
    onnx_path = exports["resnet18"][graph]
    opt = {name: (max(shape[0], 1), *shape[1:]) for name, shape in lo.items()}  # opt >= 1: an empty bank is the edge
    request = BuildRequest(min_shapes=lo, opt_shapes=opt, max_shapes=hi)
    profile = resolve_profile(read_onnx_info(onnx_path), request)
    for name in lo:
        assert profile[name][0] == lo[name] and profile[name][2] == hi[name]
    record = _build(onnx_path, tmp_path / f"{graph}.edges.engine", request, "resnet18", f"{graph} (edge profile)")
    assert {n: tuple(record["profile"][n]["max"]) for n in hi} == hi
    assert {n: tuple(record["profile"][n]["min"]) for n in lo} == lo


def test_compute_capabilities_are_recorded(exports, rtx, tmp_path):
    engine = tmp_path / "decoder.engine"
    record = build_engine(exports["resnet18"][C.MEMORY_ENCODER], engine,
                          BuildRequest(compute_capabilities=("8.6", "12.0")), RTX_OPTIONS)
    assert record["compute_capabilities"] == ["SM86", "SM120"]
    with pytest.raises(NanoSam2Error, match="cannot build for SM61; it offers SM75"):
        build_engine(exports["resnet18"][C.MEMORY_ENCODER], tmp_path / "old.engine",
                     BuildRequest(compute_capabilities=("6.1",)), RTX_OPTIONS)
    assert not (tmp_path / "old.engine").exists()


@pytest.mark.parametrize("request_,message", [
    (BuildRequest(timing_cache=True), "has no timing cache"),
    (BuildRequest(dla_core=0), "has no DLA"),
    (BuildRequest(version_compatible=True), "run only with the TensorRT-RTX release"),
    (BuildRequest(int8=True), "needs a Q/DQ graph"),
    (BuildRequest(calib_cache="enc.cache"), "TensorRT-RTX has no implicit INT8 calibration"),
])
def test_what_rtx_cannot_honour_is_refused(exports, rtx, tmp_path, request_, message):
    with pytest.raises(NanoSam2Error, match=message):
        build_engine(exports["resnet18"][C.ENCODER], tmp_path / "e.engine", request_, RTX_OPTIONS)
    assert not list(tmp_path.iterdir())


def test_parser_rejection_is_one_line_naming_the_node(rtx, tmp_path):
    """A graph the real parser refuses (here: a Gather on uint8, what our pre/post-processing graphs
    did before) is one error naming the node, its op and TensorRT's reason; nothing is written."""
    import onnx
    from onnx import TensorProto, helper

    from nanosam2.utils.onnx_passes import tensorrt_type_violations

    graph = helper.make_graph(
        [helper.make_node("Gather", ["pixels", "index"], ["row"], name="row_of_pixels", axis=0),
         helper.make_node("Cast", ["row"], ["out"], to=TensorProto.FLOAT)], "bad",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, [4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4])],
        [helper.make_tensor("index", TensorProto.INT64, [], [1])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    assert tensorrt_type_violations(onnx.load(path))[0].startswith("node row_of_pixels (Gather) takes uint8")
    with pytest.raises(NanoSam2Error) as info:
        build_engine(path, tmp_path / "bad.engine", BuildRequest(), RTX_OPTIONS)
    text = str(info.value)
    assert "\n" not in text and "node row_of_pixels (Gather)" in text and "UINT8" in text, text
    assert not (tmp_path / "bad.engine").exists()


def test_real_rtx_runner_refuses_what_it_cannot_run(exports, rtx, tmp_path):
    """The runner's checks before any GPU work, with the real TensorRT-RTX runtime: a malformed engine
    is one line from its validity check; an engine of another flavour is refused by its record."""
    from nanosam2.utils.cuda_api import CudaRuntime
    from nanosam2.inference.tensorrt_runner import TensorRTRunner

    from .fake_tensorrt import FakeCudart

    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\x01" * 4096)
    with pytest.raises(NanoSam2Error, match="bad.engine cannot run here \\(malformed engine"):
        TensorRTRunner(bad, flavour=RTX, cuda=CudaRuntime(FakeCudart()))
    engine = tmp_path / "memory_encoder.engine"
    build_engine(exports["resnet18"][C.MEMORY_ENCODER], engine, BuildRequest(), RTX_OPTIONS)
    record = json.loads(engine_record_path(engine).read_text())
    engine_record_path(engine).write_text(json.dumps({**record, "tensorrt_flavour": "tensorrt",
                                                         "tensorrt_version": "10.3.0"}))
    with pytest.raises(NanoSam2Error, match="built by TensorRT 10.3.0; this runner uses TensorRT-RTX"):
        TensorRTRunner(engine, flavour=RTX, cuda=CudaRuntime(FakeCudart()))
