"""CPU stand-ins for ``tensorrt`` and cuda-python's runtime, to test the TensorRT runner here.

The fake is for our side of the calls only: every class, method, property and enum member it offers
carries the name the real API has (TensorRT 10: ``tensorrt-stubs``; TensorRT 11 and TensorRT-RTX: the
real TensorRT-RTX bindings), and ``tests/test_tensorrt_api.py`` fails on one that does not. Its own
bookkeeping (what tests look at) starts with an underscore. The other side of the calls, whether
TensorRT accepts our graphs and settings, is tested with the real TensorRT-RTX builder.

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


class EngineValidity(enum.Enum):  # TensorRT-RTX
    VALID = 0
    SUBOPTIMAL = 1
    INVALID = 2


class EngineInvalidityDiagnostics(enum.IntFlag):  # TensorRT-RTX
    VERSION_MISMATCH = 1
    UNSUPPORTED_CC = 2
    OLD_CUDA_DRIVER = 4


class ComputeCapability(enum.Enum):  # TensorRT-RTX
    NONE = 0
    CURRENT = 1
    SM75 = 75
    SM80 = 80
    SM86 = 86
    SM89 = 89
    SM120 = 120


# ONNX Runtime's type names -> (the engine's DataType, numpy dtype)
ORT_TYPES = {"tensor(float)": (DataType.FLOAT, np.float32), "tensor(float16)": (DataType.HALF, np.float16),
             "tensor(int32)": (DataType.INT32, np.int32), "tensor(uint8)": (DataType.UINT8, np.uint8),
             "tensor(int64)": (DataType.INT64, np.int64)}


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def engine_bytes(onnx_path: str | Path, profiles: dict[str, list[list[int]]], targets: list[str] | None = None) -> bytes:
    """A fake engine is self-contained like a real one: header line, then the ONNX bytes. ``targets``:
    the compute capabilities of a TensorRT-RTX engine (None: its default set)."""
    header = json.dumps({"onnx_name": Path(onnx_path).name, "profiles": profiles, "targets": targets}).encode()
    return MAGIC + header + b"\n" + Path(onnx_path).read_bytes()


def read_engine_header(data: bytes) -> dict:
    return json.loads(data[len(MAGIC):].split(b"\n", 1)[0])


def write_engine(path: Path, onnx_path: Path, profiles: dict[str, list[list[int]]], version_compatible: bool = False) -> Path:
    data = engine_bytes(onnx_path, profiles)
    if version_compatible:  # the header records it, as a real plan carries its lean runtime
        header = {**read_engine_header(data), "version_compatible": True}
        data = MAGIC + json.dumps(header).encode() + b"\n" + data.split(b"\n", 2)[2]
    path.write_bytes(data)
    return path


class FakeCudart:
    """cuda-python's ``runtime`` module: calls return ``(cudaError_t, *values)``."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2
        cudaMemcpyDeviceToDevice = 3

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeThreadLocal = 1

    POISON = 0xFF  # freed memory reads as NaN (float32 0xFFFFFFFF) and -1 (integers)

    def __init__(self) -> None:
        self.buffers: dict[int, Any] = {}  # live allocations: address -> ctypes block
        self.capturing: list | None = None
        self.graph_launches = 0
        self.fail_malloc = False
        self.transferred = {"htod": 0, "dtoh": 0, "dtod": 0}
        self._freed: dict[str, list[Any]] = {"device": [], "host": []}  # freed blocks, most recent last
        self._kind: dict[int, str] = {}
        self._reused = 0  # allocations that got a freed address back (tests)

    ok = cudaError_t.cudaSuccess

    def _alloc(self, nbytes: int, kind: str):
        """An allocator as honest as CUDA's: a freed block goes to the next allocation of its size class (it
        fits with less than half of it to spare, as allocators keep blocks in bins by size; the smallest, the
        most recently freed of those first), at the same address, with whatever the freed memory held (poison
        here)."""
        if self.fail_malloc:
            return (self.cudaError_t.cudaErrorMemoryAllocation, 0)
        freed = self._freed[kind]
        fits = [i for i in range(len(freed)) if nbytes <= ctypes.sizeof(freed[i]) < 2 * max(int(nbytes), 1)]
        if fits:
            buffer = freed.pop(min(fits, key=lambda i: (ctypes.sizeof(freed[i]), -i)))
            self._reused += 1
        else:
            buffer = ctypes.create_string_buffer(max(int(nbytes), 1))
        address = ctypes.addressof(buffer)
        self.buffers[address] = buffer
        self._kind[address] = kind
        return (self.ok, address)

    def cudaMalloc(self, nbytes):
        return self._alloc(nbytes, "device")

    def cudaMallocHost(self, nbytes):
        return self._alloc(nbytes, "host")

    def _free(self, ptr, kind: str):
        buffer = self.buffers.get(ptr)
        if buffer is None or self._kind[ptr] != kind:  # a double free, or a pointer CUDA did not hand out
            return (self.cudaError_t.cudaErrorInvalidValue,)
        del self.buffers[ptr]
        ctypes.memset(ptr, self.POISON, ctypes.sizeof(buffer))
        self._freed[kind].append(buffer)
        return (self.ok,)

    def cudaFree(self, ptr):
        return self._free(ptr, "device")

    def cudaFreeHost(self, ptr):
        return self._free(ptr, "host")

    def cudaGetDeviceCount(self):
        return (self.ok, 1)

    def cudaStreamCreate(self):
        return (self.ok, 7)

    def cudaStreamDestroy(self, stream):
        return (self.ok,)

    def cudaStreamSynchronize(self, stream):
        return (self.ok,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)
        direction = {self.cudaMemcpyKind.cudaMemcpyHostToDevice: "htod", self.cudaMemcpyKind.cudaMemcpyDeviceToHost:
                     "dtoh", self.cudaMemcpyKind.cudaMemcpyDeviceToDevice: "dtod"}[kind]
        self.transferred[direction] += nbytes  # htod, dtoh: what would cross the bus on a real GPU
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


