"""Benchmarks: the core on stub runners (schema, table, PNG), the CLI on a real backbone, the seed tool."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from benchmarks.report import EVERYTHING, SCHEMA_VERSION, STAGES, Measurement, Report
from benchmarks.cases import Settings, measure_pair
from benchmarks.run_all import summary
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.timing import time_call
from nanosam2 import contract as C


class StubRunner:
    """Returns correctly shaped zeros at once: the smoke test checks plumbing, not speed."""

    def __init__(self, outputs: dict[str, tuple[int, ...]]) -> None:
        self.outputs, self.calls = outputs, 0

    def infer(self, feed, copy_outputs_to_host=True):
        self.calls += 1
        prompts = feed.get(C.POINT_COORDS, np.zeros((1,))).shape[0]
        return {n: np.zeros((prompts if C.POINT_COORDS in feed else 1, *s[1:]), np.float32) for n, s in self.outputs.items()}

    def max_batch(self):
        return None

    def to_device(self, name, array):
        return array

    def synchronize(self):
        pass

    path = "stub"


def stub_pair():
    from nanosam2.contract import GraphContract

    encoder = StubRunner({C.IMAGE_EMBED: (1, 256, 64, 64), C.HIGH_RES_FEATS_0: (1, 32, 256, 256),
                          C.HIGH_RES_FEATS_1: (1, 64, 128, 128)})
    decoder = StubRunner({C.LOW_RES_MASKS: (1, 4, 256, 256), C.IOU_PREDICTIONS: (1, 4), C.OBJECT_SCORE_LOGITS: (1, 1)})
    encoder.contract = GraphContract.for_graph(C.ENCODER, "stub")
    decoder.contract = GraphContract.for_graph(C.DECODER, "stub")
    return encoder, decoder


def test_time_call_counts_and_orders():
    calls = []
    timing = time_call(lambda: calls.append(1), runs=2, warmup=1)
    assert len(calls) == 3 and timing.runs == 2 and 0 <= timing.median_ms <= timing.p90_ms


def test_core_writes_json_table_and_png(tmp_path):
    report = Report({"host": "test", "date": "2026-11-24T00:00:00", "cpu": "stub", "fp32_peak_gflops": 100.0},
                    extra={"encoder_gflop": {"stub": 1.0}})
    encoder, decoder = stub_pair()
    measure_pair(report, ("stub", "stub-backend", "fp32"), encoder, decoder, Settings(2, 2, 1, tmp_path, everything_points=3))
    report.measurements.append(Measurement("stub", "tensorrt", "fp16", "pipeline", skipped="TensorRT is not installed"))
    paths = report.write(tmp_path, "test-2026-11-24")
    data = json.loads(paths["json"].read_text())
    assert data["schema"] == SCHEMA_VERSION and data["machine"]["host"] == "test"
    stages = {m["stage"] for m in data["measurements"] if m["backend"] == "stub-backend"}
    assert stages == set(STAGES) | {"host", EVERYTHING}  # host: the pipeline's time outside the two graph calls
    assert all(m["median_ms"] > 0 and m["fps"] > 0 and m["runs"] == (1 if m["stage"] == EVERYTHING else 2)
               for m in data["measurements"] if not m["skipped"])
    table = paths["table"].read_text()
    assert "| stub | stub-backend | fp32 |" in table and "skipped: TensorRT is not installed" in table
    with Image.open(paths["plot"]) as png:
        png.verify()
        assert png.format == "PNG"
    assert encoder.calls >= 2 + 1 + 2 and any("GFLOP/s" in line for line in summary(report))


def test_accuracy_plot_from_coco_results(tmp_path):
    from benchmarks.run_all import attach_coco_results

    report = Report({"host": "t", "date": "2026-11-24", "cpu": "stub"})
    report.measurements += [Measurement("r18", "onnxruntime-cpu", "int8", "pipeline", 500.0, 510.0, 3),
                            Measurement("r18", "onnxruntime-cpu", "fp32", "pipeline", 600.0, 610.0, 3)]
    results = tmp_path / "coco"
    results.mkdir()
    (results / "r18.onnxruntime-cpu.int8.json").write_text(json.dumps([{"area": 10, "category_id": 1, "iou": 0.5},
                                                                       {"area": 10, "category_id": 1, "iou": 0.7}]))
    attach_coco_results(report, results)
    assert report.extra["coco_miou"] == {"r18/onnxruntime-cpu/int8": 0.6}
    paths = report.write(tmp_path, "acc")
    with Image.open(paths["accuracy_plot"]) as png:
        assert png.format == "PNG" and png.size[0] > 100


@pytest.mark.slow  # ~4 min: exports, calibrates and times a student at 1024 and 512 px; fast twins below time the same
@pytest.mark.xdist_group("benchmark_cli")  # measurement code on torch (test_torch_cases_...) and ONNX graphs
def test_run_all_on_a_real_backbone(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--backbones", "mobilenet_v3_large",
                             "--backends", "onnxruntime,tensorrt", "--quick", "--everything-points", "3",
                             "--track-frames", "0", "--image-sizes", "1024,512", "--output-dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RANDOM WEIGHTS" in result.stdout and "| mobilenet_v3_large | onnxruntime-cpu | int8 |" in result.stdout
    assert "| mobilenet_v3_large@512 | onnxruntime-cpu | int8 |" in result.stdout
    skipped = next(line for line in result.stdout.splitlines() if "tensorrt | fp32/fp16/int8 | skipped: " in line)
    assert "tensorrt is not installed" in skipped or "needs a CUDA GPU and this machine has none" in skipped
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    backends = {(m["backend"], m["precision"]) for m in data["measurements"] if m["median_ms"]}
    assert {("onnxruntime-cpu", "fp32"), ("onnxruntime-cpu", "int8"), ("onnxruntime-cpu", "fp32+graphs")} <= backends
    host = [m for m in data["measurements"] if m["stage"] == "host" and m["backend"] == "onnxruntime-cpu"]
    pipeline = [m for m in data["measurements"] if m["stage"] == "pipeline" and m["backend"] == "onnxruntime-cpu"]
    assert host and all(0 < h["median_ms"] < p["median_ms"] for h, p in zip(host, pipeline))
    assert "outside graphs ms (%)" in result.stdout
    assert data["extra"]["encoder_gflop"]["mobilenet_v3_large"] > 1
    everything = {m["precision"] for m in data["measurements"] if m["stage"] == "everything" and m["median_ms"]}
    assert everything == {"fp32", "int8"} and "segment everything:" in result.stdout and "at batch 64" in result.stdout


def test_run_all_rejects_unknown_backbone(tmp_path):
    result = subprocess.run(["bash", "benchmarks/run_all.sh", "--backbones", "vgg", "--output-dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown backbone(s) vgg" in result.stderr


def test_seed_benchmark_tool():
    result = subprocess.run([sys.executable, "nanosam2/tools/benchmark.py", "--config=nanosam2.1_mobilenet_v3_large",
                             "--device", "cpu", "--runs", "2", "--no-compile"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| CPU | float32 | 1 |" in result.stdout


def test_train_throughput_benchmark_runs_the_real_loop(tmp_path):
    from benchmarks.train_throughput import main as throughput_main

    out = tmp_path / "throughput.json"
    assert throughput_main(["--teacher-config", "sam2.1_hiera_t", "--image-size", "128", "--batch-size", "1",
                            "--steps", "3", "--num-workers", "0", "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["timed_steps"] == 2 and record["images_per_s"] > 0 and record["random_weights"]


@pytest.mark.xdist_group("benchmark_cli")
def test_torch_cases_time_the_numpy_and_the_graph_pipeline(tmp_path):
    import torch

    from benchmarks.run_all import torch_rows
    from nanosam2.build import build_nanosam2

    torch.manual_seed(0)
    report = Report({"host": "test", "date": "2026-11-24T00:00:00", "cpu": "stub"})
    torch_rows(report, "mobilenet_v3_large", build_nanosam2("mobilenet_v3_large", device="cpu"),
                Settings(encoder_runs=1, decoder_runs=1, warmup=0, work_dir=tmp_path, everything_points=2), compile_too=False)
    stages = {(m.precision, m.stage) for m in report.measurements if m.median_ms}
    assert {("fp32", "encoder"), ("fp32", "pipeline"), ("fp32", "host"), ("fp32+graphs", "pipeline"),
            ("fp32+graphs", "host")} <= stages


def test_onnxruntime_cases_time_the_numpy_and_the_graph_pipeline(runtime_onnx, tmp_path):
    """The fast twin of test_run_all_on_a_real_backbone's ONNX Runtime rows, on the session's export."""
    from benchmarks.run_all import onnxruntime_rows

    report = Report({"host": "test", "date": "2026-11-26T00:00:00", "cpu": "stub"})
    onnxruntime_rows(report, "resnet18", runtime_onnx, None,
                      Settings(encoder_runs=1, decoder_runs=1, warmup=0, work_dir=tmp_path, everything_points=2))
    measured = {(m.backend, m.precision, m.stage): m.median_ms for m in report.measurements if m.median_ms}
    for precision in ("fp32", "fp32+graphs"):
        assert 0 < measured[("onnxruntime-cpu", precision, "host")] < measured[("onnxruntime-cpu", precision, "pipeline")]
    assert ("onnxruntime-cpu", "fp32", "everything") in measured


def test_a_512_px_export_is_timed_as_its_own_row(tmp_path_factory, tmp_path):
    """run_all's 512-px rows (BACKBONE@512): the session's 512-px export, its inputs made at its size."""
    from benchmarks.cases import row_label
    from benchmarks.run_all import main as run_all_main, onnxruntime_rows
    from export.exporter import export_model
    from tests.conftest import export_once
    from tests.test_video import video_model

    graphs = export_once(tmp_path_factory, "onnx-video-512",
                         lambda folder: export_model(video_model("resnet18"), "resnet18", folder))
    report = Report({"host": "test", "date": "2026-12-05T00:00:00", "cpu": "stub"})
    label = row_label("resnet18", 512)
    onnxruntime_rows(report, label, graphs, None,
                      Settings(encoder_runs=1, decoder_runs=1, warmup=0, work_dir=tmp_path, everything_points=0))
    assert label == "resnet18@512" and report.get((label, "onnxruntime-cpu", "fp32"), "decoder_16").median_ms > 0
    assert row_label("resnet18", 1024) == "resnet18"
    with pytest.raises(NanoSam2Error, match="--image-sizes 500: the model takes a multiple of 64"):
        run_all_main(["--backbones", "resnet18", "--image-sizes", "1024,500", "--output-dir", str(tmp_path)])


def test_run_all_and_gpu_check_time_the_same_cases():
    """Issue 33: one set of benchmark cases (benchmarks/cases.py: open, warm up, time, record); run_all and
    gpu_check build their rows from it and keep no measuring routine or runner construction of their own."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    for name in ("run_all.py", "gpu_check.py"):
        tree = ast.parse((root / name).read_text())
        own = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("measure_")]
        assert not own, (name, own)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "benchmarks.cases"
                    for a in n.names}
        assert {"run_cases", "Settings"} <= imported, (name, imported)
        runners = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                   and n.module.endswith(("onnxruntime_runner", "tensorrt_runner")) for a in n.names]
        assert not runners, (name, runners)
