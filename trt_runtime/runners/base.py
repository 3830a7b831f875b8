"""The runner interface shared by every backend, and backend selection by file type."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error

BACKEND_BY_SUFFIX = {".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt", ".onnx": "onnxruntime",
                     ".pt": "torch", ".pth": "torch"}
BACKENDS = ("tensorrt", "onnxruntime", "torch")


class Runner(abc.ABC):
    """Runs one graph. Use as a context manager; ``infer`` maps input names to arrays."""

    backend: str = ""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else Path("<in-memory model>")
        if path is not None and not self.path.is_file():
            raise NanoSam2Error(f"no such file: {self.path}")
        self.contract: GraphContract
        self._inputs: list[str] = []
        self._outputs: list[str] = []

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    @abc.abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; returns host float32 arrays keyed by output name."""

    def max_batch(self) -> int | None:
        """Largest prompt/image batch one call accepts (an engine profile's max), None if unbounded."""
        return None

    def close(self) -> None:
        """Release sessions, buffers and streams."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in self.input_names if n not in feed]
        if missing:
            raise NanoSam2Error(f"{self.path.name}: missing inputs {missing}; the graph takes {self.input_names}")


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
    from trt_runtime.runners.torch_runner import TorchRunner

    if graph is None:
        raise NanoSam2Error("the PyTorch backend needs to know which graph to run (image_encoder or mask_decoder)")
    return TorchRunner(path, graph=graph, **options)
