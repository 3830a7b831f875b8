"""Backend selection by file type; the runner interface itself is ``nanosam2.inference.runner``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nanosam2.errors import NanoSam2Error
from nanosam2.inference.runner import Runner

__all__ = ["BACKENDS", "Runner", "backend_for", "open_runner"]

BACKEND_BY_SUFFIX = {".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt", ".onnx": "onnxruntime",
                     ".pt": "torch", ".pth": "torch"}
BACKENDS = ("tensorrt", "onnxruntime", "torch")


def backend_for(path: str | os.PathLike[str], backend: str | None = None) -> str:
    """The backend named by ``backend``, else the one the file's suffix implies."""
    if backend:
        if backend not in BACKENDS:
            raise NanoSam2Error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        return backend
    suffix = Path(path).suffix.lower()
    if suffix not in BACKEND_BY_SUFFIX:
        raise NanoSam2Error(f"cannot tell the backend of {path} from its suffix; pass --backend {'|'.join(BACKENDS)}")
    return BACKEND_BY_SUFFIX[suffix]


def open_runner(path: str | os.PathLike[str], backend: str | None = None, graph: str | None = None,
                **options: Any) -> Runner:
    """Open ``path`` with the right runner (imports only that backend).

    ``graph`` (``image_encoder`` / ``mask_decoder``) tells the PyTorch backend which graph of a
    checkpoint to run; the other backends read it from the file and check it.
    """
    kind = backend_for(path, backend)
    if kind == "onnxruntime":
        from trt_runtime.runners.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, **options)
    if kind == "tensorrt":
        from trt_runtime.runners.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, **options)
    from nanosam2.inference.torch_runner import TorchRunner

    if graph is None:
        raise NanoSam2Error("the PyTorch backend needs to know which graph to run (image_encoder or mask_decoder)")
    return TorchRunner(path, graph=graph, **options)
