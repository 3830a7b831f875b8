"""Video accuracy (J&F) for the benchmarks: Meta's ``SAM2VideoPredictor`` driven by the same protocol
as ``eval-vos`` (the reference), and J&F of result folders next to COCO mIoU.

Meta's tracker follows ``tools/vos_inference.py``: the first-frame protocol adds every object's mask on
frame 0 and propagates once; ``later-objects`` runs each object alone (reset, its mask on the first
frame it appears, propagated forwards), as ``vos_separate_inference_per_object`` does. The masks come
out of ``nanosam2.evaluation.vos_eval.combine`` and its writer either way, so a difference is the
tracker's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nanosam2.evaluation.vos_data import VosSequence
from nanosam2.evaluation.vos_eval import FrameLogits, Tracker

logger = logging.getLogger(__name__)


def meta_tracker(predictor: Any, later_objects: bool) -> Tracker:
    """A ``Tracker`` over Meta's ``SAM2VideoPredictor`` (frames at the model's size: Meta's loader
    resizes with PIL's filter, ours with an antialiased bilinear one)."""
    import torch

    def track(sequence: VosSequence, masks: dict[int, dict[int, np.ndarray]]) -> Iterator[FrameLogits]:
        numbers = [number for number, _ in sequence.frames]
        position = {number: index for index, number in enumerate(numbers)}
        logits: dict[int, dict[int, np.ndarray]] = {number: {} for number in numbers}
        with torch.inference_mode():
            state = predictor.init_state(str(sequence.frames[0][1].parent))
            if not later_objects:
                groups = [masks]
            else:
                groups = [{number: {obj: mask}} for number, objects in sorted(masks.items())
                          for obj, mask in objects.items()]
            for group in groups:
                predictor.reset_state(state)
                for number, objects in group.items():
                    for obj, mask in objects.items():
                        predictor.add_new_mask(state, frame_idx=position[number], obj_id=obj, mask=mask)
                start = min(position[number] for number in group)
                for frame_idx, obj_ids, out in predictor.propagate_in_video(state, start_frame_idx=start):
                    planes = out[:, 0].float().cpu().numpy()
                    logits[numbers[frame_idx]].update({obj: planes[i] for i, obj in enumerate(obj_ids)})
        for number in numbers:
            yield number, logits[number]

    return track


def vos_jf(gt: Path, results: Path) -> dict[str, float]:
    """J&F (percent) of every ``BACKBONE.BACKEND.PRECISION`` prediction folder (eval-vos's) in ``results``."""
    from nanosam2.evaluation.vos_metrics import score

    found: dict[str, float] = {}
    for folder in sorted(p for p in results.iterdir() if p.is_dir() and len(p.name.split(".")) == 3):
        scores = score(gt, folder)
        found["/".join(folder.name.split("."))] = round(scores.global_jf, 2)
        logger.info("%s: %s", folder.name, scores.line())
    return found
