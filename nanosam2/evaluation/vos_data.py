"""Video object segmentation datasets in DAVIS layout, read and written (torch-free).

    IMAGES/<sequence>/<frame>.jpg          the frames (JPEGImages/480p for DAVIS, JPEGImages_24fps for SA-V)
    ANNOTATIONS/<sequence>/<frame>.png     one palette PNG a frame, pixel = object id (DAVIS, MOSE), or
    ANNOTATIONS/<sequence>/<obj>/<frame>.png  one PNG an object and frame, non-zero = the object (SA-V's
                                           Annotations_6fps: every 4th frame annotated)

Annotations may be sparse (SA-V): every annotated frame must be a frame of the sequence, not every
frame needs an annotation. Palette ("P") or greyscale ("L") PNGs only: an RGB(A) mask has colours, not
object ids, and is refused rather than guessed. Predictions are written in the annotations' own layout
with the annotations' palette (DAVIS's when they have none), as Meta's ``tools/vos_inference.py`` does.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from nanosam2.errors import NanoSam2Error

PathLike = str | os.PathLike[str]
MASK_MODES = ("P", "L")  # PNG modes whose pixels are object ids


def davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC colour map (256 RGB triples, flat): id bits spread over the colour bits."""
    palette: list[int] = []
    for index in range(256):
        rgb, code = [0, 0, 0], index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette += rgb
    return palette


def read_mask_png(path: Path) -> tuple[np.ndarray, list[int] | None]:
    """An annotation PNG as (uint8 object ids [H, W], palette or None)."""
    try:
        with Image.open(path) as image:
            mode, palette = image.mode, image.getpalette()
            if mode not in MASK_MODES:
                raise NanoSam2Error(f"{path}: a {mode} image, not a palette or greyscale mask of object ids "
                                    "(DAVIS layout: PNG mode P, pixel = object id)")
            return np.asarray(image, dtype=np.uint8), palette if mode == "P" else None
    except (OSError, SyntaxError) as exc:
        raise NanoSam2Error(f"{path}: not a readable PNG mask ({exc})") from None


def write_mask_png(path: Path, ids: np.ndarray, palette: list[int]) -> None:
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(palette)
    image.save(path, format="PNG")


@dataclass
class VosSequence:
    """One sequence: its frames (number -> JPEG), its annotated frames and how they are stored."""

    name: str
    frames: list[tuple[int, Path]]
    annotations: Path
    per_object: bool  # SA-V layout: a folder per object
    annotated: list[int]  # frame numbers with an annotation, sorted
    objects: list[int]  # per-object layout: the object folders' ids

    @property
    def frame_names(self) -> dict[int, str]:
        return {number: path.stem for number, path in self.frames}

    def files(self) -> list[Path]:
        """Every annotation file, sorted."""
        return sorted(p for p in self.annotations.rglob("*.png") if p.is_file())

    def digest(self) -> str:
        """What the sequence's results depend on besides the model: its annotation files' names and bytes."""
        sha = hashlib.sha256()
        for path in self.files():
            sha.update(str(path.relative_to(self.annotations)).encode() + b"\0" + path.read_bytes())
        return sha.hexdigest()[:16]

    def read(self, number: int, size: tuple[int, int]) -> tuple[dict[int, np.ndarray], list[int] | None]:
        """The annotation of frame ``number``: {object id: bool mask}, and its palette. An object without a
        file for that frame (per-object layout, sparse) is absent."""
        name = self.frame_names[number]
        masks: dict[int, np.ndarray] = {}
        palette = None
        paths = ([(obj, self.annotations / f"{obj:03d}" / f"{name}.png") for obj in self.objects] if self.per_object
                 else [(0, self.annotations / f"{name}.png")])
        for obj, path in paths:
            if not path.is_file():
                continue
            ids, palette = read_mask_png(path)
            if ids.shape != size:
                raise NanoSam2Error(f"{path}: a {ids.shape[1]}x{ids.shape[0]} mask for {size[1]}x{size[0]} frames")
            if self.per_object:
                masks[obj] = ids > 0
            else:
                masks.update({int(i): ids == i for i in np.unique(ids) if i != 0})
        return masks, palette


