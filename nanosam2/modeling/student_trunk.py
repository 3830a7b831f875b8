"""A registered student backbone dressed as SAM2's Hiera trunk.

SAM2's ``ImageEncoder`` asks its trunk for ``channel_list`` (lowest resolution first) and
a forward pass returning the feature maps highest resolution first; the ``FpnNeck`` then
projects them to 256 channels. This adapter gives any registered backbone that contract.
"""

from __future__ import annotations

import torch
from torch import nn

from nanosam2.modeling.backbones import create_backbone, get_backbone_spec


class StudentTrunk(nn.Module):
    """Drop-in replacement for ``sam2.modeling.backbones.hieradet.Hiera``."""

    def __init__(self, backbone: str, pretrained: bool = False) -> None:
        super().__init__()
        spec = get_backbone_spec(backbone)
        self.backbone_name = backbone
        self.feature_info = spec.feature_info
        self.channel_list = spec.feature_info.channel_list
        self.body = create_backbone(backbone, pretrained=pretrained)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        if len(features) != 4:
            raise RuntimeError(f"backbone {self.backbone_name} returned {len(features)} levels, expected 4")
        return features
