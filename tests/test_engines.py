"""engines/: trtexec parsing, profiles from the graph, 10-vs-11 dispatch, and the CLI end to end
(the fake TensorRT builder emits engines that the fake runtime runs through ONNX Runtime)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from engines.build_engine import main as build_main
from engines.plan import BuildRequest, plan_build, read_onnx_info, resolve_profile
from engines.trtexec_args import parse_memory_pools, parse_shapes
from nanosam2 import contract as C
from nanosam2.records import engine_record_path
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import run_cli

from .fake_tensorrt import FakeCudart, FakeTensorRT, make_builder_module, read_engine_header

pytestmark = pytest.mark.xdist_group("runtime_onnx")


@pytest.mark.parametrize("text,expected", [
    ("point_coords:1x1x2,point_labels:1x1", {"point_coords": (1, 1, 2), "point_labels": (1, 1)}),
    ("image:1x3x1024x1024", {"image": (1, 3, 1024, 1024)}),
    ("'odd,name:x':2x3, has_mask_input:4", {"odd,name:x": (2, 3), "has_mask_input": (4,)}),
])
def test_parse_shapes_like_trtexec(text, expected):
    assert parse_shapes(text) == expected


@pytest.mark.parametrize("text", ["image", "image:1xx3", "image:1x-3", "a:1,a:2", "", "image:"])
def test_bad_shape_strings(text):
    with pytest.raises(NanoSam2Error) as info:
        parse_shapes(text, "minShapes")
    assert "--minShapes" in str(info.value)


def test_memory_pools():
    assert parse_memory_pools("workspace:4096M") == {"WORKSPACE": 4096 * 2**20}
    assert parse_memory_pools("workspace:4G,dlaSRAM:1M") == {"WORKSPACE": 4 * 2**30, "DLA_MANAGED_SRAM": 2**20}
    assert parse_memory_pools("workspace:1024") == {"WORKSPACE": 2**30}  # trtexec: no unit means MiB
    for bad in ("workspace", "gpu:1G", "workspace:1X"):
        with pytest.raises(NanoSam2Error):
            parse_memory_pools(bad)


def test_default_profiles_from_graph(runtime_onnx):
    decoder = resolve_profile(read_onnx_info(runtime_onnx[C.DECODER]), BuildRequest())
    assert decoder[C.POINT_COORDS] == ((1, 1, 2), (1, 3, 2), (64, 16, 2))
    assert decoder[C.POINT_LABELS] == ((1, 1), (1, 3), (64, 16))
    assert decoder[C.MASK_INPUT] == ((1, 1, 256, 256), (1, 1, 256, 256), (64, 1, 256, 256))
    assert decoder[C.IMAGE_EMBED] == ((1, 256, 64, 64),) * 3
    encoder = resolve_profile(read_onnx_info(runtime_onnx[C.ENCODER]), BuildRequest(max_shapes={C.IMAGE: (4, 3, 1024, 1024)}))
    assert encoder[C.IMAGE] == ((1, 3, 1024, 1024), (1, 3, 1024, 1024), (4, 3, 1024, 1024))


@pytest.mark.parametrize("request_,message", [
    (BuildRequest(min_shapes={"points": (1, 1, 2)}), "points not an input"),
    (BuildRequest(min_shapes={C.POINT_COORDS: (8, 1, 2)}, max_shapes={C.POINT_COORDS: (4, 4, 2)}), "min <= opt <= max"),
    (BuildRequest(max_shapes={C.IMAGE_EMBED: (1, 256, 32, 32)}), "fixed to 64"),
    (BuildRequest(max_shapes={C.POINT_LABELS: (4, 4, 4)}), "rank 2"),
])
def test_profile_errors(runtime_onnx, request_, message):
    with pytest.raises(NanoSam2Error, match=message):
        resolve_profile(read_onnx_info(runtime_onnx[C.DECODER]), request_)


@pytest.fixture(scope="module")
def graphs(runtime_onnx, tmp_path_factory):
    """The FP32 encoder, and a tiny Q/DQ copy of it (a QuantizeLinear/DequantizeLinear pair is all
    the plan looks for)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(runtime_onnx[C.ENCODER]))
    model.graph.node.extend([helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"]),
                             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])])
    qdq = tmp_path_factory.mktemp("qdq") / "image_encoder.int8.onnx"
    onnx.save(model, qdq)
    return {"fp32": read_onnx_info(runtime_onnx[C.ENCODER]), "qdq": read_onnx_info(qdq)}


