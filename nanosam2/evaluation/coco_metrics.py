"""Mean IoU of a results file, by COCO size bucket and category (the seed's metric, torch-free).

A results file is a JSON list of records ``{id, area, category_id, iscrowd, image_id,
box (xyxy), iou}``, one per annotation. Size buckets use COCO's half-open convention on the
annotation ``area``: small < 32², 32² <= medium < 96², large >= 96² (the seed's script counted
an area of exactly 32² or 96² in two buckets).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from nanosam2.errors import NanoSam2Error

SIZES = ("all", "small", "medium", "large")
SMALL_MAX_AREA = 32**2
MEDIUM_MAX_AREA = 96**2
RECORD_KEYS = ("id", "area", "category_id", "iscrowd", "image_id", "box", "iou")


def size_bucket(area: float) -> str:
    if area < SMALL_MAX_AREA:
        return "small"
    if area < MEDIUM_MAX_AREA:
        return "medium"
    return "large"


def load_results(path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate a results file; a clear one-line error for anything else."""
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except FileNotFoundError:
        raise NanoSam2Error(f"no such results file: {path}") from None
    except (OSError, ValueError) as exc:
        raise NanoSam2Error(f"{path} is not a JSON results file: {exc}") from None
    if not isinstance(records, list):
        raise NanoSam2Error(f"{path}: expected a JSON list of result records")
    for index, record in enumerate(records):
        missing = [k for k in ("area", "category_id", "iou") if not isinstance(record, dict) or k not in record]
        if missing:
            raise NanoSam2Error(f"{path}: record {index} lacks {', '.join(missing)}")
        for key in ("area", "category_id", "iou"):
            value = record[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise NanoSam2Error(f"{path}: record {index} has {key} {value!r}, not a number")
        if not 0.0 <= float(record["iou"]) <= 1.0:
            raise NanoSam2Error(f"{path}: record {index} has iou {record['iou']}, outside [0, 1]")
    return records


def select(records: Iterable[dict], size: str = "all", category_id: int | None = None) -> list[dict]:
    if size not in SIZES:
        raise NanoSam2Error(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return [r for r in records
            if (size == "all" or size_bucket(float(r["area"])) == size)
            and (category_id is None or int(r["category_id"]) == category_id)]


def mean_iou(records: Sequence[dict]) -> float:
    """Mean of the records' IoU; NaN for an empty selection."""
    return sum(float(r["iou"]) for r in records) / len(records) if records else float("nan")


@dataclass(frozen=True)
class Summary:
    miou: dict[str, float]
    counts: dict[str, int]

    def table(self) -> str:
        head = "| " + " | ".join(f"mIoU {s}" for s in SIZES) + " |"
        cells = "| " + " | ".join(f"{self.miou[s]:.4f} ({self.counts[s]})" for s in SIZES) + " |"
        return f"{head}\n|{' --- |' * len(SIZES)}\n{cells}"


def summarize(records: Sequence[dict], category_id: int | None = None) -> Summary:
    chosen = {s: select(records, s, category_id) for s in SIZES}
    return Summary({s: mean_iou(v) for s, v in chosen.items()}, {s: len(v) for s, v in chosen.items()})
