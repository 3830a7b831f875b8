"""Checkpoints of the research code this toolkit grows from (urbste/nanosam2), recognised and mapped here.

Its ``tools/train.py`` saves ``{"model": <SAM2Base state dict>, "optimizer", "best_miou_all",
"epoch"}``. Everything outside the image encoder's trunk has our names; the trunk's names are each
backbone's own, declared where the backbone is (its ``SeedLayout`` in ``nanosam2/modeling/backbones/<name>.py``:
the prefixes that recognise its layout and the renames to ours). Meta's SAM2.1 Hiera checkpoints are
recognised too (their trunk's depth names the model), so that they are never taken for a student's.

A seed QAT checkpoint (torch.ao ``prepare_qat``) adds ``weight_fake_quant`` / ``activation_post_process``
entries: they are dropped and the checkpoint loads as its float weights (said in the log line).
The load stays strict afterwards: a real mismatch still names the keys.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

from nanosam2.errors import CheckpointError

logger = logging.getLogger(__name__)

TRUNK = "image_encoder.trunk."
OURS = TRUNK + "body."


def _layouts() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple], dict[str, tuple[str, ...]]]:
    """The research code's markers and renames, and our own markers, of every registered backbone."""
    from nanosam2.modeling.backbones import all_specs

    specs = all_specs()
    return ({s.name: s.seed.markers for s in specs if s.seed}, {s.name: s.seed.renames for s in specs if s.seed},
            {s.name: s.our_markers for s in specs})


HIERA_MARKERS = ("blocks.", "pos_embed")  # Meta's SAM2.1 Hiera trunk
HIERA_BLOCKS = {12: "hiera_t", 16: "hiera_s", 24: "hiera_b+", 48: "hiera_l"}  # its depth names the model
QAT_ENTRIES = ("weight_fake_quant", "activation_post_process")


def _layout(keys: list[str], markers: dict[str, tuple[str, ...]]) -> str | None:
    for backbone, prefixes in markers.items():
        if all(any(k.startswith(prefix) for k in keys) for prefix in prefixes):
            return backbone
    return None


def seed_backbone(state: Mapping[str, Any]) -> str | None:
    """The backbone of a seed checkpoint's state dict (None: not one of the seed's layouts)."""
    trunk = [k[len(TRUNK):] for k in state if k.startswith(TRUNK) and not k.startswith(OURS)]
    if _layout(trunk, {"hiera": HIERA_MARKERS}):
        return None
    return _layout(trunk, _layouts()[0])


def checkpoint_backbone(state: Mapping[str, Any]) -> str | None:
    """What trunk a state dict holds, by its names: ``resnet18`` ... (ours or the seed's), ``hiera_t``
    ... (Meta's SAM2.1), or None (no image-encoder trunk this toolkit knows)."""
    trunk = [k[len(TRUNK):] for k in state if k.startswith(TRUNK)]
    if _layout(trunk, {"hiera": HIERA_MARKERS}):
        blocks = {int(k.split(".")[1]) for k in trunk if k.startswith("blocks.") and k.split(".")[1].isdigit()}
        return HIERA_BLOCKS.get(len(blocks), "hiera")
    ours = [k[len("body."):] for k in trunk if k.startswith("body.")]
    return _layout(ours, _layouts()[2]) or seed_backbone(state)


def check_backbone(state: Mapping[str, Any], backbone: str, source: str) -> None:
    """Refuse a checkpoint whose trunk is another backbone than ``backbone``, naming both."""
    found = checkpoint_backbone(state)
    if found is not None and found != backbone:
        hint = (f"use --backbone {found}, or give a {backbone} checkpoint" if not found.startswith("hiera")
                else f"build it with --backbone {found}; a student takes its heads with --teacher-checkpoint")
        kind = "Meta's SAM2.1" if found.startswith("hiera") else ("a seed urbste/nanosam2" if seed_backbone(state) else "a")
        raise CheckpointError(f"{source} is {kind} {found} checkpoint, not {backbone} ({hint})")


def map_seed_state(state: Mapping[str, Any], backbone: str, source: str) -> dict[str, Any]:
    """``state`` with a seed checkpoint's trunk names mapped to ours for ``backbone`` (any other
    state dict is returned as it is)."""
    found = seed_backbone(state)
    if found is None:
        return dict(state)
    ours = sum(k.startswith(OURS) for k in state)
    if ours:  # a merge would silently pick one of two sets of weights for the same layers
        seeds = sum(k.startswith(TRUNK) and not k.startswith(OURS) for k in state)
        raise CheckpointError(f"{source} holds trunk weights under both nanosam2's names ({ours} keys) and the seed's "
                              f"{found} names ({seeds} keys): keep one set (which is meant is not for nanosam2 to guess)")
    if found != backbone:
        raise CheckpointError(f"{source} is a seed urbste/nanosam2 {found} checkpoint; this model's backbone is "
                              f"{backbone} (build the {found} student, or give a {backbone} checkpoint)")
    renames = _layouts()[1]
    dropped = [k for k in state if any(f".{entry}" in k for entry in QAT_ENTRIES)]
    mapped: dict[str, Any] = {}
    renamed = 0
    for key, value in state.items():
        if key in dropped:
            continue
        if key.startswith(TRUNK) and not key.startswith(OURS):
            rest = key[len(TRUNK):]
            for pattern, replacement in renames[found]:
                rest = re.sub(pattern, replacement, rest, count=1)
            renamed += 1
            key = TRUNK + rest
        mapped[key] = value
    qat = f"; {len(dropped)} QAT observer entries dropped: loads as its float weights" if dropped else ""
    logger.info("seed urbste/nanosam2 checkpoint: trunk names mapped (%s, %d keys)%s", found, renamed, qat)
    return mapped
