"""The README's main-job command writes the overlay on CPU."""

import subprocess
import sys

import numpy as np
from PIL import Image


def test_demo_writes_overlay(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "nanosam2.demo", "--output-dir", str(out), "--device", "cpu",
                             "--point", "250,200", "--box", "120,60,400,420"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "RANDOM WEIGHTS" in result.stdout
    overlay = Image.open(out / "overlay.png")
    overlay.verify()
    assert Image.open(out / "overlay.png").size == (512, 600)
    mask = np.asarray(Image.open(out / "mask.png"))
    assert mask.shape == (600, 512) and set(np.unique(mask)) <= {0, 255}


def test_demo_rejects_point_outside_image(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nanosam2.demo", "--output-dir", str(tmp_path),
                             "--point", "5000,10"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: point (5000, 10) is outside the 512x600 image"


def test_demo_rejects_malformed_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nanosam2.demo", "--point", "1;2"], capture_output=True, text=True)
    assert result.returncode == 2 and "malformed point '1;2'" in result.stderr
