"""ResNet-18 from torchvision, cut into four feature levels (ImageNet weights only with ``pretrained=True``,
through torchvision's own download)."""

from __future__ import annotations

import torch
from torch import nn

from nanosam2.modeling.backbones.registry import FeatureInfo, SeedLayout, register_backbone


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


# The research code's resnet.py keeps torchvision's names with the stem apart: conv1/bn1 (our stem.0/.1)
SEED = SeedLayout(markers=("layer1.",),
                  renames=((r"^conv1\.", "body.stem.0."), (r"^bn1\.", "body.stem.1."), (r"^layer", "body.layer")))


@register_backbone("resnet18", FeatureInfo(channels=(64, 128, 256, 512), modules=("layer1", "layer2", "layer3", "layer4")),
                   seed=SEED)
def resnet18(pretrained: bool = False) -> nn.Module:
    """ResNet-18 (11.2 M parameters without the classifier)."""
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as tv_resnet18

    return ResNetFeatures(tv_resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None))
