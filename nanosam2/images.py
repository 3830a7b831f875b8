"""Reading images as RGB uint8 arrays (torch-free), with a one-line error for bad files.

16-bit images are scaled to 8 bits (Pillow's own ``convert("RGB")`` clips 16-bit grey values to
255, which turns a 16-bit PNG into a white image); float or 32-bit integer pixels, whose range
nothing in the file states, are refused with a message rather than guessed.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from nanosam2.errors import NanoSam2Error

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255, rounded (65535 / 255 = 257)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def to_rgb(image: Image.Image, source: str = "image") -> np.ndarray:
    """[H, W, 3] uint8 of a Pillow image of any 8- or 16-bit mode."""
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):  # 16-bit grey
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise NanoSam2Error(f"{source}: grey values outside 0..65535")
        grey = _scale_16_bit(values)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if image.mode in ("I", "F"):
        raise NanoSam2Error(f"{source}: {'32-bit integer' if image.mode == 'I' else 'floating-point'} pixels have no "
                            "stated range; convert the image to 8-bit RGB first")
    return np.array(image.convert("RGB"))


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """[H, W, 3] uint8, writable; ``NanoSam2Error`` for a missing or unreadable file."""
    try:
        with Image.open(path) as image:
            return to_rgb(image, str(path))
    except FileNotFoundError:
        raise NanoSam2Error(f"no such image: {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise NanoSam2Error(f"cannot read image {path}: {exc}") from None

