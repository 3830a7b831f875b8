"""Semi-supervised video object segmentation: the protocol of Meta's ``tools/vos_inference.py``.

Each object is prompted with its ground-truth mask and tracked to the end of the sequence:

- ``first-frame`` (DAVIS 2017, MOSE, SA-V; Meta's default): every object of the first frame's annotation,
  prompted there. An object that the annotations show later but not on the first frame would silently
  score 0: it is refused, naming the sequence, the object and the frame, with the protocol that tracks it.
- ``later-objects`` (YouTube-VOS, LVOS; Meta's ``--track_object_appearing_later_in_video``): each object
  is prompted on the first frame where its annotation is not empty and joins the tracking there; frames
  before it score the object absent (logit -1024).

The model is Meta's ``vos_inference.py`` one (``tracker_config.VOS_INFERENCE``: no post-processing), and the
objects' masks do not overlap where the annotations are palette PNGs (a pixel goes to the object of the
highest logit, ``transforms.non_overlapping``) and may where they are one PNG an object (SA-V), as the script
chooses by its ``--per_obj_png_file`` flag. Objects are independent in SAM2's memory, so one forward pass with
objects joining when prompted (``VideoPredictor.track_stream``, told the sequence's length) gives each object
what Meta's per-object passes give it, with each frame encoded once. Predictions are thresholded at logit 0
and written per frame in the annotations' layout (``vos_data``), a sequence at a time: a sequence is published
whole or not at all, and a rerun
resumes after the last complete one - only for the same model and protocol (the run id of
``eval-vos.json``) and the same annotations (each sequence's digest); anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.evaluation.vos_data import (PREDICTION_RECORD, PathLike, VosSequence, davis_palette, open_dataset,
                                         write_prediction)
from nanosam2.utils.outputs import OUTPUT_KEY, OutputFolder, read_record

logger = logging.getLogger(__name__)

PROTOCOLS = ("first-frame", "later-objects")
RECORD = PREDICTION_RECORD
COMMAND = "eval-vos"
ABSENT_LOGIT = -1024.0  # Meta's score of an object on a frame it was not tracked on

# one frame's result: (frame number, {object id: mask logits [H, W] at the video's size})
FrameLogits = tuple[int, dict[int, np.ndarray]]
# (sequence, prompts: frame number -> {object id: bool mask}) -> per-frame logits, every frame in order
Tracker = Callable[[VosSequence, dict[int, dict[int, np.ndarray]]], Iterator[FrameLogits]]


@dataclass
class Prompts:
    """What the protocol gives the tracker for one sequence."""

    masks: dict[int, dict[int, np.ndarray]]  # frame number -> {object id: bool mask}
    objects: list[int]  # sorted
    palette: list[int]
    size: tuple[int, int]  # (height, width)


def sequence_prompts(sequence: VosSequence, protocol: str) -> Prompts:
    """The ground-truth masks the protocol prompts with (every annotation is read: one the protocol
    cannot honour is refused before any tracking)."""
    from nanosam2.images import read_rgb

    if protocol not in PROTOCOLS:
        raise NanoSam2Error(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    height, width = read_rgb(sequence.frames[0][1]).shape[:2]
    first_frame = sequence.frames[0][0]
    first_seen: dict[int, int] = {}
    masks: dict[int, dict[int, np.ndarray]] = {}
    palette = None
    for number in sequence.annotated:
        objects, found = sequence.read(number, (height, width))
        palette = palette or found
        for obj, mask in objects.items():
            if mask.any() and obj not in first_seen:
                first_seen[obj] = number
                masks.setdefault(number, {})[obj] = mask
    if not first_seen:
        raise NanoSam2Error(f"sequence {sequence.name}: no object in any annotation of {sequence.annotations}")
    if protocol == "first-frame":
        if sequence.annotated[0] != first_frame:
            raise NanoSam2Error(f"sequence {sequence.name}: no annotation for its first frame "
                                f"{sequence.frame_names[first_frame]}; the first-frame protocol (DAVIS) prompts "
                                "there: give it, or pass --later-objects (MOSE, SA-V)")
        late = sorted((number, obj) for obj, number in first_seen.items() if number != first_frame)
        if late:
            number, obj = late[0]
            raise NanoSam2Error(f"sequence {sequence.name}: object {obj} is absent from the first frame (first on "
                                f"frame {sequence.frame_names[number]}); the first-frame protocol (DAVIS) would score "
                                "it 0: pass --later-objects (MOSE, SA-V: objects join when they appear)")
    return Prompts(masks, sorted(first_seen), palette or davis_palette(), (height, width))


def combine(logits: dict[int, np.ndarray], prompts: Prompts, protocol: str, non_overlap: bool) -> dict[int, np.ndarray]:
    """One frame's masks from the objects' logits, as Meta's tool makes them: on the first-frame protocol the
    tracker's own output (its ``non_overlap_masks`` applied), on the later-objects one the objects' scores
    stacked (-1024 where an object is not tracked yet) and made non-overlapping unless ``non_overlap`` is off."""
    if protocol == "first-frame":
        return {obj: plane > 0 for obj, plane in logits.items()}
    stack = np.full((len(prompts.objects), *prompts.size), ABSENT_LOGIT, np.float32)
    for index, obj in enumerate(prompts.objects):
        if obj in logits:
            stack[index] = logits[obj]
    if non_overlap:
        stack = T.non_overlapping(stack)
    return {obj: stack[index] > 0 for index, obj in enumerate(prompts.objects)}


def video_predictor_tracker(predictor: Any) -> Tracker:
    """The tracker of a torch-free ``VideoPredictor`` (any backend): one pass, objects join when prompted."""
    from nanosam2.inference.frames import Frames

    def track(sequence: VosSequence, masks: dict[int, dict[int, np.ndarray]]) -> Iterator[FrameLogits]:
        frames = Frames(sequence.frames[0][1].parent)
        prompts = {frames.position(number): [{"obj_id": obj, "mask": mask} for obj, mask in objects.items()]
                   for number, objects in masks.items()}
        try:
            for position, obj_ids, logits in predictor.track_stream(iter(frames), prompts, num_frames=len(frames)):
                yield frames.numbers[position], {obj: logits[i, 0] for i, obj in enumerate(obj_ids)}
        finally:
            frames.close()

    return track


def run_id(identity: Any, protocol: str) -> str:
    """16 hex digits for what results depend on besides the annotations: the model and the protocol."""
    payload = json.dumps({"model": identity, "protocol": protocol}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class VosRun:
    output: Path
    sequences: dict[str, dict[str, Any]]  # every sequence in the output's record
    evaluated: list[str]  # this call's
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _earlier(output: Path, run: str, resume: bool) -> dict[str, dict[str, Any]]:
    path = output / RECORD
    if not path.is_file():
        return {}
    record = read_record(path) or {}
    if not isinstance(record.get("sequences"), dict) or not isinstance(record.get(OUTPUT_KEY), dict):
        return {}  # OutputFolder refuses what is not eval-vos's
    if not resume:
        return {}
    if record.get("run") != run:
        raise NanoSam2Error(f"{output} holds results of another model or protocol (run {record.get('run')}, this run "
                            f"{run}); pass --no-resume to replace them, or choose another --output")
    if record["outputs"].get("complete") is False:  # a run stopped while publishing: keep only whole sequences
        return {name: entry for name, entry in record["sequences"].items()
                if sum(1 for _ in (output / name).rglob("*.png")) == entry.get("files")}
    return dict(record["sequences"])


@dataclass
class VosPlan:
    """What an eval-vos run will do, checked before any model loads."""

    sequences: list[VosSequence]
    prompts: dict[str, Prompts]
    digests: dict[str, str]
    protocol: str
    out: OutputFolder
    images: PathLike
    annotations: PathLike

    @property
    def per_object(self) -> bool:
        """The annotations are one PNG an object (SA-V; Meta's ``--per_obj_png_file``), not palette PNGs."""
        return self.sequences[0].per_object

    def tracker_config(self) -> Any:
        """The tracker Meta's ``tools/vos_inference.py`` builds for this layout."""
        from nanosam2.inference.tracker_config import vos_inference_config

        return vos_inference_config(self.per_object)


def plan_vos(images: PathLike, annotations: PathLike, output: PathLike, protocol: str = "first-frame",
             sequences: Iterable[str] | None = None, limit: int | None = None,
             inputs: Iterable[PathLike | None] = ()) -> VosPlan:
    """Open the dataset, read every annotation the protocol needs and check the output folder: each
    refusal comes here, before any model loads."""
    chosen = open_dataset(images, annotations, sequences, limit)
    layouts = {seq.per_object: seq.name for seq in chosen}
    if len(layouts) > 1:
        raise NanoSam2Error(f"sequence {layouts[True]} has one PNG an object (SA-V) and {layouts[False]} one palette PNG a "
                            "frame (DAVIS): one layout a dataset, as Meta's --per_obj_png_file chooses for all")
    prompts = {seq.name: sequence_prompts(seq, protocol) for seq in chosen}
    recorded = read_record(Path(output) / RECORD) or {}
    earlier = recorded.get("sequences") if isinstance(recorded.get("sequences"), dict) else {}
    names = {seq.name for seq in chosen} | set(earlier)
    out = OutputFolder(Path(output), COMMAND, RECORD, folders=tuple(sorted(names)),
                       inputs=(images, annotations, *inputs))
    return VosPlan(chosen, prompts, {seq.name: seq.digest() for seq in chosen}, protocol, out, images, annotations)


def evaluate_vos(plan: VosPlan, tracker: Tracker, identity: Any, resume: bool = True,
                 progress: bool = True, non_overlap: bool | None = None) -> VosRun:
    """Track every planned sequence and publish its masks, a sequence at a time. ``non_overlap``: whether the
    later-objects protocol makes the objects' masks non-overlapping (default: as Meta's tool, unless the
    annotations are one PNG an object)."""
    non_overlap = not plan.per_object if non_overlap is None else non_overlap
    output, protocol, out = plan.out.path, plan.protocol, plan.out
    run = run_id(identity, protocol)
    done = _earlier(output, run, resume)
    for seq in plan.sequences:
        if seq.name in done and done[seq.name].get("annotations") != plan.digests[seq.name]:
            raise NanoSam2Error(f"{output / seq.name}: results for other annotations of sequence {seq.name}; pass "
                                "--no-resume to replace them, or choose another --output")
    todo = [seq for seq in plan.sequences if seq.name not in done]
    if len(todo) < len(plan.sequences):
        logger.info("resuming: %d of %d sequences already in %s", len(plan.sequences) - len(todo),
                    len(plan.sequences), output)
    replace = not resume  # the first sequence of a fresh start replaces the earlier run's files
    iterator: Iterable[VosSequence] = todo
    if progress and todo:
        from nanosam2.utils.lazy_import import require

        iterator = require("tqdm", "progress bars").tqdm(todo, desc="eval-vos", unit="seq")
    frames, start = 0, time.perf_counter()
    for seq in iterator:
        began = time.perf_counter()
        given = plan.prompts[seq.name]
        names_by_number = seq.frame_names
        count = 0
        with out.staging() as stage:
            for number, logits in tracker(seq, given.masks):
                write_prediction(stage / seq.name, seq, names_by_number[number], combine(logits, given, protocol, non_overlap),
                                 given.palette, given.size)
                count += 1
            if count != len(seq.frames):
                raise NanoSam2Error(f"internal: sequence {seq.name}: {count} of {len(seq.frames)} frames tracked")
            files = sum(1 for _ in (stage / seq.name).rglob("*.png"))
            done[seq.name] = {"annotations": plan.digests[seq.name], "frames": count, "files": files,
                              "objects": given.objects, "seconds": round(time.perf_counter() - began, 3)}
            record = {"run": run, "protocol": protocol, "model": identity, "images": str(plan.images),
                      "annotations": str(plan.annotations), "sequences": done}
            out.publish(stage, record, replace=replace)
            replace = False
        frames += count
    return VosRun(output, done, [seq.name for seq in todo], frames, time.perf_counter() - start)