class IExecutionContext:
    def __init__(self, engine: "ICudaEngine", runtime_config: "IRuntimeConfig | None" = None) -> None:
        self.engine = engine
        self._runtime_config = runtime_config
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._executions = 0

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine._profiles[name]
        if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
            return False
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        engine = self.engine
        if name in engine._input_dims:
            return self._shapes.get(name, tuple(-1 if isinstance(d, str) else d for d in engine._input_dims[name]))
        symbols = {}
        for input_name, dims in engine._input_dims.items():
            for dim, value in zip(dims, self._shapes.get(input_name, ())):
                if isinstance(dim, str):
                    symbols[dim] = value
        return tuple(symbols.get(d, -1) if isinstance(d, str) else d for d in engine._output_dims[name])

    def set_tensor_address(self, name, address):
        self._addresses[name] = address
        return True

    def _run(self) -> None:
        self._executions += 1
        engine = self.engine
        if self._runtime_config is not None and self._runtime_config._cache is not None:
            self._runtime_config._cache._kernels.add(engine._onnx_name)  # "just-in-time compiled" once
        feed = {}
        for name in engine._input_dims:
            shape = self._shapes[name]
            dtype = np.dtype(engine._numpy_types[name])
            raw = (ctypes.c_uint8 * (int(np.prod(shape)) * dtype.itemsize)).from_address(self._addresses[name])
            feed[name] = np.frombuffer(raw, dtype).reshape(shape).copy()
        for name, value in zip(engine._output_names, engine._session.run(engine._output_names, feed)):
            value = np.ascontiguousarray(value, engine._numpy_types[name])
            ctypes.memmove(self._addresses[name], value.ctypes.data, value.nbytes)

    def execute_async_v3(self, stream_handle):
        if self.engine._cudart.capturing is not None:
            self.engine._cudart.capturing.append(self._run)
        else:
            self._run()
        return True


class IRuntimeCache:  # TensorRT-RTX: kernels compiled just in time, kept between runs
    def __init__(self) -> None:
        self._kernels: set[str] = set()

    def serialize(self):
        return json.dumps(sorted(self._kernels)).encode()

    def deserialize(self, blob):
        try:
            self._kernels = set(json.loads(bytes(blob)))
        except ValueError:
            return False
        return True


class IRuntimeConfig:
    def __init__(self) -> None:
        self._cache: IRuntimeCache | None = None

    def create_runtime_cache(self):
        return IRuntimeCache()

    def set_runtime_cache(self, cache):
        self._cache = cache
        return True


