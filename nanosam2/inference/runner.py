"""The runner interface every backend implements (Polygraphy's runner, reduced to one call).

It lives in the torch-free core so that training's validation and the deployment runtime
share one predictor; ``trt_runtime`` adds the TensorRT and ONNX Runtime runners.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error


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
