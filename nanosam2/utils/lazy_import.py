"""Import heavy optional dependencies on first use, with the fix in the error message.

Mirrors Polygraphy's ``mod.lazy_import``: the Jetson runtime must work with numpy,
pillow, tensorrt and cuda-python only, so nothing imports torch or onnxruntime at module
load time.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nanosam2.errors import MissingDependencyError

# module -> pip extra of nanosam2 that provides it
_EXTRA_FOR = {
    "torch": "train",
    "torchvision": "train",
    "sam2": "train",
    "hydra": "train",
    "onnx": "export",
    "onnxruntime": "export",
    "onnxsim": "export",
    "onnxslim": "export",
    "pycocotools": "eval",
    "tensorrt": "trt",
    "tensorrt_rtx": "rtx",
    "tensorrt_rtx_bindings": "rtx",
    "cuda": "trt",
    "matplotlib": "plot",
    "tqdm": "eval",
    "scipy": "masks",
    "av": "video",
    "modelopt": "qat",
    "tensorboard": "train",
    "vos_benchmark": "vos",
    "cv2": "vos",
    "skimage": "vos",
    "tritonclient": "serve",
    "pytriton": "serve",
}


def install_hint(module: str) -> str:
    """``pip install 'nanosam2[extra]'`` for a module an extra provides, else ``pip install NAME``."""
    top = module.split(".")[0]
    extra = _EXTRA_FOR.get(top)
    if top == "pytriton":  # it declares numpy<2: installed on its own, without its dependencies
        return "pip install 'nanosam2[serve]' && pip install --no-deps -r requirements/serve.txt"
    return f"pip install 'nanosam2[{extra}]'" if extra else f"pip install {top}"


def missing_dependency_message(exc: ImportError) -> str:
    """One line for an ImportError that escaped to a command line: what is missing and the fix."""
    if isinstance(exc, MissingDependencyError):
        return str(exc).splitlines()[0]
    name = getattr(exc, "name", None) or str(exc).split("'")[1 if "'" in str(exc) else 0]
    return f"{name} is not installed: {install_hint(name)}"


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    hint = install_hint(module)
    why = f" (needed for {purpose})" if purpose else ""
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is not installed{why}: {hint}  [{exc}]") from exc
    if getattr(imported, "__file__", None) is None:
        # A folder without __init__.py imports as an empty namespace package: type stubs
        # (tensorrt-stubs installs tensorrt/__init__.pyi) are not the library.
        raise MissingDependencyError(f"{module} is not installed{why} (only type stubs were found): {hint}")
    return imported