class ICudaEngine:
    def __init__(self, data: bytes, cudart: FakeCudart) -> None:
        import onnxruntime as ort

        spec = read_engine_header(data)
        self._cudart = cudart
        self._onnx_name = spec["onnx_name"]
        self._session = ort.InferenceSession(data[len(MAGIC):].split(b"\n", 1)[1], providers=["CPUExecutionProvider"])
        self._input_dims = {i.name: list(i.shape) for i in self._session.get_inputs()}
        self._output_dims = {o.name: list(o.shape) for o in self._session.get_outputs()}
        tensors = [*self._session.get_inputs(), *self._session.get_outputs()]
        self._trt_types = {t.name: ORT_TYPES[t.type][0] for t in tensors}
        self._numpy_types = {t.name: ORT_TYPES[t.type][1] for t in tensors}
        self._output_names = list(self._output_dims)
        self._names = list(self._input_dims) + self._output_names
        self._profiles = {name: [tuple(s) for s in spec["profiles"][name]] for name in self._input_dims}
        self._contexts: list[IExecutionContext] = []

    @property
    def num_io_tensors(self):
        return len(self._names)

    def get_tensor_name(self, index):
        return self._names[index]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name in self._input_dims else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self._trt_types[name]

    def get_tensor_profile_shape(self, name, profile_index):
        return [list(s) for s in self._profiles[name]]

    def create_execution_context(self, runtime_config=None):
        self._contexts.append(IExecutionContext(self, runtime_config))
        return self._contexts[-1]


