"""What produced a file, at the bottom of the layers (torch-free; nothing here imports a stage above it).

- :func:`file_sha256`: the hash every record uses (engines' ONNX and engine bytes, COCO annotations, a
  runner's identity).
- The engine record ``ENGINE.json`` beside every engine ``engines/build_engine.py`` builds: its path, the
  keys that make it ours, reading it (the runtime), and whether the engine at a path is the one it
  describes (its bytes' hash: only then may a build replace the file).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nanosam2.errors import NanoSam2Error

PathLike = str | os.PathLike[str]
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")  # what every command reads as a TensorRT engine
ENGINE_RECORD_KEYS = ("tensorrt_version", "precision", "onnx_sha256", "engine_sha256")  # build_engine wrote it


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def engine_record_path(engine_path: PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``: build facts and the contract of an engine."""
    return Path(f"{engine_path}.json")


def read_engine_record(engine_path: PathLike) -> dict[str, Any] | None:
    """The record ``engines/build_engine.py`` wrote beside ``engine_path``, or None when there is none."""
    path = engine_record_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise NanoSam2Error(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else None


def is_our_engine(engine_path: PathLike) -> bool:
    """The file at ``engine_path`` is the engine the record beside it describes (by its bytes' hash). A record
    alone proves nothing: a user's file may have been put where an old engine was."""
    engine = Path(engine_path)
    try:
        record = read_engine_record(engine)
    except NanoSam2Error:
        return False
    if record is None or not all(key in record for key in ENGINE_RECORD_KEYS) or not engine.is_file():
        return False
    return record["engine_sha256"] == file_sha256(engine)
