"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider, chosen by flag."""

from __future__ import annotations

import os

from typing import Any

import numpy as np

from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.device import DeviceArray
from nanosam2.inference.runner import Runner
from nanosam2.utils.lazy_import import require
from nanosam2.utils.ort_session import PROVIDERS, first_line, open_session

# OrtValue.data_type() -> numpy
ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}

__all__ = ["OnnxRuntimeRunner", "PROVIDERS"]


class OnnxRuntimeRunner(Runner):
    """One ``onnxruntime.InferenceSession`` (docs: onnxruntime.ai/docs/api/python/api_summary.html).

    Device arrays are ``OrtValue`` s on the provider's device, bound with IOBinding
    (``io_binding``, ``bind_ortvalue_input``, ``bind_cpu_input``, ``bind_output``,
    ``run_with_iobinding``, ``get_outputs``): on the CUDA provider the features of an image stay in
    GPU memory between the encoder and every decoder call."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], provider: str = "cpu", threads: int | None = None) -> None:
        super().__init__(path)
        self.session = open_session(self.path, provider, threads, "the ONNX Runtime backend")
        self.provider = provider
        self.device_type = "cpu" if provider == "cpu" else "cuda"
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.contract = GraphContract.from_metadata(dict(metadata), str(self.path))
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def identity(self) -> dict:
        return {**super().identity(), "provider": self.session.get_providers()[0]}  # what runs it, not what was asked

    def to_device(self, name: str, array: np.ndarray) -> DeviceArray:
        ort = require("onnxruntime", "the ONNX Runtime backend")
        value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, dtype=self.input_dtype(name)),
                                                 self.device_type, 0)
        return self._wrap(value)

    def _wrap(self, value: Any) -> DeviceArray:
        return DeviceArray(value, tuple(value.shape()), np.dtype(ORT_TYPES[value.data_type()]), self.backend, value.numpy,
                           self.device_type)

    def infer_impl(self, feed: dict[str, Any], copy_outputs_to_host: bool = True) -> dict[str, Any]:
        on_device = [name for name, value in feed.items() if isinstance(value, DeviceArray)]
        try:
            if copy_outputs_to_host and not on_device:
                return dict(zip(self._outputs, self.session.run(self._outputs, feed)))
            binding = self.session.io_binding()
            for name, value in feed.items():
                if isinstance(value, DeviceArray):
                    binding.bind_ortvalue_input(name, value.data)
                else:
                    binding.bind_cpu_input(name, value)
            for name in self._outputs:
                binding.bind_output(name, "cpu" if copy_outputs_to_host else self.device_type)
            self.session.run_with_iobinding(binding)
            values = binding.get_outputs()
        except Exception as exc:
            raise NanoSam2Error(f"{self.path.name}: inference failed: {first_line(exc)}") from None
        if copy_outputs_to_host:
            return {name: value.numpy() for name, value in zip(self._outputs, values)}
        return {name: self._wrap(value) for name, value in zip(self._outputs, values)}

    def close(self) -> None:
        self.session = None
