"""COCO box-prompt mIoU of the model being trained, through the runtime's own code path.

The student is wrapped in two ``TorchRunner``s (the same graphs the exporter writes) behind the
backend-independent ``Predictor``, and scored by ``evaluate_coco``: the numbers are comparable
with ``python -m trt_runtime eval-coco`` on any backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from nanosam2 import contract as C
from nanosam2.evaluation.coco_eval import evaluate_coco
from nanosam2.evaluation.coco_metrics import summarize
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.torch_runner import TorchRunner

logger = logging.getLogger(__name__)


def coco_miou(model: nn.Module, coco_root: str, coco_ann: str, output: Path | None, limit: int | None,
              device: str, dtype: str = "fp32") -> dict[str, float]:
    """``{"all": .., "small": .., "medium": .., "large": ..}`` on the first ``limit`` images.

    Leaves the model in eval mode: the caller puts back its training mode.
    """
    predictor = Predictor(TorchRunner(model=model, graph=C.ENCODER, device=device, dtype=dtype),
                          TorchRunner(model=model, graph=C.DECODER, device=device, dtype=dtype))
    records, stats = evaluate_coco(predictor, coco_root, coco_ann, output=output, limit=limit, resume=False,
                                   progress=False)
    summary = summarize(records)
    logger.info("COCO val: mIoU %.4f over %d annotations of %d images (%.1f ann/s)", summary.miou["all"],
                stats.annotations, stats.images, stats.annotations_per_second)
    return dict(summary.miou)
