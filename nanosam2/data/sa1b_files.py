"""SA-1B chunk folders on disk: which images to use, chosen reproducibly (torch-free).

Layout as downloaded: ``ROOT/sa_000000/sa_1.jpg`` (with ``sa_1.json`` beside each image),
or the images directly in ROOT. Chunks are chosen on the command line, never in code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import positive_int


def find_images(root: str | os.PathLike[str], chunks: Iterable[str] | None = None) -> list[Path]:
    """Sorted ``sa_*.jpg`` files of the chosen chunk folders (all of ``root`` by default).

    A chunk is a folder name under ``root`` or a path of its own.
    """
    base = Path(root)
    if not base.is_dir():
        raise NanoSam2Error(f"no such image folder: {base}")
    chunks = list(chunks) if chunks else None
    folders = [base / c for c in chunks] if chunks else [base, *sorted(p for p in base.glob("sa_*") if p.is_dir())]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise NanoSam2Error(f"chunk folder(s) not found: {', '.join(missing)}")
    files = sorted({p for folder in folders for p in folder.glob("sa_*.jpg")})
    if not files:
        raise NanoSam2Error(f"no sa_*.jpg images under {base}" + (f" in chunks {', '.join(chunks)}" if chunks else ""))
    return files


def read_chunk_list(path: str | os.PathLike[str]) -> list[str]:
    """Chunk names or paths, one per line (# comments allowed)."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def parse_chunks(value: str | None) -> list[str] | None:
    """``--chunks``: a comma-separated list (``sa_000000,sa_000001``) or a text file of them."""
    if not value:
        return None
    if os.path.isfile(value):
        return read_chunk_list(value)
    return [c.strip() for c in value.split(",") if c.strip()]


def select_subset(files: list[Path], count: int | None, seed: int) -> list[Path]:
    """``count`` files drawn without replacement by ``seed`` (all when None), in sorted order,
    so the same flags give the same subset on every machine and every rank."""
    if count is None or count >= len(files):
        return list(files)
    if count <= 0:
        raise NanoSam2Error(f"--num-images must be positive, got {count}")
    keep = np.sort(np.random.default_rng(seed).choice(len(files), size=count, replace=False))
    return [files[int(i)] for i in keep]


def add_image_arguments(parser: argparse._ActionsContainer, num_images_default: int | None = None) -> None:
    """The flags every SA-1B consumer shares: ``--images``, ``--chunks``, ``--num-images``."""
    parser.add_argument("--images", required=True,
                        help="SA-1B root holding chunk folders sa_XXXXXX/ (or the images directly)")
    parser.add_argument("--chunks", help="chunk folders to use: comma-separated names (sa_000000,sa_000001) "
                                         "or a text file with one name or path per line (default: all)")
    parser.add_argument("--num-images", type=positive_int, default=num_images_default,
                        help="use a reproducible random subset of this many images (default: "
                             + ("all" if num_images_default is None else str(num_images_default)) + ")")
