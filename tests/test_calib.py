"""calib/: reproducible SA-1B sampling with the runtime's exact preprocessing; Q/DQ graphs that
ONNX Runtime runs, in the form TensorRT needs, and close to FP32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from calib.int8_calibrator import make_entropy_calibrator
from calib.prepare import decoder_path, manifest_path, prepare
from calib.qdq import evaluate, load_feeds, quantize
from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cuda_api import CudaRuntime

from .fake_tensorrt import FakeCudart, FakeTensorRT, make_builder_module
from .sa1b_synthetic import make_sa1b

pytestmark = pytest.mark.xdist_group("runtime_onnx")


@pytest.fixture(scope="module")
def sa1b(tmp_path_factory):
    return make_sa1b(tmp_path_factory.mktemp("sa1b"))


def test_sampling_is_reproducible_and_bit_exact(sa1b, tmp_path):
    first = prepare(str(sa1b), tmp_path / "a.npy", count=5, seed=0, progress=False)
    again = prepare(str(sa1b), tmp_path / "b.npy", count=5, seed=0, progress=False)
    other = prepare(str(sa1b), tmp_path / "c.npy", count=5, seed=1, progress=False)
    assert first["images"] == again["images"] and first["images"] != other["images"]
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_array_equal(a, b)
    for index, file in enumerate(first["images"]):  # bit for bit the runtime's preprocessing
        np.testing.assert_array_equal(a[index], T.preprocess_image(np.array(Image.open(file).convert("RGB")))[0])
    assert json.loads(manifest_path(tmp_path / "a.npy").read_text())["images"] == first["images"]


def test_corrupt_jpeg_is_skipped_and_counted(sa1b, tmp_path):
    from calib.sa1b import find_images

    files = find_images(sa1b)
    corrupt = next(i for i, f in enumerate(files) if f.name == "sa_999.jpg")
    # a seed whose order meets the corrupt file before the 8th good one
    seed = next(s for s in range(100) if list(np.random.default_rng(s).permutation(len(files))).index(corrupt) < 8)
    manifest = prepare(str(sa1b), tmp_path / "all.npy", count=8, seed=seed, progress=False)
    assert [p.split("/")[-1] for p in manifest["skipped"]] == ["sa_999.jpg"]
    assert len(manifest["images"]) == 8 and not any("sa_999" in p for p in manifest["images"])


def test_chunk_selection_and_errors(sa1b, tmp_path):
    manifest = prepare(str(sa1b), tmp_path / "one.npy", count=2, chunks=["sa_000000"], progress=False)
    assert all("/sa_000000/" in p for p in manifest["images"])
    with pytest.raises(NanoSam2Error, match="chunk folder"):
        prepare(str(sa1b), tmp_path / "x.npy", count=1, chunks=["sa_123456"], progress=False)
    with pytest.raises(NanoSam2Error, match="only 8 readable images for -n 20"):
        prepare(str(sa1b), tmp_path / "y.npy", count=20, progress=False)
    assert not (tmp_path / "y.npy").exists() and not list(tmp_path.glob("*.partial"))


@pytest.fixture(scope="module")
def calibration(sa1b, runtime_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("calib") / "sa1_8.npy"
    prepare(str(sa1b), out, count=8, seed=0, encoder=str(runtime_onnx[C.ENCODER]), decoder_samples=3, progress=False)
    return out


def test_decoder_samples(calibration):
    data = np.load(decoder_path(calibration))
    assert data[C.IMAGE_EMBED].shape == (3, 1, 256, 64, 64) and data[C.POINT_COORDS].shape[:2] == (3, 4)
    labels = data[C.POINT_LABELS][0]
    np.testing.assert_array_equal(labels[:, :3], [[2, 3, -1], [2, 3, -1], [1, -1, -1], [1, -1, -1]])


def _zero_points(model):
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and len(n.input) > 2 and n.input[2] in inits]


def test_qdq_encoder_for_tensorrt(calibration, runtime_onnx, tmp_path):
    feeds = load_feeds(C.ENCODER, calibration)
    out = quantize(runtime_onnx[C.ENCODER], feeds[:6], tmp_path / "enc.int8.onnx", method="minmax", target="tensorrt")
    model = onnx.load(str(out))
    zero_points = _zero_points(model)
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert model.opset_import[0].version >= 13
    assert {n.op_type for n in model.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    cosine, iou = evaluate(runtime_onnx[C.ENCODER], out, feeds[6:], C.ENCODER, runtime_onnx[C.DECODER])
    print(f"INT8 (TensorRT form) vs FP32 on 2 held-out images: cosine {cosine}, mask IoU {iou:.4f}")
    assert iou >= 0.95 and min(cosine.values()) > 0.97


def test_qdq_for_cpu_uses_unsigned_activations(calibration, runtime_onnx, tmp_path):
    feeds = load_feeds(C.ENCODER, calibration)
    out = quantize(runtime_onnx[C.ENCODER], feeds[:2], tmp_path / "enc.cpu.onnx", method="minmax", target="cpu")
    dtypes = {z.dtype for z in _zero_points(onnx.load(str(out)))}
    assert np.dtype(np.uint8) in dtypes  # activations u8 (asymmetric), weights s8


def test_qdq_decoder_with_entropy(calibration, runtime_onnx, tmp_path):
    feeds = load_feeds(C.DECODER, calibration)
    out = quantize(runtime_onnx[C.DECODER], feeds[:2], tmp_path / "dec.int8.onnx", method="entropy")
    cosine, iou = evaluate(runtime_onnx[C.DECODER], out, feeds[2:], C.DECODER, None)
    print(f"INT8 decoder vs FP32: cosine {cosine}, mask IoU {iou:.4f}")
    assert cosine[C.LOW_RES_MASKS] > 0.99 and iou >= 0.95


def test_qdq_refuses_non_fp32_graphs(runtime_onnx, tmp_path):
    from nanosam2.utils.onnx_passes import read_metadata, save_checked, set_metadata

    contract = read_metadata(runtime_onnx[C.DECODER])
    contract.precision = "fp16"
    model = set_metadata(onnx.load(str(runtime_onnx[C.DECODER])), contract)
    save_checked(model, tmp_path / "fp16.onnx")
    with pytest.raises(NanoSam2Error, match="quantize the FP32 export"):
        quantize(tmp_path / "fp16.onnx", [], tmp_path / "x.onnx")


def test_entropy_calibrator_feeds_device_buffers(tmp_path):
    import ctypes

    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, "10.3.0")
    make_builder_module(trt)
    feeds = [{"image": np.full((1, 3, 4, 4), i, np.float32)} for i in range(2)]
    calibrator = make_entropy_calibrator(trt, feeds, tmp_path / "cache.bin", CudaRuntime(cudart))
    assert calibrator.read_calibration_cache() is None and calibrator.get_batch_size() == 1
    for expected in (0.0, 1.0):
        (pointer,) = calibrator.get_batch(["image"])
        values = np.frombuffer((ctypes.c_float * 48).from_address(pointer), np.float32)
        assert (values == expected).all()
    assert calibrator.get_batch(["image"]) is None
    calibrator.write_calibration_cache(b"scales")
    assert calibrator.read_calibration_cache() == b"scales"
    calibrator.release()


def test_prepare_cli_unwritable_output_is_one_line(sa1b, tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "calib.prepare", "--images", str(sa1b), "-n", "2",
                             "--out", str(blocker / "sub" / "x.npy")], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "is not writable" in errors[0]


def test_interrupted_prepare_leaves_no_data_without_manifest(sa1b, runtime_onnx, tmp_path, monkeypatch):
    import calib.prepare as prepare_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "write_decoder_samples", crash)
    out = tmp_path / "new" / "calib.npy"
    with pytest.raises(KeyboardInterrupt):
        prepare(str(sa1b), out, 3, encoder=str(runtime_onnx[C.ENCODER]), progress=False)
    assert not (tmp_path / "new").exists()  # no .npy without its manifest, no empty folder


def test_qdq_cli_publishes_the_graph_with_its_report(calibration, runtime_onnx, tmp_path):
    from calib.qdq import main as qdq_main, report_path

    out = tmp_path / "enc.int8.onnx"
    assert qdq_main(["--onnx", str(runtime_onnx[C.ENCODER]), "--calib", str(calibration), "--out", str(out),
                     "--method", "minmax", "--num-calib", "2", "--holdout", "1"]) == 0
    report = json.loads(report_path(out).read_text())
    assert report["graph"] == str(out) and report["calibration_samples"] == 2 and report["holdout_samples"] == 1
    assert 0.9 < report["mask_iou_vs_fp32"] <= 1.0 and set(report["cosine_vs_fp32"]) == set(C.ENCODER_OUTPUTS)
