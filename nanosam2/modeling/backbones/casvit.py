"""CAS-ViT: Convolutional Additive Self-attention Vision Transformer (Zhang et al., 2024).

Written from the paper. Each block is ``x + LocalIntegration(x)``, then
``x + CATM(BN(x))`` (the convolutional additive token mixer), then ``x + MLP(BN(x))``.
CATM replaces softmax attention by an additive one that is linear in the number of tokens
and made only of convolutions, which is what makes it cheap on edge GPUs and friendly to
TensorRT:  ``Q' = C(S(Q)), K' = C(S(K)), out = proj(dwconv(Q' + K') * V)``, with S a
spatial gate (depthwise conv -> 1-channel sigmoid map) and C a channel gate (global pool ->
1x1 conv -> sigmoid).

CAS-ViT-S: embedding dims 48/64/128/256, depths 3/3/6/3, MLP ratio 4, stem of stride 4.
For the feature-pyramid variant each stage output goes through its own BatchNorm.
"""

from __future__ import annotations

import re

from typing import Sequence

import torch
from torch import nn

from nanosam2.modeling.backbones.registry import FeatureInfo, SeedLayout, register_backbone


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample during training."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class SpatialGate(nn.Module):
    """Weights every position by a sigmoid map computed from its 3x3 neighbourhood."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, 1, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ChannelGate(nn.Module):
    """Weights every channel by a sigmoid of the globally pooled features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim, 1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class AdditiveTokenMixer(nn.Module):
    """Convolutional additive self-attention (CATM)."""

    def __init__(self, dim: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.context_q = nn.Sequential(SpatialGate(dim), ChannelGate(dim))
        self.context_k = nn.Sequential(SpatialGate(dim), ChannelGate(dim))
        self.mix = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(self.mix(self.context_q(q) + self.context_k(k)) * v)


class LocalIntegration(nn.Module):
    """Pointwise -> BN -> depthwise 3x3 -> activation -> pointwise: local context before mixing."""

    def __init__(self, dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            act(),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ConvMlp(nn.Module):
    """The transformer MLP as two 1x1 convolutions (no reshapes to token layout)."""

    def __init__(self, dim: int, ratio: float = 4.0, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), act(), nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdditiveBlock(nn.Module):
    """One CAS-ViT block: local integration, additive attention, MLP; each residual."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.local = LocalIntegration(dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = AdditiveTokenMixer(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.local(x)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _conv_bn(in_dim: int, out_dim: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_dim, out_dim, 3, stride=stride, padding=1), nn.BatchNorm2d(out_dim)]


class CASViT(nn.Module):
    """CAS-ViT trunk. ``num_classes=0`` gives the four-level feature pyramid used by nanosam2;
    ``num_classes>0`` adds the ImageNet head, with a second DeiT-style distillation head when
    ``distilled`` (as in the paper's models: its 5.8 M for CAS-ViT-S counts both heads).
    """

    def __init__(
        self,
        dims: Sequence[int] = (48, 64, 128, 256),
        depths: Sequence[int] = (3, 3, 6, 3),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        num_classes: int = 0,
        distilled: bool = True,
    ) -> None:
        super().__init__()
        if len(dims) != 4 or len(depths) != 4:
            raise ValueError("CAS-ViT needs four stages")
        self.stem = nn.Sequential(
            *_conv_bn(3, dims[0] // 2, 2), nn.ReLU(inplace=True), *_conv_bn(dims[0] // 2, dims[0], 2), nn.ReLU(inplace=True)
        )
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.downsamples = nn.ModuleList(
            [nn.Identity()] + [nn.Sequential(*_conv_bn(dims[i - 1], dims[i], 2)) for i in range(1, 4)]
        )
        self.stages = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            offset = sum(depths[:i])
            self.stages.append(nn.Sequential(*[AdditiveBlock(dim, mlp_ratio, rates[offset + j]) for j in range(depth)]))
        self.num_classes = num_classes
        if num_classes > 0:
            self.head_norm = nn.BatchNorm2d(dims[-1])
            self.heads = nn.ModuleList([nn.Linear(dims[-1], num_classes) for _ in range(2 if distilled else 1)])
        else:
            self.out_norms = nn.ModuleList([nn.BatchNorm2d(d) for d in dims])
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for downsample, stage in zip(self.downsamples, self.stages):
            x = stage(downsample(x))
            features.append(x)
        if self.num_classes > 0:
            pooled = self.head_norm(x).mean(dim=(2, 3))
            return torch.stack([head(pooled) for head in self.heads]).mean(dim=0)
        return [norm(f) for norm, f in zip(self.out_norms, features)]


def _seed_network(match: re.Match[str]) -> str:
    """The research code's ``network`` list: stages at 0/2/4/6 (our ``stages.0-3``), downsampling embeddings
    at 1/3/5 (``proj``/``norm``: our ``downsamples.1-3.0/1``)."""
    index = int(match.group(1))
    if index % 2 == 0:
        return f"body.stages.{index // 2}."
    part = {"proj": 0, "norm": 1}[match.group(2)]
    return f"body.downsamples.{(index + 1) // 2}.{part}."


# The research code's casvit.py (RCViT(fork_feat=True)): patch_embed = our stem, network = stages and
# downsamplings, norm0/2/4/6 = our out_norms; inside a block local_perception.network = local.body,
# oper_q/oper_k = context_q/context_k (their gates' block = gate), dwc = mix.
SEED = SeedLayout(markers=("patch_embed.", "network."), renames=(
    (r"^patch_embed\.", "body.stem."),
    (r"^network\.([1357])\.(proj|norm)\.", _seed_network),
    (r"^network\.([0246])\.()", _seed_network),
    (r"^norm([0246])\.", lambda m: f"body.out_norms.{int(m.group(1)) // 2}."),
    (r"\.local_perception\.network\.", ".local.body."),
    (r"\.attn\.oper_([qk])\.([01])\.block\.", r".attn.context_\1.\2.gate."),
    (r"\.attn\.dwc\.", ".attn.mix."),
))


@register_backbone("casvit_s", FeatureInfo(channels=(48, 64, 128, 256), modules=tuple(f"out_norms.{i}" for i in range(4))),
                   seed=SEED)
def casvit_s(pretrained: bool = False) -> nn.Module:
    """CAS-ViT-S (paper: 5.8 M parameters with its ImageNet head)."""
    if pretrained:
        from nanosam2.errors import NanoSam2Error

        raise NanoSam2Error("casvit_s has no bundled ImageNet weights; train from scratch or pass a checkpoint")
    return CASViT(dims=(48, 64, 128, 256), depths=(3, 3, 6, 3))
