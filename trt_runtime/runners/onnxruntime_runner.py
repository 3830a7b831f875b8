"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider, chosen by flag."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.lazy_import import require
from trt_runtime.runners.base import Runner

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeRunner(Runner):
    """One ``onnxruntime.InferenceSession`` (docs: onnxruntime.ai/docs/api/python/api_summary.html)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], provider: str = "cpu", threads: int | None = None) -> None:
        super().__init__(path)
        ort = require("onnxruntime", "the ONNX Runtime backend")
        if provider not in PROVIDERS:
            raise NanoSam2Error(f"unknown ONNX Runtime provider {provider!r}; choose from {', '.join(PROVIDERS)}")
        available = ort.get_available_providers()
        if PROVIDERS[provider][0] not in available:
            raise NanoSam2Error(f"onnxruntime has no {PROVIDERS[provider][0]} (available: {', '.join(available)}); "
                                "install onnxruntime-gpu for cuda/tensorrt")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=PROVIDERS[provider])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NanoSam2Error(f"{self.path} is not a loadable ONNX model: {first}") from None
        self.provider = provider
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.contract = GraphContract.from_metadata(dict(metadata), str(self.path))
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feed(feed)
        arrays = {name: np.ascontiguousarray(feed[name], dtype=np.float32) for name in self._inputs}
        try:
            results = self.session.run(self._outputs, arrays)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NanoSam2Error(f"{self.path.name}: inference failed: {first}") from None
        return dict(zip(self._outputs, results))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
