"""MobileNetV3-Large from torchvision, tapped after the blocks that end each stride (ImageNet weights only with
``pretrained=True``, through torchvision's own download)."""

from __future__ import annotations

import torch
from torch import nn

from nanosam2.modeling.backbones.registry import FeatureInfo, SeedLayout, register_backbone


class MobileNetV3Features(nn.Module):
    """torchvision MobileNetV3 ``features`` with taps after the blocks that end each stride."""

    def __init__(self, features: nn.Sequential, taps: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.features = features[: taps[-1] + 1]
        self.taps = taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in self.taps:
                outputs.append(x)
        return outputs


# The research code's mobilenet.py names torchvision's ``features`` ``base``
SEED = SeedLayout(markers=("base.",), renames=((r"^base\.", "body.features."),))
TAPS = (3, 6, 12, 16)  # torchvision feature blocks that end strides 4, 8, 16, 32


@register_backbone("mobilenet_v3_large", FeatureInfo(channels=(24, 40, 112, 960),
                                                     modules=tuple(f"features.{i}" for i in TAPS)), seed=SEED)
def mobilenet_v3_large(pretrained: bool = False) -> nn.Module:
    """MobileNetV3-Large, taps after torchvision feature blocks 3, 6, 12 and 16."""
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models import mobilenet_v3_large as tv_mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained else None
    return MobileNetV3Features(tv_mobilenet_v3_large(weights=weights).features, taps=TAPS)
