"""Registry of student backbones, each with its feature contract (timm's ``register_model``).

A backbone maps an image ``[B, 3, H, W]`` to four feature maps, highest resolution first,
at strides 4, 8, 16 and 32 — the layout of SAM2's Hiera trunk, so that SAM2's FpnNeck and
heads work unchanged. A backbone is one module of this package (found and imported by the
package itself): its ``@register_backbone`` carries everything the rest of the toolkit reads —
the name, the feature taps (channels, strides and the module each comes from, checked when
built), the model input size it is made for, the base SAM2.1 config its student takes its heads
from, and the names the research code's checkpoints give its layers. Configs, command-line
choices, help texts and benchmark lists derive from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from nanosam2.errors import NanoSam2Error

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """Channels, strides and source modules of the four output levels, highest resolution first (timm's
    ``FeatureInfo``): ``modules`` name the submodule whose output each level is; the build checks they exist."""

    channels: tuple[int, int, int, int]
    modules: tuple[str, str, str, str]
    strides: tuple[int, int, int, int] = (4, 8, 16, 32)

    @property
    def channel_list(self) -> list[int]:
        """Channels lowest resolution first: the order of SAM2's ``backbone_channel_list``."""
        return list(reversed(self.channels))


@dataclass(frozen=True)
class SeedLayout:
    """How the research code (urbste/nanosam2) names this backbone's trunk in its checkpoints: ``markers``,
    key prefixes under ``image_encoder.trunk.`` that must all be there to recognise its layout, and ``renames``,
    (pattern, replacement) over the key under the trunk, applied in order, each at most once."""

    markers: tuple[str, ...]
    renames: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    factory: Callable[..., "nn.Module"]
    feature_info: FeatureInfo
    description: str
    seed: SeedLayout | None = None  # the research code's names for it (None: it has none)
    image_size: int = 1024  # the model input side it is made for (SAM2.1's)
    base_config: str = "configs/sam2.1/sam2.1_hiera_s.yaml"  # Meta's config whose heads its student keeps

    @property
    def our_markers(self) -> tuple[str, ...]:
        """Key prefixes under ``image_encoder.trunk.body.`` that name this backbone in our checkpoints: the
        container of its first feature tap."""
        return (self.feature_info.modules[0].split(".")[0] + ".",)


class UnknownBackboneError(NanoSam2Error, ValueError):
    """Raised for a backbone name that is not registered."""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, feature_info: FeatureInfo, description: str = "", seed: SeedLayout | None = None,
                      image_size: int = 1024, base_config: str = "configs/sam2.1/sam2.1_hiera_s.yaml"):
    """Decorator registering ``factory(pretrained: bool = False) -> nn.Module`` under ``name``."""

    def decorator(factory: Callable[..., "nn.Module"]) -> Callable[..., "nn.Module"]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = BackboneSpec(name, factory, feature_info, description or (factory.__doc__ or "").strip(),
                                       seed, image_size, base_config)
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
    known = dict(model.named_modules())
    missing = [module for module in spec.feature_info.modules if module not in known]
    if missing:
        raise ValueError(f"backbone {name!r}: its feature taps name modules it does not have: {', '.join(missing)}")
    model.feature_info = spec.feature_info  # type: ignore[assignment]
    return model


def all_specs() -> list[BackboneSpec]:
    """Every registered backbone, by name."""
    return [_REGISTRY[name] for name in list_backbones()]
