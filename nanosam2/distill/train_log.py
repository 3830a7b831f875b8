"""Training log: one CSV row per optimizer step (and per validation), optionally TensorBoard.

On resume the CSV is cut back to the checkpoint's step, so the file always describes one
uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

from nanosam2.utils.lazy_import import require

logger = logging.getLogger(__name__)

COLUMNS = ("step", "epoch", "lr", "loss", "loss_level0", "loss_level1", "loss_level2", "images", "skipped",
           "images_per_s", "val_miou_all", "val_miou_small", "val_miou_medium", "val_miou_large")


def read_log(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class TrainLog:
    """Append-only CSV (rewritten to ``resume_step`` first when resuming) + TensorBoard scalars."""

    def __init__(self, output_dir: Path, resume_step: int | None = None, tensorboard: bool = False) -> None:
        self.path = output_dir / "train_log.csv"
        if resume_step is not None and self.path.is_file():
            kept = [row for row in read_log(self.path) if int(row["step"]) <= resume_step]
            self._rewrite(kept)
        elif not self.path.is_file() or resume_step is None:
            self._rewrite([])
        self.writer = None
        if tensorboard:
            tb = require("torch.utils.tensorboard", "--tensorboard (pip install tensorboard)")
            self.writer = tb.SummaryWriter(str(output_dir / "tensorboard"), purge_step=resume_step)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(self.path.name + ".partial")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, **row: Any) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown log columns {sorted(unknown)}")
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS).writerow({k: _fmt(v) for k, v in row.items()})
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value  # repr: round-trips exactly
