"""Student backbones: one module each in this package, registered when the package is imported (every module
but the registry is imported here, so adding a backbone is adding its module)."""

import importlib
import pkgutil

from nanosam2.modeling.backbones.registry import (
    BackboneSpec,
    FeatureInfo,
    SeedLayout,
    UnknownBackboneError,
    all_specs,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BackboneSpec",
    "FeatureInfo",
    "SeedLayout",
    "UnknownBackboneError",
    "all_specs",
    "create_backbone",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
]