class ICudaEngineRTX(ICudaEngine):
    def create_runtime_config(self):
        return IRuntimeConfig()


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity, msg):
        pass


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (ILogger.Severity.INTERNAL_ERROR, ILogger.Severity.ERROR,
                                                     ILogger.Severity.WARNING, ILogger.Severity.INFO,
                                                     ILogger.Severity.VERBOSE)

    def __init__(self, min_severity=ILogger.Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity


class FakeTensorRT:
    """Stands in for the ``tensorrt`` module (``flavour="rtx"``: for TensorRT-RTX's, version 1.x)."""

    DataType = DataType
    TensorIOMode = TensorIOMode
    ILogger = ILogger
    Logger = Logger

    def __init__(self, cudart: FakeCudart, version: str = "10.3.0", flavour: str = "tensorrt",
                 gpu_compute_capability: str = "SM89") -> None:
        self._cudart = cudart
        self._flavour = flavour
        self._gpu = gpu_compute_capability  # what the "GPU" of a TensorRT-RTX validity check is
        self.__version__ = version
        self.__file__ = __file__  # a real module has one; a stub-only namespace package does not
        fake = self
        rtx = flavour == "rtx"

        class Runtime:
            def __init__(self, logger) -> None:
                self._logger = logger
                self.engine_host_code_allowed = False

            def deserialize_cuda_engine(self, data):
                if not bytes(data).startswith(MAGIC):
                    return None
                if read_engine_header(bytes(data)).get("version_compatible") and not self.engine_host_code_allowed:
                    return None  # TensorRT refuses a plan carrying its lean runtime unless host code is allowed
                return (ICudaEngineRTX if rtx else ICudaEngine)(bytes(data), fake._cudart)

        if rtx:
            class RuntimeRTX(Runtime):
                def get_engine_validity(self, buffer):
                    data = bytes(buffer)
                    if not data.startswith(MAGIC):
                        return EngineValidity.INVALID, EngineInvalidityDiagnostics(0)
                    targets = read_engine_header(data).get("targets")
                    if targets and fake._gpu not in targets and "CURRENT" not in targets:
                        return EngineValidity.INVALID, EngineInvalidityDiagnostics.UNSUPPORTED_CC
                    return EngineValidity.VALID, EngineInvalidityDiagnostics(0)

            RuntimeRTX.__name__ = "Runtime"
            self.Runtime = RuntimeRTX
            self.EngineValidity = EngineValidity
            self.EngineInvalidityDiagnostics = EngineInvalidityDiagnostics
            self.ComputeCapability = ComputeCapability
        else:
            self.Runtime = Runtime


# --- builder side -------------------------------------------------------------------------


class IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 (the real API's parameter names)
        self._shapes[name] = [list(min), list(opt), list(max)]


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self):
        return self._data


class IBuilderConfig:
    def __init__(self) -> None:
        self._flags: list = []
        self._pools: dict = {}
        self._profiles: list[IOptimizationProfile] = []
        self.builder_optimization_level = 3
        self._timing_cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[pool] = pool_size

    def set_flag(self, flag):
        self._flags.append(flag)

    def add_optimization_profile(self, profile):
        self._profiles.append(profile)
        return 0

    def create_timing_cache(self, serialized_timing_cache):
        return ITimingCache(bytes(serialized_timing_cache) + b"+")

    def set_timing_cache(self, cache, ignore_mismatch):
        self._timing_cache = cache
        return True

    def get_timing_cache(self):
        return self._timing_cache


class IBuilderConfig10(IBuilderConfig):  # TensorRT <= 10: implicit INT8 calibration
    def __init__(self) -> None:
        super().__init__()
        self.int8_calibrator = None

    def set_calibration_profile(self, profile):
        self._calibration_profile = profile
        return True


class IBuilderConfigRTX(IBuilderConfig):  # TensorRT-RTX: target compute capabilities
    def __init__(self) -> None:
        super().__init__()
        self._capabilities: list = []

    @property
    def num_compute_capabilities(self):
        return len(self._capabilities)

    @num_compute_capabilities.setter
    def num_compute_capabilities(self, value):
        self._capabilities = [ComputeCapability.NONE] * value

    def set_compute_capability(self, compute_capability, index):
        if compute_capability == ComputeCapability.NONE or not 0 <= index < len(self._capabilities):
            return False
        self._capabilities[index] = compute_capability
        return True

    def get_compute_capability(self, index):
        return self._capabilities[index]


for _config in (IBuilderConfig10, IBuilderConfigRTX):
    _config.__name__ = "IBuilderConfig"


class ParserError:
    def __init__(self, node: int, name: str, op: str, text: str) -> None:
        self._node, self._name, self._op, self._text = node, name, op, text

    def node(self):
        return self._node

    def node_name(self):
        return self._name

    def node_operator(self):
        return self._op

    def desc(self):
        return self._text


class OnnxParser:
    def __init__(self, network, logger) -> None:
        self._network, self._errors = network, []

    def parse_from_file(self, model):
        data = Path(model).read_bytes()
        if not data.startswith(b"\x08"):  # ONNX protobufs start with field 1 (ir_version)
            self._errors.append(ParserError(-1, "", "", f"{model}: not ONNX"))
            return False
        self._network._onnx = model
        return True

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self._creation_flags, self._onnx = flags, None


def make_builder_module(trt: "FakeTensorRT") -> None:
    """Add the builder API to a FakeTensorRT: version 11 and TensorRT-RTX lack what TensorRT 11 removed
    (FP16/INT8 flags, the calibrator); TensorRT-RTX adds compute capabilities."""
    rtx = trt._flavour == "rtx"
    major = 11 if rtx else int(trt.__version__.split(".")[0])
    trt._builds = []
    flag_names = ["GPU_FALLBACK", "VERSION_COMPATIBLE"] + (["FP16", "INT8"] if major < 11 else [])
    trt.BuilderFlag = enum.Enum("BuilderFlag", flag_names)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM",
                                                      "DLA_GLOBAL_DRAM", "TACTIC_SHARED_MEMORY"])
    trt.DeviceType = enum.Enum("DeviceType", ["GPU", "DLA"])
    trt.Dims = tuple
    trt.OnnxParser = OnnxParser
    config_class = IBuilderConfigRTX if rtx else IBuilderConfig10 if major < 11 else IBuilderConfig

    class Builder:
        def __init__(self, logger) -> None:
            self._logger = logger

        def create_network(self, flags):
            return INetworkDefinition(flags)

        def create_builder_config(self):
            return config_class()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            calibrator = getattr(config, "int8_calibrator", None)
            if calibrator is not None:  # calibrate like TensorRT: read cache, else batches
                if calibrator.read_calibration_cache() is None:
                    names = list(config._profiles[0]._shapes)
                    batches = 0
                    while calibrator.get_batch(names) is not None:
                        batches += 1
                    calibrator.write_calibration_cache(f"fake cache: {batches} batches".encode())
            targets = [c.name for c in config._capabilities] if rtx and config._capabilities else None
            trt._builds.append({"flags": [f.name for f in config._flags], "network_flags": network._creation_flags,
                                "pools": {p.name: v for p, v in config._pools.items()},
                                "level": config.builder_optimization_level, "targets": targets})
            return engine_bytes(network._onnx, config._profiles[0]._shapes, targets)

    trt.Builder = Builder
    if major < 11:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
