"""The COCO box-prompt evaluation loop (same protocol as the seed and NVIDIA nanosam).

Every annotation of every image (iscrowd included) is prompted with its ground-truth box as
SAM2 box corners (labels 2 and 3); the multimask output with the highest predicted IoU is
kept and compared with ``coco.annToMask(ann) > 0`` at the original resolution. All boxes of
an image go to the decoder in one call. Results are flushed atomically every few images and
a rerun resumes where the file stops - but only its own results: every record carries the id of
the run that made it (a hash of the model's identity and of the annotation file), and a file
written by another model or for other annotations is refused, never mixed or reported as ours.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.images import read_rgb
from nanosam2.metrics import mask_iou
from nanosam2.utils.atomic import atomic_path, check_output_file
from nanosam2.utils.lazy_import import require

logger = logging.getLogger(__name__)


class BoxPredictor(Protocol):
    """What the loop needs: ``trt_runtime.Predictor`` over any backend provides it."""

    def identity(self) -> dict: ...

    def set_image(self, image: np.ndarray) -> None: ...

    def build_prompts(self, boxes: np.ndarray) -> T.DecoderPrompts: ...

    def predict_best(self, prompts: T.DecoderPrompts) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class EvalStats:
    images: int
    annotations: int
    seconds: float

    @property
    def annotations_per_second(self) -> float:
        return self.annotations / self.seconds if self.seconds > 0 else float("nan")


RUN_KEY = "run"  # record key: the id of the run (model + annotations) that produced the record


def run_id(predictor: BoxPredictor, coco_ann: str | os.PathLike[str]) -> str:
    """16 hex digits identifying what a record depends on: the model and the annotation file."""
    from nanosam2.records import file_sha256

    payload = json.dumps({"model": predictor.identity(), "annotations": file_sha256(coco_ann)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def xywh_to_xyxy(box: list[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y + h]


def load_coco(annotation_file: str | os.PathLike[str]):
    """pycocotools ``COCO`` without its prints; a clear error for a missing or bad file."""
    import contextlib
    import io

    coco_mod = require("pycocotools.coco", "COCO evaluation")
    if not os.path.isfile(annotation_file):
        raise NanoSam2Error(f"no such COCO annotation file: {annotation_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco_mod.COCO(str(annotation_file))
    except Exception as exc:
        raise NanoSam2Error(f"{annotation_file} is not a COCO annotation file: {exc}") from None


def _read_partial(output: Path, run: str, resume: bool = True) -> list[dict]:
    """Records of an earlier run of the same model on the same annotations (``resume``); a file that
    is not an eval-coco results file is refused either way (it is never replaced)."""
    if not output.is_file():
        return []
    fix = "pass --no-resume to start over, or choose another --output"
    foreign = f"{output} exists and is not an eval-coco results file; choose another --output or move it away"
    try:
        records = json.loads(output.read_text())
    except (ValueError, UnicodeDecodeError):
        raise NanoSam2Error(foreign) from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "image_id" in r for r in records):
        raise NanoSam2Error(foreign)
    if any(RUN_KEY not in r for r in records):
        raise NanoSam2Error(f"{output} holds results of another model or tool (no record of the run that made them); "
                            "choose another --output or move it away")
    if not resume:
        return []
    others = {str(r.get(RUN_KEY)) for r in records if r.get(RUN_KEY) != run}
    if others:
        raise NanoSam2Error(f"{output} holds results of another model or annotation file (run {sorted(others)[0]}, "
                            f"this run {run}); {fix}")
    return records


def _write(output: Path, records: list[dict]) -> None:
    with atomic_path(output) as tmp:
        tmp.write_text(json.dumps(records))


def evaluate_coco(
    predictor: BoxPredictor,
    coco_root: str | os.PathLike[str],
    coco_ann: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    resume: bool = True,
    flush_every: int = 25,
    progress: bool = True,
) -> tuple[list[dict], EvalStats]:
    """Run the protocol over the first ``limit`` images (sorted ids) that have annotations."""
    if limit is not None and limit < 1:
        raise NanoSam2Error(f"--limit must be at least 1, got {limit}")
    if not Path(coco_root).is_dir():
        raise NanoSam2Error(f"no such COCO image folder: {coco_root}")
    out_path = check_output_file(output, inputs=[coco_ann], what="--output") if output else None
    coco = load_coco(coco_ann)
    image_ids = [i for i in sorted(coco.getImgIds()) if coco.getAnnIds(imgIds=i, iscrowd=None)]
    if limit is not None:
        image_ids = image_ids[:limit]
    if not image_ids:
        raise NanoSam2Error(f"{coco_ann} has no annotated images to evaluate")
    run = run_id(predictor, coco_ann)
    records = _read_partial(out_path, run, resume) if out_path else []
    done = {r["image_id"] for r in records}
    todo = [i for i in image_ids if i not in done]
    if done:
        logger.info("resuming: %d images already in %s, %d to go", len(done), out_path, len(todo))
    iterator = todo
    if progress:
        tqdm = require("tqdm", "progress bars").tqdm
        iterator = tqdm(todo, desc="COCO eval", unit="img")
    start, annotations = time.perf_counter(), 0
    for count, image_id in enumerate(iterator, 1):
        info = coco.loadImgs(image_id)[0]
        path = Path(coco_root) / info["file_name"]
        image = read_rgb(path)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
        predictor.set_image(image)
        boxes = np.array([xywh_to_xyxy(a["bbox"]) for a in anns], np.float32)
        masks, _ = predictor.predict_best(predictor.build_prompts(boxes=boxes))
        for ann, mask in zip(anns, masks):
            records.append({
                "id": ann["id"], "area": ann["area"], "category_id": ann["category_id"],
                "iscrowd": ann.get("iscrowd", 0), "image_id": image_id,
                "box": [float(v) for v in xywh_to_xyxy(ann["bbox"])],
                "iou": mask_iou(mask, coco.annToMask(ann) > 0), RUN_KEY: run,
            })
        annotations += len(anns)
        if out_path and count % flush_every == 0:
            _write(out_path, records)
    seconds = time.perf_counter() - start
    if out_path:
        _write(out_path, records)
    return records, EvalStats(len(todo), annotations, seconds)
