"""Checkpoints of the research code this toolkit grows from (urbste/nanosam2), mapped once, here.

Its ``tools/train.py`` saves ``{"model": <SAM2Base state dict>, "optimizer", "best_miou_all",
"epoch"}``. Everything outside the image encoder's trunk has our names; only the trunk's modules
are named differently (read from its model code, ``sam2/modeling/backbones/{resnet,mobilenet}.py``):

- resnet18: ``trunk.conv1`` / ``trunk.bn1`` (our stem's convolution and norm), ``trunk.layerK.*``
  (torchvision's block names, ours under ``trunk.body``);
- mobilenet_v3_large: ``trunk.base.N.*`` = torchvision's ``features.N.*`` (ours ``trunk.body.features``);
- casvit_s: ``patch_embed``, ``network.N``, ``normN`` and block-internal names: recognised (so a
  checkpoint is never loaded into another backbone) but not mapped yet.

A seed QAT checkpoint (torch.ao ``prepare_qat``) adds ``weight_fake_quant`` / ``activation_post_process``
entries: they are dropped and the checkpoint loads as its float weights (said in the log line).
The load stays strict afterwards: a real mismatch still names the keys.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from nanosam2.errors import CheckpointError

logger = logging.getLogger(__name__)

TRUNK = "image_encoder.trunk."
OURS = TRUNK + "body."
# backbone: (seed prefix under the trunk, ours), first match wins
RENAMES: dict[str, list[tuple[str, str]]] = {
    "resnet18": [("conv1.", "body.stem.0."), ("bn1.", "body.stem.1."), ("layer", "body.layer")],
    "mobilenet_v3_large": [("base.", "body.features.")],
}
MARKERS = {"resnet18": ("conv1.", "layer1."), "mobilenet_v3_large": ("base.",),
           "casvit_s": ("patch_embed.", "network.")}  # trunk key prefixes that name a seed layout
QAT_ENTRIES = ("weight_fake_quant", "activation_post_process")


def seed_backbone(state: Mapping[str, Any]) -> str | None:
    """The backbone of a seed checkpoint's state dict (None: not one of the seed's layouts)."""
    trunk = [k[len(TRUNK):] for k in state if k.startswith(TRUNK) and not k.startswith(OURS)]
    for backbone, prefixes in MARKERS.items():
        if any(k.startswith(prefixes) for k in trunk):
            return backbone
    return None


def map_seed_state(state: Mapping[str, Any], backbone: str, source: str) -> dict[str, Any]:
    """``state`` with a seed checkpoint's trunk names mapped to ours for ``backbone`` (any other
    state dict is returned as it is)."""
    found = seed_backbone(state)
    if found is None:
        return dict(state)
    if found != backbone:
        raise CheckpointError(f"{source} is a seed urbste/nanosam2 {found} checkpoint; this model's backbone is "
                              f"{backbone} (build the {found} student, or give a {backbone} checkpoint)")
    if found not in RENAMES:
        raise CheckpointError(f"{source}: seed urbste/nanosam2 {found} checkpoints are recognised but not mapped yet "
                              f"(mapped: {', '.join(RENAMES)})")
    dropped = [k for k in state if any(f".{entry}" in k for entry in QAT_ENTRIES)]
    mapped: dict[str, Any] = {}
    renamed = 0
    for key, value in state.items():
        if key in dropped:
            continue
        if key.startswith(TRUNK) and not key.startswith(OURS):
            rest = key[len(TRUNK):]
            for seed, ours in RENAMES[found]:
                if rest.startswith(seed):
                    rest, renamed = ours + rest[len(seed):], renamed + 1
                    break
            key = TRUNK + rest
        mapped[key] = value
    qat = f"; {len(dropped)} QAT observer entries dropped: loads as its float weights" if dropped else ""
    logger.info("seed urbste/nanosam2 checkpoint: trunk names mapped (%s, %d keys)%s", found, renamed, qat)
    return mapped
