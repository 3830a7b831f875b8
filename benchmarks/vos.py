"""Video accuracy (J&F) for the benchmarks: J&F of eval-vos result folders next to COCO mIoU. (Meta's own
reference is its ``tools/vos_inference.py``, run as Meta runs it: tests/test_vos_oracle.py.)"""

from __future__ import annotations

import logging
from pathlib import Path
logger = logging.getLogger(__name__)


def vos_jf(gt: Path, results: Path) -> dict[str, float]:
    """J&F (percent) of every ``BACKBONE.BACKEND.PRECISION`` prediction folder (eval-vos's) in ``results``."""
    from nanosam2.evaluation.vos_metrics import score

    found: dict[str, float] = {}
    for folder in sorted(p for p in results.iterdir() if p.is_dir() and len(p.name.split(".")) == 3):
        scores = score(gt, folder)
        found["/".join(folder.name.split("."))] = round(scores.global_jf, 2)
        logger.info("%s: %s", folder.name, scores.line())
    return found
