"""ResNet-18 and MobileNetV3-Large from torchvision, cut into four feature levels.

ImageNet weights come through torchvision's own mechanism (downloaded to the torch hub
cache) only when the user asks for ``pretrained=True``; tests and the demo use random init.
"""

from __future__ import annotations

import torch
from torch import nn

from nanosam2.modeling.backbones.registry import FeatureInfo, register_backbone


class ResNetFeatures(nn.Module):
    """torchvision ResNet without pooling and classifier: outputs of layer1..layer4."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]


@register_backbone("resnet18", FeatureInfo(channels=(64, 128, 256, 512)))
def resnet18(pretrained: bool = False) -> nn.Module:
    """ResNet-18 (11.2 M parameters without the classifier)."""
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as tv_resnet18

    return ResNetFeatures(tv_resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None))


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


@register_backbone("mobilenet_v3_large", FeatureInfo(channels=(24, 40, 112, 960)))
def mobilenet_v3_large(pretrained: bool = False) -> nn.Module:
    """MobileNetV3-Large, taps after torchvision feature blocks 3, 6, 12 and 16."""
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models import mobilenet_v3_large as tv_mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained else None
    return MobileNetV3Features(tv_mobilenet_v3_large(weights=weights).features, taps=(3, 6, 12, 16))
