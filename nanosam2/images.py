"""Reading images as RGB uint8 arrays (torch-free), with a one-line error for bad files."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from nanosam2.errors import NanoSam2Error


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """[H, W, 3] uint8, writable; ``NanoSam2Error`` for a missing or unreadable file."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise NanoSam2Error(f"no such image: {path}") from None
    except (OSError, ValueError) as exc:
        raise NanoSam2Error(f"cannot read image {path}: {exc}") from None
