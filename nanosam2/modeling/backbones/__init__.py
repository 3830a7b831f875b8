"""Student backbones. Importing this package registers every backbone."""

from nanosam2.modeling.backbones import casvit, torchvision_backbones  # noqa: F401  (registration)
from nanosam2.modeling.backbones.registry import (
    FeatureInfo,
    UnknownBackboneError,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)

__all__ = [
    "FeatureInfo",
    "UnknownBackboneError",
    "create_backbone",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
]
