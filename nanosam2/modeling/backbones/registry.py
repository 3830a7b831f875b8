"""Registry of student backbones, each with its feature contract (timm's ``register_model``).

A backbone maps an image ``[B, 3, H, W]`` to four feature maps, highest resolution first,
at strides 4, 8, 16 and 32 — the layout of SAM2's Hiera trunk, so that SAM2's FpnNeck and
heads work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from nanosam2.errors import NanoSam2Error

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """Channels and strides of the four output levels, highest resolution first."""

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = (4, 8, 16, 32)

    @property
    def channel_list(self) -> list[int]:
        """Channels lowest resolution first: the order of SAM2's ``backbone_channel_list``."""
        return list(reversed(self.channels))


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    factory: Callable[..., "nn.Module"]
    feature_info: FeatureInfo
    description: str


class UnknownBackboneError(NanoSam2Error, ValueError):
    """Raised for a backbone name that is not registered."""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, feature_info: FeatureInfo, description: str = ""):
    """Decorator registering ``factory(pretrained: bool = False) -> nn.Module`` under ``name``."""

    def decorator(factory: Callable[..., "nn.Module"]) -> Callable[..., "nn.Module"]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = BackboneSpec(name, factory, feature_info, description or (factory.__doc__ or "").strip())
        return factory

    return decorator


def list_backbones() -> list[str]:
    """Names of every registered student backbone, sorted."""
    return sorted(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; known backbones: {', '.join(list_backbones())}"
        ) from None


def create_backbone(name: str, pretrained: bool = False) -> "nn.Module":
    """Build backbone ``name``; ``pretrained=True`` loads its ImageNet weights (network needed)."""
    spec = get_backbone_spec(name)
    model = spec.factory(pretrained=pretrained)
    model.feature_info = spec.feature_info  # type: ignore[assignment]
    return model
