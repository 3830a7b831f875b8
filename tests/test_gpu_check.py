"""The GPU proof's plumbing on the CPU (``scripts/gpu_check.sh --cpu-dry-run``), so that it cannot rot
between GPU machines: carried wheels installed, parts run in their own processes, a part stopped at
its time box keeps its rows, a failing part fails the command, the report is written."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from benchmarks.gpu_check import compact_table, run_check
from nanosam2.errors import NanoSam2Error

pytestmark = pytest.mark.xdist_group("gpu_check")


def make_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (the kind of file carried to the GPU machine)."""
    path = folder / "carried_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("carried_probe/__init__.py", "VALUE = 42\n")
        wheel.writestr("carried_probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: carried-probe\nVersion: 1.0\n")
        wheel.writestr("carried_probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                            "Tag: py3-none-any\n")
        wheel.writestr("carried_probe-1.0.dist-info/RECORD", "")
    return path


def test_dry_run_plumbing(tmp_path, runtime_onnx):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    report, written, code = run_check(
        True, budget=200, wheels=wheels, out_dir=tmp_path / "out",
        boxes={"predict": 1.0},  # far too short: stopped and reported, not waited for
        parts=["gpu-tests", "encoder", "predict", "tracking", "tensorrt-rtx"],
        onnx_dir=str(Path(runtime_onnx["image_encoder"]).parent))
    parts = {p["name"]: p for p in report.extra["parts"]}
    assert parts["gpu-tests"]["status"] == "passed"
    assert any(r["backend"] == "pytest" and r["outcome"] == "skipped" for r in report.extra["rows"])  # gpu tests skip here
    assert parts["encoder"]["status"] == "passed"
    stages = {(m.backend, m.stage) for m in report.measurements if m.median_ms}
    assert {("torch-eager", "encoder_b1"), ("torch-eager-unsynced", "encoder_b1")} <= stages
    assert parts["predict"]["status"] == "skipped" and "time box (1 s) ran out" in parts["predict"]["reason"]
    assert parts["tracking"]["status"] == "skipped" and "dry run" in parts["tracking"]["reason"]
    rtx = parts["tensorrt-rtx"]
    if rtx["status"] == "passed":  # TensorRT-RTX installed (CI): engines built on the CPU, not run
        builds = [m for m in report.measurements if m.stage.startswith("build_")]
        assert len(builds) == 4 and all(m.median_ms for m in builds)
    else:
        assert rtx["status"] == "skipped" and "not installed" in rtx["reason"]
    assert code == 0
    saved = json.loads(written["json"].read_text())
    assert saved["extra"]["dry_run"] and written["table"].is_file() and written["plot"].is_file()
    assert "| encoder | passed |" in compact_table(report)


def test_a_failing_part_fails_the_command(tmp_path):
    report, _, code = run_check(True, budget=60, wheels=None, out_dir=tmp_path, parts=["tensorrt-rtx"],
                                onnx_dir=str(tmp_path / "no-such-export"))
    part = report.extra["parts"][0]
    if part["status"] == "skipped":
        pytest.skip(part["reason"])
    assert part["status"] == "failed" and "no such file" in part["reason"] and code == 1


def test_carried_wheels_are_installed(tmp_path):
    from benchmarks.gpu_check import install_wheels

    make_wheel(tmp_path)
    paths = install_wheels(tmp_path, tmp_path / "site")
    probe = subprocess.run([sys.executable, "-c", "import carried_probe; print(carried_probe.VALUE)"],
                           env={"PYTHONPATH": paths[0]}, capture_output=True, text=True)
    assert probe.stdout.strip() == "42"
    (tmp_path / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(NanoSam2Error, match="installing the carried wheels failed"):
        install_wheels(tmp_path, tmp_path / "site2")


@pytest.mark.parametrize("args,message", [
    (["--cpu-dry-run", "--parts", "encoder,warp"], "unknown part 'warp'"),
    (["--cpu-dry-run", "--box", "encoder=soon"], "expected PART=SECONDS"),
    (["--cpu-dry-run", "--budget", "0"], "must be positive"),
    (["--cpu-dry-run", "--wheels", "no-such-folder"], "is not a folder of wheels"),
    ([], "no CUDA GPU is visible"),
])
def test_bad_requests_are_one_line(tmp_path, args, message):
    import torch

    if not args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run(["bash", "scripts/gpu_check.sh", *args, "--out", str(tmp_path)], capture_output=True,
                            text=True)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert not list(tmp_path.iterdir())
