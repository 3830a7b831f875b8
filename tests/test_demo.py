"""The README's main-job command: a click, segment everything and tracking on bundled inputs, on CPU."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

DEMO = [sys.executable, "-m", "trt_runtime.demo"]
QUICK = ["--image-size", "256", "--points-per-side", "4", "--frames", "3", "--device", "cpu"]


def test_demo_writes_every_picture_and_a_timing_table(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([*DEMO, *QUICK, "--output-dir", str(out), "--point", "250,200", "--box", "120,60,400,420"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "RANDOM WEIGHTS" in result.stdout
    for step in ("| click |", "| everything | 16 point prompts", "| track | 2 objects, 3 frames"):
        assert step in result.stdout, result.stdout
    for name in ("overlay.png", "everything.png"):
        assert Image.open(out / name).size == (512, 600)
    mask = np.asarray(Image.open(out / "mask.png"))
    assert mask.shape == (600, 512) and set(np.unique(mask)) <= {0, 255}
    record = json.loads((out / "demo.json").read_text())
    assert record["outputs"]["files"] == ["everything.png", "mask.png", "overlay.png", "demo.json"]
    assert sorted(p.name for p in (out / "track" / "masks" / "2").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    again = subprocess.run([*DEMO, *QUICK, "--output-dir", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr  # its own outputs are replaced


def test_demo_rejects_point_outside_image(tmp_path):
    result = subprocess.run([*DEMO, "--output-dir", str(tmp_path), "--point", "5000,10"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: point (5000, 10) is outside the 512x600 image"


def test_demo_rejects_malformed_point(tmp_path):
    result = subprocess.run([*DEMO, "--point", "1;2"], capture_output=True, text=True)
    assert result.returncode == 2 and "malformed point '1;2'" in result.stderr
