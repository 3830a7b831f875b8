"""CPU stand-ins for ``tensorrt`` and cuda-python's runtime, to test the TensorRT runner here.

A fake engine file names an ONNX graph and its optimisation profile. ``execute_async_v3``
reads the inputs from the device addresses bound with ``set_tensor_address``, runs the graph
in ONNX Runtime and writes the outputs to their bound addresses, so the runner's shapes,
buffers, copies, profile checks and CUDA-graph replay are exercised for real. "Device" and
pinned memory are ctypes buffers; a stream capture records executions and a graph launch
replays them against whatever the buffers hold then, as a real CUDA graph does.
"""

from __future__ import annotations

import ctypes
import enum
import json
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"FAKE-TRT-ENGINE\n"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def write_engine(path: Path, onnx_path: Path, profiles: dict[str, list[list[int]]]) -> Path:
    path.write_bytes(MAGIC + json.dumps({"onnx": str(onnx_path), "profiles": profiles}).encode())
    return path


class FakeCudart:
    """cuda-python's ``runtime`` module: calls return ``(cudaError_t, *values)``."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self) -> None:
        self.buffers: dict[int, Any] = {}
        self.capturing: list | None = None
        self.graph_launches = 0
        self.fail_malloc = False

    ok = cudaError_t.cudaSuccess

    def _alloc(self, nbytes: int):
        if self.fail_malloc:
            return (self.cudaError_t.cudaErrorMemoryAllocation, 0)
        buffer = ctypes.create_string_buffer(nbytes)
        self.buffers[ctypes.addressof(buffer)] = buffer
        return (self.ok, ctypes.addressof(buffer))

    def cudaMalloc(self, nbytes):
        return self._alloc(nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc(nbytes)

    def cudaFree(self, ptr):
        self.buffers.pop(ptr)
        return (self.ok,)

    cudaFreeHost = cudaFree

    def cudaStreamCreate(self):
        return (self.ok, 7)

    def cudaStreamDestroy(self, stream):
        return (self.ok,)

    def cudaStreamSynchronize(self, stream):
        return (self.ok,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)
        return (self.ok,)

    def cudaGetErrorString(self, err):
        return (self.ok, f"fake error {int(err)}".encode())

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing = []
        return (self.ok,)

    def cudaStreamEndCapture(self, stream):
        graph, self.capturing = self.capturing, None
        return (self.ok, graph)

    def cudaGraphInstantiate(self, graph, flags):
        return (self.ok, list(graph))

    def cudaGraphLaunch(self, graph_exec, stream):
        self.graph_launches += 1
        for op in graph_exec:
            op()
        return (self.ok,)

    def cudaGraphExecDestroy(self, graph_exec):
        return (self.ok,)

    def cudaGraphDestroy(self, graph):
        return (self.ok,)


class FakeContext:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.profiles[name]
        if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name in self.engine.input_dims:
            return self.shapes.get(name, tuple(-1 if isinstance(d, str) else d for d in self.engine.input_dims[name]))
        symbols = {}
        for input_name, dims in self.engine.input_dims.items():
            for dim, value in zip(dims, self.shapes.get(input_name, ())):
                if isinstance(dim, str):
                    symbols[dim] = value
        return tuple(symbols.get(d, -1) if isinstance(d, str) else d for d in self.engine.output_dims[name])

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def _run(self) -> None:
        self.executions += 1
        feed = {}
        for name in self.engine.input_dims:
            shape = self.shapes[name]
            count = int(np.prod(shape))
            raw = (ctypes.c_float * count).from_address(self.addresses[name])
            feed[name] = np.frombuffer(raw, np.float32).reshape(shape).copy()
        for name, value in zip(self.engine.output_names, self.engine.session.run(self.engine.output_names, feed)):
            value = np.ascontiguousarray(value, np.float32)
            ctypes.memmove(self.addresses[name], value.ctypes.data, value.nbytes)

    def execute_async_v3(self, stream_handle):
        if self.engine.cudart.capturing is not None:
            self.engine.cudart.capturing.append(self._run)
        else:
            self._run()
        return True


class FakeEngine:
    def __init__(self, spec: dict, cudart: FakeCudart) -> None:
        import onnxruntime as ort

        self.cudart = cudart
        self.session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
        self.input_dims = {i.name: list(i.shape) for i in self.session.get_inputs()}
        self.output_dims = {o.name: list(o.shape) for o in self.session.get_outputs()}
        self.output_names = list(self.output_dims)
        self.names = list(self.input_dims) + self.output_names
        self.profiles = {name: [tuple(s) for s in spec["profiles"][name]] for name in self.input_dims}
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self):
        return len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name in self.input_dims else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name, profile_index):
        return [list(s) for s in self.profiles[name]]

    def create_execution_context(self):
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


class FakeTensorRT:
    """Stands in for the ``tensorrt`` module."""

    DataType = DataType
    TensorIOMode = TensorIOMode

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    def __init__(self, cudart: FakeCudart, version: str = "10.3.0") -> None:
        self.cudart = cudart
        self.__version__ = version
        self.__file__ = __file__  # a real module has one; a stub-only namespace package does not
        fake = self

        class Runtime:
            def __init__(self, logger) -> None:
                self.logger = logger

            def deserialize_cuda_engine(self, data):
                if not bytes(data).startswith(MAGIC):
                    return None
                return FakeEngine(json.loads(bytes(data)[len(MAGIC):]), fake.cudart)

        self.Runtime = Runtime