DISPATCH = [
    # version, graph, request, strongly typed, flags, convert to FP16, calibrator, precision
    ("10.3.0", "fp32", BuildRequest(), False, [], False, False, "fp32"),
    ("10.3.0", "fp32", BuildRequest(fp16=True), False, ["FP16"], False, False, "fp16"),
    ("10.3.0", "fp32", BuildRequest(int8=True, calib_cache="c.cache"), False, ["INT8"], False, True, "int8"),
    ("10.3.0", "fp32", BuildRequest(best=True, calib_data="x.npy"), False, ["FP16", "INT8"], False, True, "int8"),
    ("10.3.0", "qdq", BuildRequest(int8=True, fp16=True), True, [], False, False, "int8"),
    ("11.4.1", "fp32", BuildRequest(), True, [], False, False, "fp32"),
    ("11.4.1", "fp32", BuildRequest(fp16=True), True, [], True, False, "fp16"),
    ("11.4.1", "qdq", BuildRequest(int8=True), True, [], False, False, "int8"),
    ("11.4.1", "qdq", BuildRequest(fp16=True), True, [], False, False, "int8"),  # a Q/DQ graph is never converted
    ("11.4.1", "fp32", BuildRequest(best=True), True, [], True, False, "fp16"),
    ("11.4.1", "fp32", BuildRequest(dla_core=0, allow_gpu_fallback=True, version_compatible=True), True,
     ["GPU_FALLBACK", "VERSION_COMPATIBLE"], False, False, "fp32"),
]


@pytest.mark.parametrize("version,graph,request_,typed,flags,convert,calibrate,precision", DISPATCH)
def test_version_dispatch(graphs, version, graph, request_, typed, flags, convert, calibrate, precision):
    plan = plan_build(graphs[graph], request_, version)
    assert (plan.strongly_typed, plan.builder_flags, plan.convert_to_fp16, plan.use_calibrator, plan.precision) == \
        (typed, flags, convert, calibrate, precision)


@pytest.mark.parametrize("version,flavour", [("10.3.0", "tensorrt"), ("11.4.1", "tensorrt"), ("1.7.1.116", "rtx")])
def test_every_api_says_what_it_did_with_precision_flags(graphs, version, flavour):
    """TensorRT 11 and TensorRT-RTX plans said nothing where TensorRT 10's spoke: --fp16 on a Q/DQ graph
    (ignored: strongly typed) and --best without one (no INT8)."""
    qdq = plan_build(graphs["qdq"], BuildRequest(fp16=True), version, flavour)
    assert "--fp16 ignored: strongly typed networks take no precision flags" in qdq.notes
    if not version.startswith("10"):  # (TensorRT 10: --best without a Q/DQ graph calibrates, or is refused)
        best = plan_build(graphs["fp32"], BuildRequest(best=True), version, flavour)
        assert any(note.startswith("--best: no INT8") for note in best.notes) and best.precision == "fp16"


