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
    UINT8 = 5
    INT64 = 8


# ONNX Runtime's type names -> (the engine's DataType, numpy dtype)
ORT_TYPES = {"tensor(float)": (DataType.FLOAT, np.float32), "tensor(float16)": (DataType.HALF, np.float16),
             "tensor(int32)": (DataType.INT32, np.int32), "tensor(uint8)": (DataType.UINT8, np.uint8),
             "tensor(int64)": (DataType.INT64, np.int64)}


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def engine_bytes(onnx_path: str | Path, profiles: dict[str, list[list[int]]]) -> bytes:
    """A fake engine is self-contained like a real one: header line, then the ONNX bytes."""
    header = json.dumps({"onnx_name": Path(onnx_path).name, "profiles": profiles}).encode()
    return MAGIC + header + b"\n" + Path(onnx_path).read_bytes()


def read_engine_header(data: bytes) -> dict:
    return json.loads(data[len(MAGIC):].split(b"\n", 1)[0])


def write_engine(path: Path, onnx_path: Path, profiles: dict[str, list[list[int]]]) -> Path:
    path.write_bytes(engine_bytes(onnx_path, profiles))
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
        self.transferred = {"htod": 0, "dtoh": 0}

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
        direction = "htod" if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else "dtoh"
        self.transferred[direction] += nbytes  # what would cross the bus on a real GPU
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
            dtype = np.dtype(self.engine.numpy_types[name])
            raw = (ctypes.c_uint8 * (int(np.prod(shape)) * dtype.itemsize)).from_address(self.addresses[name])
            feed[name] = np.frombuffer(raw, dtype).reshape(shape).copy()
        for name, value in zip(self.engine.output_names, self.engine.session.run(self.engine.output_names, feed)):
            value = np.ascontiguousarray(value, self.engine.numpy_types[name])
            ctypes.memmove(self.addresses[name], value.ctypes.data, value.nbytes)

    def execute_async_v3(self, stream_handle):
        if self.engine.cudart.capturing is not None:
            self.engine.cudart.capturing.append(self._run)
        else:
            self._run()
        return True


class FakeEngine:
    def __init__(self, data: bytes, cudart: FakeCudart) -> None:
        import onnxruntime as ort

        spec = read_engine_header(data)
        self.cudart = cudart
        self.session = ort.InferenceSession(data[len(MAGIC):].split(b"\n", 1)[1], providers=["CPUExecutionProvider"])
        self.input_dims = {i.name: list(i.shape) for i in self.session.get_inputs()}
        self.output_dims = {o.name: list(o.shape) for o in self.session.get_outputs()}
        tensors = [*self.session.get_inputs(), *self.session.get_outputs()]
        self.trt_types = {t.name: ORT_TYPES[t.type][0] for t in tensors}
        self.numpy_types = {t.name: ORT_TYPES[t.type][1] for t in tensors}
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
        return self.trt_types[name]

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
                return FakeEngine(bytes(data), fake.cudart)

        self.Runtime = Runtime


# --- builder side -------------------------------------------------------------------------


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name, lo, opt, hi):
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class FakeConfig:
    def __init__(self) -> None:
        self.flags: list[str] = []
        self.pools: dict[str, int] = {}
        self.profiles: list[FakeProfile] = []
        self.builder_optimization_level = 3
        self.int8_calibrator = None
        self.timing_cache = None

    def set_memory_pool_limit(self, pool, size):
        self.pools[pool] = size

    def set_flag(self, flag):
        self.flags.append(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return 0

    def set_calibration_profile(self, profile):
        self.calibration_profile = profile

    def create_timing_cache(self, data):
        return bytes(data) + b"+"

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        cache = self.timing_cache

        class Cache:
            def serialize(self):
                return cache

        return Cache()


class FakeParser:
    def __init__(self, network, logger) -> None:
        self.network, self.errors = network, []

    def parse_from_file(self, path):
        if not Path(path).read_bytes().startswith(b"\x08"):  # ONNX protobufs start with field 1 (ir_version)
            self.errors.append(f"{path}: not ONNX")
            return False
        self.network.onnx = path
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, index):
        return self.errors[index]


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags, self.onnx = flags, None


def make_builder_module(trt: "FakeTensorRT") -> None:
    """Add the builder API to a FakeTensorRT; version 11 lacks the flags TensorRT 11 removed."""
    major = int(trt.__version__.split(".")[0])
    trt.builds = []
    flag_names = ["GPU_FALLBACK", "VERSION_COMPATIBLE"] + (["FP16", "INT8"] if major < 11 else [])
    trt.BuilderFlag = enum.Enum("BuilderFlag", flag_names)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM",
                                                      "DLA_GLOBAL_DRAM", "TACTIC_SHARED_MEMORY"])
    trt.DeviceType = enum.Enum("DeviceType", ["GPU", "DLA"])
    trt.Dims = tuple
    trt.Logger.VERBOSE = 4
    trt.OnnxParser = FakeParser

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger

        def create_network(self, flags):
            return FakeNetwork(flags)

        def create_builder_config(self):
            return FakeConfig()

        def create_optimization_profile(self):
            return FakeProfile()

        def build_serialized_network(self, network, config):
            if config.int8_calibrator is not None:  # calibrate like TensorRT: read cache, else batches
                calibrator = config.int8_calibrator
                if calibrator.read_calibration_cache() is None:
                    names = list(config.profiles[0].shapes)
                    batches = 0
                    while calibrator.get_batch(names) is not None:
                        batches += 1
                    calibrator.write_calibration_cache(f"fake cache: {batches} batches".encode())
            trt.builds.append({"flags": [f.name for f in config.flags], "network_flags": network.flags,
                               "pools": {p.name: v for p, v in config.pools.items()},
                               "level": config.builder_optimization_level})
            return engine_bytes(network.onnx, config.profiles[0].shapes)

    trt.Builder = Builder

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            pass

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
