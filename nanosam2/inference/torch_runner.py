"""PyTorch backend: the same two graphs the exporter writes, run eagerly or torch.compile'd.

Loads a nanosam2 student checkpoint (its config is inside), or a Meta SAM2.1 checkpoint with
``config="sam2.1_hiera_s"``, or takes an in-memory model (training's validation).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.device import DeviceArray, DeviceBuffer, to_host
from nanosam2.utils.lazy_import import require
from nanosam2.utils.torch_device import resolve_device
from nanosam2.inference.runner import Runner

DTYPES = ("fp32", "fp16", "bf16")


@functools.lru_cache(maxsize=4)
def _load_model(path: str, config: str | None, device: str):
    """Encoder and decoder runners of one checkpoint share one model."""
    return C.resolve(C.TORCH_MODEL_LOADER)(config, path, device)


# Autocast applies to the image graphs; the memory graphs and pre/post-processing run in float32 (the memory
# encoder rounds to bfloat16 itself), and their records say so.
AUTOCAST_GRAPHS = (C.ENCODER, C.DECODER)


class TorchRunner(Runner):
    """Runs ``ImageEncoderGraph`` or ``MaskDecoderGraph`` of a SAM2 model in PyTorch."""

    backend = "torch"

    def __init__(self, path: str | os.PathLike[str] | None = None, graph: str = C.ENCODER, *, model: Any = None,
                 config: str | None = None, device: str | None = None, dtype: str = "fp32",
                 compile: bool = False) -> None:
        super().__init__(path)
        torch = require("torch", "the PyTorch backend")
        graph_contract = C.resolve(C.TORCH_GRAPH_CONTRACT)  # model code by the table's import paths
        if dtype not in DTYPES:
            raise NanoSam2Error(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        self.device = resolve_device(device)
        self.compiled = compile
        if model is None:
            if path is None:
                raise NanoSam2Error("TorchRunner needs a checkpoint path or a model")
            model = _load_model(str(path), config, str(self.device))
        spec = getattr(model, "nanosam2_spec", None)
        backbone = spec["trunk"]["backbone"] if spec else (config or "sam2.1")
        if graph not in C.GRAPH_IO:
            raise NanoSam2Error(f"unknown graph {graph!r}; choose from {', '.join(C.GRAPHS)}")
        network = C.GRAPH_SPECS[graph].weights
        autocast = graph in AUTOCAST_GRAPHS
        # pre/post-processing graphs have no weights of their own: no hash of the model for them
        self.contract = graph_contract(graph, model, backbone, precision=dtype if autocast else "fp32",
                                       weights_sha256=None if network else "")
        module = C.resolve(C.GRAPH_SPECS[graph].module)(model).to(self.device).eval()
        self.module = torch.compile(module, dynamic=graph != C.ENCODER) if compile else module
        # Autocast applies to the network graphs; pre/post-processing stays in float32 (exact resampling).
        self.autocast_dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype] if autocast else None
        self._inputs, self._outputs = (list(names) for names in C.GRAPH_IO[graph])
        self._torch = torch

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "device": self.device.type, "compile": self.compiled}

    def to_device(self, name: str, array: np.ndarray) -> DeviceArray:
        tensor = self._torch.from_numpy(np.ascontiguousarray(array, dtype=self.input_dtype(name))).to(self.device)
        return self._wrap(tensor)

    def new_buffer(self, name: str, shape: tuple[int, ...]) -> DeviceBuffer:
        dtype = getattr(self._torch, np.dtype(self.input_dtype(name)).name)
        tensor = self._torch.empty(shape, dtype=dtype, device=self.device)
        buffer = DeviceBuffer(tensor, tuple(tensor.shape), np.dtype(str(tensor.dtype).removeprefix("torch.")),
                              self.backend, lambda: tensor.cpu().numpy(), str(self.device))

        def release() -> None:  # torch's caching allocator takes the memory back once no tensor refers to it
            buffer.data = None

        buffer.release = release
        return buffer

    def rows(self, buffer: DeviceArray, start: int, count: int) -> DeviceArray:
        self._check_live(buffer)
        return self._wrap(buffer.data[start : start + count])

    def write_rows(self, buffer: DeviceArray, row: int, values: Any) -> None:
        self._check_live(buffer)
        if isinstance(values, DeviceArray) and values.backend == self.backend:
            source = values.data
        else:
            source = self._torch.from_numpy(np.ascontiguousarray(to_host(values)))
        with self._torch.inference_mode():
            buffer.data[row : row + source.shape[0]].copy_(source)

    def _wrap(self, tensor: Any) -> DeviceArray:
        return DeviceArray(tensor, tuple(tensor.shape), np.dtype(str(tensor.dtype).removeprefix("torch.")), self.backend,
                           lambda: tensor.cpu().numpy(), str(self.device))

    def infer_impl(self, feed: dict[str, Any], copy_outputs_to_host: bool = True) -> dict[str, Any]:
        torch = self._torch
        args = [feed[n].data if isinstance(feed[n], DeviceArray) else torch.from_numpy(feed[n]).to(self.device)
                for n in self._inputs]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                                    enabled=self.autocast_dtype is not None):
            outputs = self.module(*args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        # float32 on the way out (autocast may give fp16/bf16): the next graph takes float32
        outputs = tuple(o.float() if o.is_floating_point() else o for o in outputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # stage timings measure the work, not the launch
        if not copy_outputs_to_host:
            return {n: self._wrap(o) for n, o in zip(self._outputs, outputs)}
        return {n: o.cpu().numpy() for n, o in zip(self._outputs, outputs)}
