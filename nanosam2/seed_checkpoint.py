"""Checkpoints of the research code this toolkit grows from (urbste/nanosam2), mapped once, here.

Its ``tools/train.py`` saves ``{"model": <SAM2Base state dict>, "optimizer", "best_miou_all",
"epoch"}``. Everything outside the image encoder's trunk has our names; only the trunk's modules
are named differently (read from its model code, ``sam2/modeling/backbones/{resnet,mobilenet}.py``):

- resnet18: ``trunk.conv1`` / ``trunk.bn1`` (our stem's convolution and norm), ``trunk.layerK.*``
  (torchvision's block names, ours under ``trunk.body``);
- mobilenet_v3_large: ``trunk.base.N.*`` = torchvision's ``features.N.*`` (ours ``trunk.body.features``);
- casvit_s (its ``casvit.py``, ``RCViT(fork_feat=True)``): ``patch_embed`` = our ``stem``; ``network`` holds
  the stages at 0/2/4/6 (ours ``stages.0-3``) and the downsampling embeddings at 1/3/5 (``proj``/``norm``;
  ours ``downsamples.1-3.0/1``); ``norm0/2/4/6`` = our ``out_norms.0-3``; inside a block
  ``local_perception.network`` = ``local.body``, ``oper_q``/``oper_k`` = ``context_q``/``context_k`` (their
  gates' ``block`` = ``gate``), ``dwc`` = ``mix``; the rest (norm1/2, qkv, proj, mlp.fc1/fc2) is named alike.

A seed QAT checkpoint (torch.ao ``prepare_qat``) adds ``weight_fake_quant`` / ``activation_post_process``
entries: they are dropped and the checkpoint loads as its float weights (said in the log line).
The load stays strict afterwards: a real mismatch still names the keys.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Mapping

from nanosam2.errors import CheckpointError

logger = logging.getLogger(__name__)

TRUNK = "image_encoder.trunk."
OURS = TRUNK + "body."


def _casvit_network(match: re.Match[str]) -> str:
    index = int(match.group(1))
    if index % 2 == 0:
        return f"body.stages.{index // 2}."
    part = {"proj": 0, "norm": 1}[match.group(2)]
    return f"body.downsamples.{(index + 1) // 2}.{part}."


# backbone: (pattern, replacement) over the key under the trunk, applied in order, each at most once
RENAMES: dict[str, list[tuple[str, str | Callable[[re.Match[str]], str]]]] = {
    "resnet18": [(r"^conv1\.", "body.stem.0."), (r"^bn1\.", "body.stem.1."), (r"^layer", "body.layer")],
    "mobilenet_v3_large": [(r"^base\.", "body.features.")],
    "casvit_s": [
        (r"^patch_embed\.", "body.stem."),
        (r"^network\.([1357])\.(proj|norm)\.", _casvit_network),
        (r"^network\.([0246])\.()", _casvit_network),
        (r"^norm([0246])\.", lambda m: f"body.out_norms.{int(m.group(1)) // 2}."),
        (r"\.local_perception\.network\.", ".local.body."),
        (r"\.attn\.oper_([qk])\.([01])\.block\.", r".attn.context_\1.\2.gate."),
        (r"\.attn\.dwc\.", ".attn.mix."),
    ],
}
# Trunk key prefixes that name a layout; a layout is recognised only when every one of its prefixes is
# there (Meta's Hiera trunk has a patch_embed too, but no network).
MARKERS = {"resnet18": ("layer1.",), "mobilenet_v3_large": ("base.",),
           "casvit_s": ("patch_embed.", "network.")}
OUR_MARKERS = {"resnet18": ("layer1.",), "mobilenet_v3_large": ("features.",),
               "casvit_s": ("stages.", "downsamples.")}  # ours, under trunk.body
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
    return _layout(trunk, MARKERS)


def checkpoint_backbone(state: Mapping[str, Any]) -> str | None:
    """What trunk a state dict holds, by its names: ``resnet18`` ... (ours or the seed's), ``hiera_t``
    ... (Meta's SAM2.1), or None (no image-encoder trunk this toolkit knows)."""
    trunk = [k[len(TRUNK):] for k in state if k.startswith(TRUNK)]
    if _layout(trunk, {"hiera": HIERA_MARKERS}):
        blocks = {int(k.split(".")[1]) for k in trunk if k.startswith("blocks.") and k.split(".")[1].isdigit()}
        return HIERA_BLOCKS.get(len(blocks), "hiera")
    ours = [k[len("body."):] for k in trunk if k.startswith("body.")]
    return _layout(ours, OUR_MARKERS) or seed_backbone(state)


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
    dropped = [k for k in state if any(f".{entry}" in k for entry in QAT_ENTRIES)]
    mapped: dict[str, Any] = {}
    renamed = 0
    for key, value in state.items():
        if key in dropped:
            continue
        if key.startswith(TRUNK) and not key.startswith(OURS):
            rest = key[len(TRUNK):]
            for pattern, replacement in RENAMES[found]:
                rest = re.sub(pattern, replacement, rest, count=1)
            renamed += 1
            key = TRUNK + rest
        mapped[key] = value
    qat = f"; {len(dropped)} QAT observer entries dropped: loads as its float weights" if dropped else ""
    logger.info("seed urbste/nanosam2 checkpoint: trunk names mapped (%s, %d keys)%s", found, renamed, qat)
    return mapped
