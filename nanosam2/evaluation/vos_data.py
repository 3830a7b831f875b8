"""Video object segmentation datasets in DAVIS layout, read and written (torch-free).

    IMAGES/<sequence>/<frame>.jpg          the frames (JPEGImages/480p for DAVIS, JPEGImages_24fps for SA-V)
    ANNOTATIONS/<sequence>/<frame>.png     one palette PNG a frame, pixel = object id (DAVIS, MOSE), or
    ANNOTATIONS/<sequence>/<obj>/<frame>.png  one PNG an object and frame, non-zero = the object (SA-V's
                                           Annotations_6fps: every 4th frame annotated; objects 000, 001, ...)

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
PREDICTION_RECORD = "eval-vos.json"  # what eval-vos writes beside its predictions (never in ground truth)
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


FrameFiles = dict[str, dict[int | None, Path]]  # frame name -> {object id (None: a palette PNG of every object): PNG}


def layout_files(folder: Path) -> tuple[FrameFiles, list[int]]:
    """A sequence's mask PNGs in either layout (annotations or predictions), and its object folders' ids
    (SA-V layout; [] for palette PNGs). Names must be frame numbers and object ids."""
    pngs = sorted(folder.glob("*.png"))
    folders = sorted(p for p in folder.iterdir() if p.is_dir())
    if pngs and folders:
        raise NanoSam2Error(f"{folder}: both frame PNGs and object folders; one layout a sequence (DAVIS: "
                            "<frame>.png, SA-V: <obj>/<frame>.png)")
    bad = [p.name for p in folders if not (p.name.isdigit() and p.name == f"{int(p.name):03d}")]
    if bad:
        raise NanoSam2Error(f"{folder / bad[0]}: an object folder is named by the object's id, three digits (000, ...)")
    files: FrameFiles = {}
    layout: list[tuple[int | None, list[Path]]] = [(None, pngs)] if not folders else \
        [(int(f.name), sorted(f.glob("*.png"))) for f in folders]
    for obj, paths in layout:
        for path in paths:
            if not path.stem.isdigit():
                raise NanoSam2Error(f"{path}: a mask is named by its frame's number (00000.png, ...)")
            files.setdefault(path.stem, {})[obj] = path
    return files, [int(f.name) for f in folders]


def read_masks(paths: dict[int | None, Path],
               size: tuple[int, int] | None = None) -> tuple[dict[int, np.ndarray], list[int] | None]:
    """One frame's masks {object id: bool mask} and palette, from :func:`layout_files`' entry; ``size``
    (height, width) checked when given."""
    masks: dict[int, np.ndarray] = {}
    palette = None
    for obj, path in paths.items():
        ids, found = read_mask_png(path)
        palette = palette or found
        if size is not None and ids.shape != size:
            raise NanoSam2Error(f"{path}: a {ids.shape[1]}x{ids.shape[0]} mask where {size[1]}x{size[0]} is expected")
        if obj is not None:  # one PNG an object (SA-V: ids from 000), non-zero = the object
            masks[obj] = ids > 0
        else:
            masks.update({int(i): ids == i for i in np.unique(ids) if i != 0})
    return masks, palette


@dataclass
class VosSequence:
    """One sequence: its frames (number -> JPEG), its annotation files and how they are stored."""

    name: str
    frames: list[tuple[int, Path]]
    annotations: Path
    files: FrameFiles  # by frame name
    objects: list[int]  # per-object layout (SA-V): the object folders' ids; [] for palette PNGs

    @property
    def per_object(self) -> bool:
        return bool(self.objects)

    @property
    def frame_names(self) -> dict[int, str]:
        return {number: path.stem for number, path in self.frames}

    @property
    def annotated(self) -> list[int]:
        """Frame numbers with an annotation, sorted."""
        return [number for number, path in self.frames if path.stem in self.files]

    def digest(self) -> str:
        """What the sequence's results depend on besides the model: its annotation files' names and bytes."""
        sha = hashlib.sha256()
        for path in sorted(p for paths in self.files.values() for p in paths.values()):
            sha.update(str(path.relative_to(self.annotations)).encode() + b"\0" + path.read_bytes())
        return sha.hexdigest()[:16]

    def read(self, number: int, size: tuple[int, int]) -> tuple[dict[int, np.ndarray], list[int] | None]:
        """The annotation of frame ``number``: {object id: bool mask}, and its palette. An object without a
        file for that frame (per-object layout, sparse) is absent."""
        return read_masks(self.files.get(self.frame_names[number], {}), size)


def open_sequence(images: Path, annotations: Path, name: str) -> VosSequence:
    from nanosam2.inference.frames import jpeg_frames

    frame_dir, ann_dir = images / name, annotations / name
    if not frame_dir.is_dir():
        raise NanoSam2Error(f"sequence {name}: no frame folder {frame_dir}")
    if not ann_dir.is_dir():
        raise NanoSam2Error(f"sequence {name}: no annotation folder {ann_dir}")
    frames = jpeg_frames(frame_dir)
    files, objects = layout_files(ann_dir)
    stems = {path.stem for _, path in frames}
    for frame_name, paths in sorted(files.items()):
        if frame_name not in stems:
            raise NanoSam2Error(f"{next(iter(paths.values()))}: sequence {name} has no frame {frame_name}.jpg for "
                                "this annotation")
    if not files:
        raise NanoSam2Error(f"sequence {name}: no annotation PNG in {ann_dir}")
    check_sizes(name, [path for _, path in frames] + sorted(p for paths in files.values() for p in paths.values()))
    return VosSequence(name, frames, ann_dir, files, objects)


def check_sizes(name: str, paths: list[Path]) -> None:
    """Every frame and annotation of a sequence has the first frame's size (read from the file headers only:
    a mismatch is found before any model loads, not when tracking reaches it)."""
    from PIL import Image

    first: tuple[int, int] | None = None
    for path in paths:
        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError) as exc:
            raise NanoSam2Error(f"sequence {name}: {path} is not a readable image ({exc})") from None
        if first is None:
            first = size
        elif size != first:
            raise NanoSam2Error(f"sequence {name}: {path} is {size[0]}x{size[1]}, its first frame {paths[0].name} "
                                f"{first[0]}x{first[1]} (a sequence's frames and annotations share one size)")


def sequence_name(text: str) -> str:
    """A sequence as given on a command line: a folder name of ANNOTATIONS (a trailing slash, as shells complete
    it, is dropped); a path is refused."""
    name = text.rstrip("/")
    if not name or "/" in name or name in (".", ".."):
        raise NanoSam2Error(f"--sequences {text!r}: a sequence is the name of a folder in ANNOTATIONS, not a path")
    return name


def open_dataset(images: PathLike, annotations: PathLike, sequences: Iterable[str] | None = None,
                 limit: int | None = None) -> list[VosSequence]:
    """The sequences to evaluate (every folder of ANNOTATIONS, sorted, or ``sequences`` in that order),
    checked before any work."""
    images, annotations = Path(images), Path(annotations)
    for folder, what in ((images, "frame"), (annotations, "annotation")):
        if not folder.is_dir():
            raise NanoSam2Error(f"no such {what} folder: {folder}")
    names = [sequence_name(n) for n in sequences] if sequences else sorted(p.name for p in annotations.iterdir()
                                                                            if p.is_dir())
    if not names:
        raise NanoSam2Error(f"{annotations}: no sequence folders (DAVIS layout: Annotations/<sequence>/<frame>.png)")
    if len(set(names)) != len(names):
        raise NanoSam2Error(f"sequence {next(n for n in names if names.count(n) > 1)} is named twice")
    if limit is not None:
        names = names[:limit]
    return [open_sequence(images, annotations, name) for name in names]


def write_prediction(folder: Path, sequence: VosSequence, frame_name: str, masks: dict[int, np.ndarray],
                     palette: list[int], size: tuple[int, int]) -> None:
    """One frame's masks in the sequence's layout, as Meta's ``tools/vos_inference.py`` writes them: one 0/1 PNG
    an object (SA-V: they may overlap), or one palette PNG of object ids (the smaller id on top where masks
    overlap)."""
    if sequence.per_object:
        for obj in sequence.objects:
            target = folder / f"{obj:03d}"
            target.mkdir(parents=True, exist_ok=True)
            plane = masks.get(obj, np.zeros(size, bool))
            write_mask_png(target / f"{frame_name}.png", plane.astype(np.uint8), palette)
        return
    ids = np.zeros(size, np.uint8)
    for obj in sorted(masks, reverse=True):  # the smaller id on top where masks overlap (Meta's rule)
        ids[masks[obj]] = obj
    folder.mkdir(parents=True, exist_ok=True)
    write_mask_png(folder / f"{frame_name}.png", ids, palette)
