"""mypy over the TensorRT code, against tensorrt-stubs (TensorRT itself cannot be installed here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .trt_stubs import prepare_trt_stubs

ROOT = Path(__file__).resolve().parents[1]
TRT_CODE = ["nanosam2/inference/tensorrt_runner.py", "nanosam2/inference/engine_stream.py", "nanosam2/utils/cuda_api.py",
            "engines", "calib"]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    folder, loosened = prepare_trt_stubs(tmp_path_factory.mktemp("trt-stubs"))
    print(f"tensorrt stubs: {loosened} unparsable signatures loosened")
    return folder


def mypy(stubs: Path, *files: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MYPYPATH": str(stubs)}
    return subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental", *files],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def test_tensorrt_code_type_checks(stubs):
    result = mypy(stubs, *TRT_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_catch_a_wrong_tensorrt_call(stubs, tmp_path):
    """Guards the set-up above: a call TensorRT 10/11 do not have must fail the check."""
    probe = tmp_path / "probe.py"
    probe.write_text("import tensorrt as trt\n\ndef run(ctx: trt.IExecutionContext) -> None:\n"
                     "    ctx.execute_async_v2(0)\n")
    result = mypy(stubs, str(probe))
    assert result.returncode != 0 and "execute_async_v2" in result.stdout
