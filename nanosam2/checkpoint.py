"""Checkpoint files in Meta's SAM2 format (``{"model": state_dict, ...}``), loaded strictly.

A nanosam2 student checkpoint is one self-contained file: the full SAM2 model state (student
encoder plus the SAM heads copied from the teacher) and the config it was built from, so
inference never needs the teacher file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from nanosam2.errors import CheckpointError
from nanosam2.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "image_encoder."
NOT_CHECKPOINTS = {".onnx": "an ONNX graph", ".engine": "a TensorRT engine", ".plan": "a TensorRT engine",
                   ".trt": "a TensorRT engine"}
ZIP_MAGIC, PICKLE_PROTOCOL = b"PK\x03\x04", b"\x80"  # how a torch.save file starts (zip; a pre-1.6 pickle)


def _preview(keys: Iterable[str], limit: int = 4) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``); it must hold a ``model`` state dict."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    kind = NOT_CHECKPOINTS.get(file.suffix.lower())
    if kind:
        raise CheckpointError(f"{file} is {kind}, not a PyTorch checkpoint (.pt/.pth): run it on its own backend "
                              "(leave out --backend torch)")
    with open(file, "rb") as handle:
        head = handle.read(16)
    if not head.startswith((ZIP_MAGIC, PICKLE_PROTOCOL)):  # torch.save writes a zip; before torch 1.6, a pickle
        shown = "" if not head else head.decode("ascii", "replace") if head.isascii() else head.hex(" ")
        raise CheckpointError(f"{file} is not a PyTorch checkpoint: neither a zip archive nor a pickle "
                              + (f"(it begins {shown!r})" if head else "(it is empty)"))
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zips, random bytes ...
        text = str(exc)
        reason = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(exc).__name__
        if "Unsupported global" in text:  # torch's advice would be to run the file's code
            reason = "it holds Python objects besides tensors, which nanosam2 never unpickles (weights_only=True)"
        elif "weights_only" in text or "Weights only" in text:  # anything else torch's safe unpickler stopped at
            reason = "its pickle is damaged (torch's safe unpickler stopped inside it)"
        raise CheckpointError(f"{file} is not a readable PyTorch checkpoint: {reason}") from None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("model"), Mapping):
        found = sorted(payload)[:6] if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{file} is not a SAM2/nanosam2 checkpoint: expected a dict with a 'model' state dict, found {found}"
        )
    return dict(payload)


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(strict=True)`` with a one-line error naming missing/unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_preview(mismatched, 2)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def copy_heads_from_teacher(student: nn.Module, teacher_state: Mapping[str, torch.Tensor], source: str) -> int:
    """Copy every non-image-encoder weight (prompt encoder, mask decoder, memory modules,
    ``no_mem_embed`` ...) from a SAM2 teacher state dict into ``student``; returns the count."""
    heads = {k: v for k, v in teacher_state.items() if not k.startswith(ENCODER_PREFIX)}
    student_heads = {k for k in student.state_dict() if not k.startswith(ENCODER_PREFIX)}
    missing = sorted(student_heads - heads.keys())
    unexpected = sorted(heads.keys() - student_heads)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} is not a SAM2.1 checkpoint the student can take its heads from: "
            f"missing keys {_preview(missing)}; unexpected keys {_preview(unexpected)}"
        )
    result = student.load_state_dict(heads, strict=False)
    assert not result.unexpected_keys
    return len(heads)


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, **extra: Any) -> Path:
    """Save ``{"model": state_dict, **extra}`` atomically (temporary name, then rename)."""
    payload = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    logger.info("saved checkpoint %s", path)
    return Path(path)


def state_digest(module: Any) -> str:
    """SHA-256 of every parameter and buffer of ``module``, bit for bit: equal digests mean equal
    weights. Recorded in exported graphs (``weights_sha256``) and checked across DDP ranks."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