def _annotated_numbers(folder: Path, frames: dict[int, Path], sequence: str) -> list[int]:
    numbers = []
    for path in sorted(folder.glob("*.png")):
        if not path.stem.isdigit():
            raise NanoSam2Error(f"{path}: an annotation is named by its frame's number (00000.png, ...)")
        number = int(path.stem)
        if number not in frames or frames[number].stem != path.stem:
            raise NanoSam2Error(f"{path}: sequence {sequence} has no frame {path.stem}.jpg for this annotation")
        numbers.append(number)
    return numbers


def open_sequence(images: Path, annotations: Path, name: str) -> VosSequence:
    from nanosam2.inference.frames import jpeg_frames

    frame_dir, ann_dir = images / name, annotations / name
    if not frame_dir.is_dir():
        raise NanoSam2Error(f"sequence {name}: no frame folder {frame_dir}")
    if not ann_dir.is_dir():
        raise NanoSam2Error(f"sequence {name}: no annotation folder {ann_dir}")
    frames = jpeg_frames(frame_dir)
    by_number = dict(frames)
    pngs = sorted(ann_dir.glob("*.png"))
    folders = sorted(p for p in ann_dir.iterdir() if p.is_dir())
    if pngs and folders:
        raise NanoSam2Error(f"{ann_dir}: both frame PNGs and object folders; one layout a sequence (DAVIS: "
                            "<frame>.png, SA-V: <obj>/<frame>.png)")
    objects: list[int] = []
    if folders:
        bad = [p.name for p in folders if not p.name.isdigit()]
        if bad:
            raise NanoSam2Error(f"{ann_dir / bad[0]}: an object folder is named by the object's id (001, ...)")
        objects = [int(p.name) for p in folders]
        names = {obj: p for obj, p in zip(objects, folders)}
        annotated = sorted({n for obj in objects for n in _annotated_numbers(names[obj], by_number, name)})
        if any(f"{obj:03d}" != names[obj].name for obj in objects):
            raise NanoSam2Error(f"{ann_dir}: object folders are named with three digits (001, 002, ...)")
    else:
        annotated = _annotated_numbers(ann_dir, by_number, name)
    if not annotated:
        raise NanoSam2Error(f"sequence {name}: no annotation PNG in {ann_dir}")
    return VosSequence(name, frames, ann_dir, bool(folders), annotated, objects)


def open_dataset(images: PathLike, annotations: PathLike, sequences: Iterable[str] | None = None,
                 limit: int | None = None) -> list[VosSequence]:
    """The sequences to evaluate (every folder of ANNOTATIONS, sorted, or ``sequences`` in that order),
    checked before any work."""
    images, annotations = Path(images), Path(annotations)
    for folder, what in ((images, "frame"), (annotations, "annotation")):
        if not folder.is_dir():
            raise NanoSam2Error(f"no such {what} folder: {folder}")
    names = list(sequences) if sequences else sorted(p.name for p in annotations.iterdir() if p.is_dir())
    if not names:
        raise NanoSam2Error(f"{annotations}: no sequence folders (DAVIS layout: Annotations/<sequence>/<frame>.png)")
    if len(set(names)) != len(names):
        raise NanoSam2Error(f"sequence {next(n for n in names if names.count(n) > 1)} is named twice")
    if limit is not None:
        names = names[:limit]
    return [open_sequence(images, annotations, name) for name in names]


def write_prediction(folder: Path, sequence: VosSequence, frame_name: str, masks: dict[int, np.ndarray],
                     palette: list[int], size: tuple[int, int]) -> None:
    """One frame's masks in the sequence's layout (objects do not overlap: one id a pixel)."""
    if sequence.per_object:
        for obj in sequence.objects:
            target = folder / f"{obj:03d}"
            target.mkdir(parents=True, exist_ok=True)
            plane = masks.get(obj, np.zeros(size, bool))
            write_mask_png(target / f"{frame_name}.png", plane.astype(np.uint8) * obj, palette)
        return
    ids = np.zeros(size, np.uint8)
    for obj in sorted(masks, reverse=True):  # the smaller id on top where masks overlap (Meta's rule)
        ids[masks[obj]] = obj
    folder.mkdir(parents=True, exist_ok=True)
    write_mask_png(folder / f"{frame_name}.png", ids, palette)
