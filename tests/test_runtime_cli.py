"""`python -m trt_runtime ...` end to end on CPU, and bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nanosam2 import contract as C
from nanosam2.utils.cli import run_cli
from trt_runtime.cli import main as cli_main

from .coco_synthetic import make_coco
from .test_torch_free import BLOCK_HEAVY

pytestmark = pytest.mark.xdist_group("runtime_onnx")
SAMPLE = "nanosam2/assets/grace_hopper.jpg"


def runtime(*args: str, block_torch: bool = False) -> subprocess.CompletedProcess:
    if block_torch:  # a Jetson-like environment: numpy, pillow and the inference engine only
        code = BLOCK_HEAVY.replace("'onnxruntime', ", "") + "from nanosam2.utils.cli import run_cli\n" \
            "from trt_runtime.cli import main\nraise SystemExit(run_cli(main, sys.argv[1:]))"
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    return subprocess.run([sys.executable, "-m", "trt_runtime", *args], capture_output=True, text=True)


def one_error(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    return errors[0]


def test_predict_with_onnx_without_torch(runtime_onnx, tmp_path):
    result = runtime("predict", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
                     "--image", SAMPLE, "--point", "250,200", "--box", "120,60,400,420", "--box", "10,300,300,590",
                     "--multimask", "--output", str(tmp_path), block_torch=True)
    assert result.returncode == 0, result.stderr
    assert "timings (ms" in result.stdout and "encoder" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("mask_*.png")) == [f"mask_{p}_{c}.png" for p in range(2) for c in range(3)]
    assert Image.open(tmp_path / "overlay.png").size == (512, 600)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "mask_0_0.png")))) <= {0, 255}


@pytest.mark.parametrize("args,message", [
    (["--image", "missing.jpg", "--point", "1,1"], "no such image: missing.jpg"),
    (["--image", SAMPLE, "--point", "600,10"], "point (600, 10) is outside the 512x600 image"),
    (["--image", SAMPLE], "give at least one --point or --box"),
])
def test_predict_bad_input(runtime_onnx, tmp_path, args, message):
    result = runtime("predict", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
                     "--output", str(tmp_path), *args)
    assert one_error(result) == f"error: {message}"


def test_malformed_point(runtime_onnx, tmp_path):
    result = runtime("predict", "--encoder", "e.onnx", "--decoder", "d.onnx", "--image", SAMPLE, "--point", "12",
                     "--output", str(tmp_path))
    assert result.returncode == 2 and "malformed point '12'" in result.stderr


def test_swapped_graphs(runtime_onnx, tmp_path):
    result = runtime("predict", "--encoder", str(runtime_onnx[C.DECODER]), "--decoder", str(runtime_onnx[C.DECODER]),
                     "--image", SAMPLE, "--point", "10,10", "--output", str(tmp_path))
    assert "is the mask_decoder graph, expected the image_encoder graph" in one_error(result)


def test_onnx_that_is_not_ours(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    result = runtime("predict", "--encoder", str(tmp_path / "other.onnx"), "--decoder", str(tmp_path / "other.onnx"),
                     "--image", SAMPLE, "--point", "10,10", "--output", str(tmp_path))
    assert "carries no nanosam2 metadata" in one_error(result)


@pytest.mark.parametrize("flavour", ["tensorrt", "rtx"])
def test_engine_without_tensorrt_or_gpu_is_one_line(tmp_path, flavour):
    """A TensorRT that is not installed names its extra; an installed one on a machine without a GPU
    (TensorRT-RTX here) says so in one line, not as a CUDA error."""
    from nanosam2.utils.tensorrt_flavour import installed_flavours

    engine = tmp_path / "encoder.engine"
    engine.write_bytes(b"not an engine")
    result = runtime("predict", "--encoder", str(engine), "--decoder", str(engine), "--image", SAMPLE,
                     "--point", "10,10", "--output", str(tmp_path / "out"), "--trt-flavour", flavour)
    extra = "rtx" if flavour == "rtx" else "trt"
    expected = "has none visible" if flavour in installed_flavours() else f"pip install 'nanosam2[{extra}]'"
    assert expected in one_error(result)
    assert not (tmp_path / "out").exists()


def test_unknown_file_type(tmp_path):
    result = runtime("predict", "--encoder", "model.bin", "--decoder", "model.bin", "--image", SAMPLE,
                     "--point", "10,10", "--output", str(tmp_path))
    assert "cannot tell the backend of model.bin" in one_error(result)


def test_predict_with_tensorrt_engines(runtime_onnx, tmp_path, monkeypatch, capsys):
    """The engine path of the CLI, with the fake TensorRT standing in for the real one."""
    from nanosam2.utils import cuda_api
    from nanosam2.inference import engine_stream, tensorrt_runner

    from .fake_tensorrt import FakeCudart, FakeTensorRT
    from .test_tensorrt_runner import engines

    cudart = FakeCudart()
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(cudart, "11.4.1"))
    monkeypatch.setattr(tensorrt_runner, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(engine_stream, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    paths = engines(tmp_path, runtime_onnx)
    args = ["predict", "--encoder", str(paths[C.ENCODER]), "--decoder", str(paths[C.DECODER]), "--image", SAMPLE,
            "--box", "120,60,400,420", "--output", str(tmp_path / "out"), "--cuda-graph", "--runs", "2"]
    assert run_cli(cli_main, args) == 0
    assert (tmp_path / "out" / "overlay.png").is_file() and "prompt 0" in capsys.readouterr().out
    assert cudart.graph_launches == 2  # run 2 replays set_image's graph and predict's, captured in run 1
    paths[C.ENCODER].write_bytes(b"corrupt")
    assert run_cli(cli_main, args) == 2
    assert "is not a TensorRT engine TensorRT 11.4.1 can load" in capsys.readouterr().err


def test_eval_coco_and_metric_commands(runtime_onnx, tmp_path, capsys):
    images, ann_file = make_coco(tmp_path / "coco", num_images=2)
    results = tmp_path / "results.json"
    code = run_cli(cli_main, ["eval-coco", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder",
                              str(runtime_onnx[C.DECODER]), "--coco-root", str(images), "--coco-ann", str(ann_file),
                              "--output", str(results)])
    out = capsys.readouterr().out
    assert code == 0 and "annotations/s" in out and "mIoU all" in out
    assert len(json.loads(results.read_text())) == 6
    assert run_cli(cli_main, ["coco-metric", str(results), "--size", "large"]) == 0
    assert "(2 annotations)" in capsys.readouterr().out
    assert run_cli(cli_main, ["coco-metric", str(tmp_path / "none.json")]) == 2
    assert run_cli(cli_main, ["eval-coco", "--encoder", "e.onnx", "--decoder", "d.onnx", "--coco-root", str(tmp_path / "x"),
                              "--coco-ann", str(ann_file), "--output", str(results)]) == 2


def test_seed_tools(runtime_model, tmp_path):
    from nanosam2.build import save_student

    ckpt = save_student(tmp_path / "student.pth", runtime_model)
    images, ann_file = make_coco(tmp_path / "coco", num_images=1)
    results = tmp_path / "seed_results.json"
    evaluated = subprocess.run([sys.executable, "nanosam2/tools/eval_coco.py", "--checkpoint", str(ckpt),
                                "--sam2_config", "nanosam2.1_resnet18", "--output", str(results),
                                "--coco_root", str(images), "--coco_ann", str(ann_file), "--device", "cpu"],
                               capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    metric = subprocess.run([sys.executable, "nanosam2/tools/compute_eval_coco_metric.py", str(results), "--size", "small"],
                            capture_output=True, text=True)
    assert metric.returncode == 0 and metric.stdout.startswith("mIoU small:") and "(1 annotations)" in metric.stdout
