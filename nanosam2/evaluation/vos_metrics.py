"""J&F of video object segmentation results, computed by ``vos-benchmark`` (the evaluator Meta's SA-V
benchmark is adapted from; ``pip install 'nanosam2[vos]'``).

J is region similarity (mask IoU), F boundary accuracy (the F-measure of boundary pixels matched
within 0.8 % of the image diagonal); both are averaged over a object's frames from the first frame
where it appears (in the ground truth or the prediction), then over every object of every sequence
(vos-benchmark's global score), in percent. The first and the last annotated frame of a sequence are
not scored (the DAVIS semi-supervised convention, also SA-V's); ``skip_first_and_last=False`` scores
them. Only annotated frames are scored (SA-V annotates every 4th). Each object is scored on its own
mask, so one code path serves the palette layout (DAVIS, MOSE: equal to vos-benchmark's own
``benchmark()`` on the same folders) and the per-object one (SA-V, where objects may overlap).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from nanosam2.errors import NanoSam2Error
from nanosam2.evaluation.vos_data import (PREDICTION_RECORD, PathLike, layout_files, read_mask_png, read_masks,
                                         sequence_name)
from nanosam2.utils.atomic import atomic_path
from nanosam2.utils.outputs import check_replaceable_file

CSV_HEADER = ["sequence", "object", "J&F", "J", "F"]


@dataclass
class VosScores:
    """Per (sequence, object) J and F in percent."""

    j: dict[tuple[str, int], float] = field(default_factory=dict)
    f: dict[tuple[str, int], float] = field(default_factory=dict)
    sequences: list[str] = field(default_factory=list)

    @property
    def global_j(self) -> float:
        return float(np.mean(list(self.j.values()))) if self.j else float("nan")

    @property
    def global_f(self) -> float:
        return float(np.mean(list(self.f.values()))) if self.f else float("nan")

    @property
    def global_jf(self) -> float:
        return (self.global_j + self.global_f) / 2

    def line(self) -> str:
        return (f"J&F {self.global_jf:.2f}  J {self.global_j:.2f}  F {self.global_f:.2f}  "
                f"({len(self.j)} objects in {len(self.sequences)} sequences)")

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerow(["Global score", "", f"{self.global_jf:.3f}", f"{self.global_j:.3f}", f"{self.global_f:.3f}"])
        for (sequence, obj), j in self.j.items():
            f = self.f[(sequence, obj)]
            writer.writerow([sequence, obj, f"{(j + f) / 2:.3f}", f"{j:.3f}", f"{f:.3f}"])
        return out.getvalue()


def _order(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (1 << 62, name)


def score_sequence(gt_dir: Path, pred_dir: Path, skip_first_and_last: bool = True) -> tuple[dict[int, float], dict[int, float]]:
    """vos-benchmark's per-object J and F (percent) of one sequence."""
    from nanosam2.utils.lazy_import import require

    Evaluator = require("vos_benchmark.evaluator", "J&F (vos-metric)").Evaluator
    gt_frames = layout_files(gt_dir)[0]
    names = sorted(gt_frames, key=_order)
    if skip_first_and_last:
        names = names[1:-1]
    if not pred_dir.is_dir():
        raise NanoSam2Error(f"no predictions for sequence {gt_dir.name}: {pred_dir} is missing")
    pred_frames = layout_files(pred_dir)[0]
    evaluators: dict[int, object] = {}
    truth: set[int] = set()
    predicted: set[int] = set()
    for name in names:
        if name not in pred_frames:
            raise NanoSam2Error(f"{pred_dir / (name + '.png')}: missing; predictions cover every annotated frame")
        gt = read_masks(gt_frames[name])[0]
        shape = next(iter(gt.values())).shape if gt else read_mask_png(next(iter(gt_frames[name].values())))[0].shape
        pred = read_masks(pred_frames[name], shape)[0]
        truth |= set(gt)
        predicted |= set(pred)
        for obj in set(gt) | set(pred) | set(evaluators):
            if obj not in evaluators:
                evaluators[obj] = Evaluator(name=f"{gt_dir.name}/{obj}")
            empty = np.zeros(shape, bool)
            evaluators[obj].feed_frame(pred.get(obj, empty).astype(np.uint8), gt.get(obj, empty).astype(np.uint8))  # type: ignore[attr-defined]
    for name in set(gt_frames) - set(names):  # the unscored frames' ids count as the truth's too
        truth |= set(read_masks(gt_frames[name])[0])
    check_ids(gt_dir, truth, pred_dir, predicted)
    j: dict[int, float] = {}
    f: dict[int, float] = {}
    for obj, evaluator in sorted(evaluators.items()):
        iou, boundary = evaluator.conclude()  # type: ignore[attr-defined]
        if 1 in iou:  # scored only where the ground truth has the object
            j[obj], f[obj] = float(iou[1]), float(boundary[1])
    return j, f


