"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider, chosen by flag."""

from __future__ import annotations

import os

import numpy as np

from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.runner import Runner
from nanosam2.utils.ort_session import PROVIDERS, first_line, open_session

__all__ = ["OnnxRuntimeRunner", "PROVIDERS"]


class OnnxRuntimeRunner(Runner):
    """One ``onnxruntime.InferenceSession`` (docs: onnxruntime.ai/docs/api/python/api_summary.html)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], provider: str = "cpu", threads: int | None = None) -> None:
        super().__init__(path)
        self.session = open_session(self.path, provider, threads, "the ONNX Runtime backend")
        self.provider = provider
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.contract = GraphContract.from_metadata(dict(metadata), str(self.path))
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def identity(self) -> dict:
        return {**super().identity(), "provider": self.provider}

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self.session.run(self._outputs, feed)
        except Exception as exc:
            raise NanoSam2Error(f"{self.path.name}: inference failed: {first_line(exc)}") from None
        return dict(zip(self._outputs, results))

    def close(self) -> None:
        self.session = None
