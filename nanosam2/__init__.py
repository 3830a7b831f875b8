"""nanosam2: SAM2.1 with small distilled image encoders, for edge GPUs.

The package root imports nothing heavy: the torch-free parts (transforms, prompts, COCO
metrics, visualisation) load with numpy and pillow alone. The PyTorch builders are loaded
on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "build_nanosam2": "nanosam2.build",
    "build_teacher": "nanosam2.build",
    "save_student": "nanosam2.build",
    "NanoSam2Predictor": "nanosam2.predictor",
    "create_backbone": "nanosam2.modeling.backbones",
    "list_backbones": "nanosam2.modeling.backbones",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        from nanosam2.utils.lazy_import import require

        require("torch", f"nanosam2.{name}")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nanosam2' has no attribute {name!r}")