def check_ids(gt_dir: Path, truth: set[int], pred_dir: Path, predicted: set[int]) -> None:
    """Refuse predictions whose object ids the ground truth never has (e.g. masks saved as 0/255 greyscale:
    id 255 would be an object of its own, every true object missed, and J&F 0 with no word said)."""
    foreign = sorted(predicted - truth)
    if foreign:
        grey = " (a 0/255 mask? predictions hold object ids, as the annotations do)" if 255 in foreign else ""
        raise NanoSam2Error(f"{pred_dir}: object id {', '.join(map(str, foreign))} never appears in the ground truth "
                            f"{gt_dir} (ids {', '.join(map(str, sorted(truth))) or 'none'}){grey}")


def ground_truth_root(gt: PathLike) -> Path:
    root = Path(gt)
    if not root.is_dir():
        raise NanoSam2Error(f"no such ground-truth folder: {root}")
    return root / "Annotations" if (root / "Annotations").is_dir() else root


def score(gt: PathLike, predictions: PathLike, sequences: Iterable[str] | None = None, predicted_only: bool = False,
          skip_first_and_last: bool = True) -> VosScores:
    """J&F of the predictions in ``predictions`` against the annotations in ``gt`` (every sequence of
    ``gt``, or ``sequences``; ``predicted_only``: those ``predictions`` has)."""
    gt_root, pred_root = ground_truth_root(gt), Path(predictions)
    if not pred_root.is_dir():
        raise NanoSam2Error(f"no such prediction folder: {pred_root}")
    if (gt_root / PREDICTION_RECORD).is_file() or (Path(gt) / PREDICTION_RECORD).is_file():
        raise NanoSam2Error(f"{gt} holds {PREDICTION_RECORD}: it is eval-vos's predictions, not ground truth (the "
                            "annotations come first: vos-metric GT PRED)")
    names = [sequence_name(n) for n in sequences] if sequences else sorted(p.name for p in gt_root.iterdir()
                                                                            if p.is_dir())
    if not names:
        raise NanoSam2Error(f"{gt_root}: no sequence folders")
    unknown = [n for n in names if not (gt_root / n).is_dir()]
    if unknown:
        raise NanoSam2Error(f"sequence {unknown[0]} is not in {gt_root}")
    if predicted_only:
        names = [n for n in names if (pred_root / n).is_dir()]
        if not names:
            raise NanoSam2Error(f"{pred_root} has none of the ground truth's sequences")
    else:
        missing = [n for n in names if not (pred_root / n).is_dir()]
        if missing:
            raise NanoSam2Error(f"{pred_root} lacks {len(missing)} of {len(names)} sequences (first: {missing[0]}); "
                                "evaluate them, or pass --predicted-only or --sequences")
    scores = VosScores(sequences=names)
    for name in names:
        j, f = score_sequence(gt_root / name, pred_root / name, skip_first_and_last)
        for obj in j:
            scores.j[(name, obj)], scores.f[(name, obj)] = j[obj], f[obj]
    if not scores.j:
        raise NanoSam2Error(f"{gt_root}: no object in any scored frame")
    return scores


def _is_metric_csv(path: Path) -> bool:
    try:
        with open(path, newline="") as handle:
            return next(csv.reader(handle), None) == CSV_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def write_csv(scores: VosScores, path: PathLike) -> Path:
    """The per-sequence, per-object table (replacing only a table vos-metric wrote)."""
    target = check_replaceable_file(path, "vos-metric", _is_metric_csv, what="--csv")
    with atomic_path(target) as tmp:
        tmp.write_text(scores.csv_text())
    return target
