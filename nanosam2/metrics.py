"""The two comparisons used everywhere (export checks, INT8 reports, COCO, tests), torch-free."""

from __future__ import annotations

import numpy as np


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∧ b| / |a ∨ b| of two masks (bool, or logits thresholded at 0); 1.0 when both are empty."""
    a = a if a.dtype == np.bool_ else a > 0
    b = b if b.dtype == np.bool_ else b > 0
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays taken as flat vectors (float64 accumulation)."""
    x, y = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-30))