@pytest.mark.parametrize("version,graph,request_,message", [
    ("11.4.1", "fp32", BuildRequest(int8=True), "needs a Q/DQ graph"),
    ("11.4.1", "qdq", BuildRequest(int8=True, calib_cache="c.cache"), "removed implicit INT8 calibration"),
    ("10.3.0", "fp32", BuildRequest(int8=True), "needs calibration"),
    ("8.6.1", "fp32", BuildRequest(), "too old"),
])
def test_dispatch_errors_name_the_fix(graphs, version, graph, request_, message):
    with pytest.raises(NanoSam2Error, match=message):
        plan_build(graphs[graph], request_, version)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "engines/build_engine.py", *args], capture_output=True, text=True)


@pytest.mark.parametrize("extra,message", [
    (["--minShapes=point_coords:1xx2"], "--minShapes: bad dimensions"),
    (["--maxShapes=nope:1x1"], "nope not an input"),
    (["--minShapes=point_coords:9x1x2", "--maxShapes=point_coords:4x1x2"], "min <= opt <= max"),
    (["--trt-flavour=tensorrt"], "TensorRT is not installed"),
    (["--computeCapabilities=8.x"], "not a compute capability"),
])
def test_cli_errors_before_any_build(runtime_onnx, tmp_path, extra, message):
    engine = tmp_path / "decoder.engine"
    result = cli(f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={engine}", *extra)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert not list(tmp_path.iterdir())


@pytest.fixture(params=["10.3.0", "11.4.1"])
def fake_trt(request, monkeypatch):
    from engines import build_engine
    from nanosam2.utils import cuda_api
    from nanosam2.inference import engine_stream, tensorrt_runner

    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, request.param)
    make_builder_module(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_api, "open_cuda", lambda prefer=None: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(tensorrt_runner, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(engine_stream, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    assert build_engine  # imported for the monkeypatch above to apply to its lazy import
    return trt


def test_build_then_predict_end_to_end(runtime_onnx, tmp_path, fake_trt, capsys):
    from trt_runtime.cli import main as runtime_main

    encoder, decoder = tmp_path / "enc.engine", tmp_path / "dec.engine"
    assert run_cli(build_main, [f"--onnx={runtime_onnx[C.ENCODER]}", f"--saveEngine={encoder}", "--fp16",
                                "--memPoolSize=workspace:2G", f"--timingCacheFile={tmp_path / 'timing.cache'}",
                                "--builderOptimizationLevel=4"]) == 0
    assert run_cli(build_main, [f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={decoder}",
                                "--maxShapes=point_coords:8x4x2,point_labels:8x4,mask_input:8x1x256x256,has_mask_input:8"]) == 0
    record = json.loads(engine_record_path(encoder).read_text())
    assert record["precision"] == "fp16" and record["tensorrt_version"] == fake_trt.__version__
    assert json.loads(record[C.METADATA_KEY])["graph"] == C.ENCODER and len(record["onnx_sha256"]) == 64
    assert record["engine_sha256"] == hashlib.sha256(encoder.read_bytes()).hexdigest()
    first = fake_trt._builds[0]
    assert first["pools"] == {"WORKSPACE": 2 * 2**30} and first["level"] == 4
    if fake_trt.__version__.startswith("10"):
        assert first["flags"] == ["FP16"] and first["network_flags"] == 0
    else:  # TensorRT 11: no flag; the FP16 graph was made from the FP32 one
        assert first["flags"] == [] and read_engine_header(encoder.read_bytes())["onnx_name"].endswith(".fp16.onnx")
    assert (tmp_path / "timing.cache").read_bytes() == b"+"
    assert not list(tmp_path.glob("*.partial"))
    assert run_cli(runtime_main, ["predict", "--encoder", str(encoder), "--decoder", str(decoder),
                                  "--image", "nanosam2/assets/grace_hopper.jpg", "--box", "120,60,400,420",
                                  "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "overlay.png").is_file()


def test_implicit_int8_calibration_writes_and_reuses_cache(runtime_onnx, tmp_path, fake_trt):
    if not fake_trt.__version__.startswith("10"):
        pytest.skip("implicit calibration exists only up to TensorRT 10")
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).standard_normal((3, 3, 1024, 1024)).astype(np.float32))
    cache = tmp_path / "enc.calib"
    args = [f"--onnx={runtime_onnx[C.ENCODER]}", f"--saveEngine={tmp_path / 'enc.engine'}", "--int8",
            f"--calib-data={data}", f"--calib={cache}"]
    assert run_cli(build_main, args) == 0
    assert cache.read_bytes() == b"fake cache: 3 batches"
    assert run_cli(build_main, args) == 0  # second build reads the cache, asks for no batch
    assert cache.read_bytes() == b"fake cache: 3 batches" and fake_trt._builds[-1]["flags"] == ["INT8"]


@pytest.fixture
def fake_rtx(monkeypatch):
    """A fake TensorRT-RTX (module ``tensorrt_rtx``) whose "GPU" is an SM89 (Ada) card."""
    from nanosam2.utils import cuda_api
    from nanosam2.inference import engine_stream, tensorrt_runner

    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, "1.7.1.116", flavour="rtx", gpu_compute_capability="SM89")
    make_builder_module(trt)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", trt)
    monkeypatch.setattr(tensorrt_runner, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(engine_stream, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    return trt


def test_rtx_engines_run_with_a_runtime_cache(runtime_onnx, tmp_path, fake_rtx, caplog):
    """Build for the default targets and for named ones; predict with a runtime cache: the first run
    writes it, the second takes it, a corrupt one is said and replaced; an engine built for another
    GPU family is one line from the validity check, before any GPU work."""
    from trt_runtime.cli import main as runtime_main

    encoder, decoder, cache = tmp_path / "enc.engine", tmp_path / "dec.engine", tmp_path / "kernels.cache"
    for onnx_path, engine, extra in ((runtime_onnx[C.ENCODER], encoder, ["--fp16", "--computeCapabilities=8.6,8.9"]),
                                     (runtime_onnx[C.DECODER], decoder, [])):
        assert run_cli(build_main, [f"--onnx={onnx_path}", f"--saveEngine={engine}", "--trt-flavour=rtx", *extra]) == 0
    record = json.loads(engine_record_path(encoder).read_text())
    assert (record["tensorrt_flavour"], record["compute_capabilities"], record["gpu"]) == ("rtx", ["SM86", "SM89"], None)
    assert fake_rtx._builds[0]["flags"] == [] and fake_rtx._builds[0]["targets"] == ["SM86", "SM89"]
    assert json.loads(engine_record_path(decoder).read_text())["compute_capabilities"] == "default"
    args = ["predict", "--encoder", str(encoder), "--decoder", str(decoder), "--image", "nanosam2/assets/grace_hopper.jpg",
            "--box", "120,60,400,420", "--output", str(tmp_path / "out"), "--runtime-cache", str(cache)]
    assert run_cli(runtime_main, args) == 0
    assert sorted(json.loads(cache.read_bytes())) == sorted([read_engine_header(encoder.read_bytes())["onnx_name"],
                                                            read_engine_header(decoder.read_bytes())["onnx_name"]])
    first = cache.read_bytes()
    assert run_cli(runtime_main, [*args[:-4], "--output", str(tmp_path / "out2"), *args[-2:]]) == 0
    assert cache.read_bytes() == first and not list(tmp_path.glob("*.partial"))
    cache.write_bytes(b"\x00 not a cache")
    with caplog.at_level("WARNING"):
        assert run_cli(runtime_main, [*args[:-4], "--output", str(tmp_path / "out3"), *args[-2:]]) == 0
    assert "compiled again and the file is replaced" in caplog.text and cache.read_bytes() == first
    fake_rtx._gpu = "SM120"  # the same engines on a Blackwell card: the encoder was built for 8.6 and 8.9 only
    assert run_cli(runtime_main, [*args[:-4], "--output", str(tmp_path / "out4")]) == 2


def test_rtx_refusals_are_one_line(runtime_onnx, tmp_path, fake_rtx, capsys):
    from trt_runtime.cli import main as runtime_main

    encoder = tmp_path / "enc.engine"
    assert run_cli(build_main, [f"--onnx={runtime_onnx[C.ENCODER]}", f"--saveEngine={encoder}", "--trt-flavour=rtx",
                                "--computeCapabilities=8.6"]) == 0
    fake_rtx._gpu = "SM120"
    base = ["predict", "--encoder", str(encoder), "--decoder", str(encoder), "--image", "nanosam2/assets/grace_hopper.jpg",
            "--point", "10,10", "--output", str(tmp_path / "out")]
    assert run_cli(runtime_main, base) == 2
    assert "enc.engine cannot run here (unsupported cc): rebuild it" in capsys.readouterr().err
    record = json.loads(engine_record_path(encoder).read_text())  # the record says TensorRT 10 built it
    engine_record_path(encoder).write_text(json.dumps({**record, "tensorrt_flavour": "tensorrt",
                                                          "tensorrt_version": "10.3.0"}))
    assert run_cli(runtime_main, base) == 2
    assert "built by TensorRT 10.3.0; this runner uses TensorRT-RTX 1.7.1.116: run it with --trt-flavour tensorrt" \
        in capsys.readouterr().err
    for flags, message in ((["--timingCacheFile=t.cache"], "has no timing cache"),
                           (["--useDLACore=0"], "has no DLA"), (["--calib=c.cache", "--int8"], "no implicit INT8")):
        assert run_cli(build_main, [f"--onnx={runtime_onnx[C.ENCODER]}", f"--saveEngine={tmp_path / 'x.engine'}",
                                    "--trt-flavour=rtx", *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.engine").exists() and not (tmp_path / "out").exists()


def test_runtime_cache_needs_rtx(runtime_onnx, tmp_path, fake_trt, capsys):
    from trt_runtime.cli import main as runtime_main

    engine = tmp_path / "dec.engine"
    assert run_cli(build_main, [f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={engine}"]) == 0
    assert run_cli(build_main, [f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={tmp_path / 'x.engine'}",
                                "--computeCapabilities=8.6"]) == 2
    assert "--computeCapabilities is a TensorRT-RTX option" in capsys.readouterr().err
    assert run_cli(runtime_main, ["predict", "--encoder", str(engine), "--decoder", str(engine), "--image",
                                  "nanosam2/assets/grace_hopper.jpg", "--point", "10,10", "--output", str(tmp_path / "o"),
                                  "--runtime-cache", str(tmp_path / "k.cache")]) == 2
    assert "--runtime-cache is a TensorRT-RTX option" in capsys.readouterr().err


def test_an_engine_is_replaced_only_when_its_record_holds_its_hash(runtime_onnx, tmp_path, fake_trt, capsys):
    """A record alone proves nothing: a user's file put where our engine was is kept (issue 32)."""
    engine = tmp_path / "dec.engine"
    build = [f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={engine}"]
    assert run_cli(build_main, build) == 0
    assert run_cli(build_main, build) == 0  # our own engine, by its hash: replaced
    engine.write_bytes(b"the user's own engine, built with trtexec")
    assert run_cli(build_main, build) == 2
    assert "no record says `build_engine` wrote it" in capsys.readouterr().err
    assert engine.read_bytes() == b"the user's own engine, built with trtexec"
    for flag, says in (("--saveEngine=" + str(tmp_path / "x.onnx"), "an engine file ends in .engine, .plan, .trt"),
                       ("--computeCapabilities=", "--computeCapabilities is empty"),
                       ("--timingCacheFile=", "--timingCacheFile is empty")):
        assert run_cli(build_main, [f"--onnx={runtime_onnx[C.DECODER]}", f"--saveEngine={tmp_path / 'y.engine'}",
                                    flag]) == 2
        assert says in capsys.readouterr().err
