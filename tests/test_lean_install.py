"""The Jetson promise: the runtime installs and predicts with numpy, pillow and onnxruntime only.

A fresh virtual environment gets those three (the versions of this environment) and nanosam2
itself without dependencies, then runs ``python -m trt_runtime predict`` on exported graphs from
outside the checkout; torch is not importable there, and the masks equal the full install's.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanosam2 import contract as C
from nanosam2.utils.cli import run_cli
from trt_runtime.cli import main as cli_main

pytestmark = pytest.mark.xdist_group("runtime_onnx")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "nanosam2/assets/grace_hopper.jpg"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_runtime_predicts_in_a_venv_without_torch(runtime_onnx, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    pins = [f"{name}=={version(name)}" for name in ("numpy", "pillow", "onnxruntime")]
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, cwd=tmp_path)
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", ROOT, cwd=tmp_path)
    missing = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert missing.returncode != 0  # the lean install really has no torch

    args = ["predict", "--encoder", runtime_onnx[C.ENCODER], "--decoder", runtime_onnx[C.DECODER], "--image", SAMPLE,
            "--box", "120,60,400,420", "--point", "250,200"]
    lean = tmp_path / "lean"
    result = run(python, "-m", "trt_runtime", *args, "--output", lean, cwd=tmp_path)
    assert "timings (ms" in result.stdout
    full = tmp_path / "full"
    assert run_cli(cli_main, [str(a) for a in args] + ["--output", str(full)]) == 0
    for name in ("mask_0_0.png", "overlay.png"):
        assert np.array_equal(np.asarray(Image.open(lean / name)), np.asarray(Image.open(full / name))), name
