"""TensorRT backend (10.x and 11.x): deserialize an engine and run it on one CUDA stream.

Uses only the name-based I/O API that both major versions document
(docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Engine.html and
.../ExecutionContext.html): ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``get_tensor_dtype``, ``get_tensor_profile_shape``, ``set_input_shape``,
``get_tensor_shape``, ``set_tensor_address`` and ``execute_async_v3``. None of them is on
TensorRT 11's list of removed Python APIs (docs .../api/migration/tensorrt-10x-to-11x-python-api-reference.html).

Device buffers grow to the largest shape seen; inputs and outputs are staged through
page-locked host buffers. The engines of one pipeline share an :class:`EngineStream`: one CUDA
stream, so an engine's device outputs feed the next engine with no synchronisation between them.
With ``cuda_graph=True`` the launches queued between two synchronisations (preprocess + encoder
in ``set_image``; decoder + postprocess in ``predict``) are captured as one CUDA graph and
replayed while the same engines run with the same shapes and buffers (cudaStreamBeginCapture /
cudaStreamEndCapture / cudaGraphInstantiate / cudaGraphLaunch:
docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__GRAPH.html; TensorRT's note on capturing
``execute_async_v3``: docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-with-cuda-graphs.html).

TensorRT-RTX engines run through the same calls (its API is TensorRT 11's). Before deserialising one,
``Runtime.get_engine_validity`` reads its header, so that an engine of another TensorRT-RTX release or
for another GPU family is one line, not a TensorRT log (docs.nvidia.com/deeplearning/tensorrt-rtx/latest/
inference-library/engine-compatibility.html). Its kernels are compiled just in time on the GPU; with a
runtime cache file (``ICudaEngine.create_runtime_config``, ``IRuntimeConfig.create_runtime_cache`` /
``set_runtime_cache``, ``IRuntimeCache.serialize`` / ``deserialize``, and the execution context created
from that config: .../inference-library/work-with-runtime-cache.html) that work is paid once per machine:
the engines of a pipeline share one cache, read when the first opens and written atomically when the
last closes. An engine's record (``ENGINE.json``) names the TensorRT flavour and version that built it,
and a runner of another flavour refuses it in one line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nanosam2 import contract as C
from nanosam2.contract import GraphContract
from nanosam2.records import read_engine_record
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cuda_api import CudaRuntime, PycudaRuntime, open_cuda
from nanosam2.utils.tensorrt_flavour import LABELS, RTX, TENSORRT, TensorRT, import_tensorrt, make_logger
from nanosam2.inference.device import DeviceArray, DeviceBuffer, to_host
from nanosam2.inference.engine_stream import EngineStream, RuntimeCacheFile, open_engine_stream  # noqa: F401
from nanosam2.inference.runner import Runner

if TYPE_CHECKING:  # checked by mypy against tensorrt-stubs; never imported at run time here
    import tensorrt as trt_types

logger = logging.getLogger(__name__)

# TensorRT DataType member name -> numpy dtype (trt.nptype is avoided: one table for 10 and 11).
NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64,
                "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


@dataclass
class TensorSlot:
    """One I/O tensor: its type, its profile range (inputs) and its buffers."""

    name: str
    is_input: bool
    dtype: Any
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
    device: int = 0
    capacity: int = 0
    host: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    shape: tuple[int, ...] = ()


def _dims(dims: Any) -> tuple[int, ...]:
    """TensorRT ``Dims`` -> tuple (indexed, not iterated: the stubs declare no ``__iter__``)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype)).split(".")[-1].upper()


def contract_for_engine(path: str | os.PathLike[str], input_names: list[str],
                        sidecar: dict[str, Any] | None = None) -> GraphContract:
    """The engine's contract from its sidecar (``sidecar``: already read); for an engine built without one
    (plain trtexec), SAM2.1 defaults for the graph its tensor names identify."""
    sidecar = sidecar if sidecar is not None else read_engine_record(path)
    if sidecar and C.METADATA_KEY in sidecar:
        contract = sidecar[C.METADATA_KEY]
        text = contract if isinstance(contract, str) else json.dumps(contract)
        return GraphContract.from_json(text, f"{path}.json")
    graph = next((g for g, (names, _) in C.GRAPH_IO.items() if set(names) == set(input_names)), C.DECODER)
    logger.warning("%s has no nanosam2 sidecar (%s.json); assuming SAM2.1 defaults for the %s", path, path, graph)
    return GraphContract.for_graph(graph, "unknown")


def check_engine_record(path: Path, record: dict[str, Any], tensorrt: TensorRT) -> None:
    """Refuse, in one line, an engine whose record (its sidecar) says another TensorRT flavour or release built it."""
    if "tensorrt_version" not in record:  # no build record (plain trtexec): TensorRT itself will judge the engine
        return
    # records from before TensorRT-RTX support name no flavour: only TensorRT built engines then
    flavour, version = record.get("tensorrt_flavour", TENSORRT), record["tensorrt_version"]
    if flavour not in LABELS:
        raise NanoSam2Error(f"{path}.json names an unknown TensorRT flavour {flavour!r}")
    if flavour != tensorrt.flavour:
        raise NanoSam2Error(f"{path.name} was built by {LABELS[flavour]} {version}; this runner uses {tensorrt.label}: "
                            f"run it with --trt-flavour {flavour}, or rebuild it with this TensorRT")
    compatible = "VERSION_COMPATIBLE" in (record.get("builder_flags") or [])
    if version and version != tensorrt.version and not compatible:
        raise NanoSam2Error(f"{path.name} was built by {LABELS[flavour]} {version} and {tensorrt.label} cannot load it; "
                            "rebuild it with engines/build_engine.py")


def check_engine_validity(runtime: Any, trt: Any, data: bytes, path: Path) -> None:
    """TensorRT-RTX's header check before deserialising (one line naming what does not fit)."""
    validity, diagnostics = runtime.get_engine_validity(data)
    if validity == trt.EngineValidity.VALID:
        return
    reasons = [name.lower().replace("_", " ") for name, member in trt.EngineInvalidityDiagnostics.__members__.items()
               if int(diagnostics) & int(member)]
    if validity == trt.EngineValidity.SUBOPTIMAL:
        logger.warning("%s may run slower on this GPU than on the one it was built for", path.name)
        return
    why = ", ".join(reasons) or "invalid here: no GPU or driver TensorRT-RTX can use, or another release's engine"
    raise NanoSam2Error(f"{path.name} cannot run here ({why}): rebuild it for this "
                        "GPU and TensorRT-RTX release (engines/build_engine.py --trt-flavour rtx)")


class TensorRTRunner(Runner):
    """A TensorRT engine behind the common runner interface."""

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], cuda_graph: bool = False, profile_index: int = 0,
                 trt: Any = None, cuda: CudaRuntime | PycudaRuntime | None = None,
                 stream: EngineStream | None = None, flavour: str | None = None) -> None:
        """``stream``: the :class:`EngineStream` of the pipeline this engine is part of (its graph
        setting, TensorRT and runtime cache apply); without one the runner has a stream of its own, and
        ``cuda_graph`` replays each call of this engine alone. ``trt``: a TensorRT module to use
        (of ``flavour``, default tensorrt); else the stream's, else the one ``flavour`` names or found."""
        super().__init__(path)
        if trt is not None:
            tensorrt = TensorRT(trt, flavour or TENSORRT)
        elif stream is not None and stream.tensorrt is not None:
            tensorrt = stream.tensorrt
        else:
            tensorrt = import_tensorrt(flavour, "the TensorRT backend")
        self.tensorrt = tensorrt
        self.trt = tensorrt.module
        data = self.path.read_bytes()
        if not data:
            raise NanoSam2Error(f"{self.path} is empty, not a TensorRT engine")
        record = read_engine_record(self.path) or {}
        check_engine_record(self.path, record, tensorrt)
        self.cuda = stream.cuda if stream is not None else cuda if cuda is not None else open_cuda()
        self._trt_logger: Any = make_logger(self.trt)
        self.runtime: trt_types.Runtime = self.trt.Runtime(self._trt_logger)
        if "VERSION_COMPATIBLE" in (record.get("builder_flags") or []):
            # a version-compatible plan carries TensorRT's lean runtime (host code), which TensorRT deserializes only
            # when allowed (docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html, "Version
            # Compatibility"); only a plan our own builder recorded as version compatible is trusted with it
            self.runtime.engine_host_code_allowed = True
        if tensorrt.flavour == RTX:
            check_engine_validity(self.runtime, self.trt, data, self.path)
        engine: trt_types.ICudaEngine | None = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise NanoSam2Error(f"{self.path} is not a TensorRT engine {tensorrt.label} can load: corrupt, or built by "
                                "another TensorRT version or for another GPU")
        self.engine: trt_types.ICudaEngine | None = engine
        cache = stream.runtime_cache if stream is not None else None
        if cache is not None:
            runtime_config = engine.create_runtime_config()
            cache.attach(runtime_config)
            context: trt_types.IExecutionContext | None = engine.create_execution_context(runtime_config)
        else:
            context = engine.create_execution_context()
        if context is None:
            raise NanoSam2Error(f"{self.path}: TensorRT could not create an execution context (out of GPU memory?)")
        self.context: trt_types.IExecutionContext | None = context
        self.profile_index = profile_index
        self.slots: dict[str, TensorSlot] = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            is_input = engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            dtype_name = _dtype_name(engine.get_tensor_dtype(name))
            if dtype_name not in NUMPY_DTYPES:
                raise NanoSam2Error(f"{self.path}: tensor {name} has unsupported type {dtype_name}")
            profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
            if is_input:
                lo, opt, hi = engine.get_tensor_profile_shape(name, profile_index)
                profile = (_dims(lo), _dims(opt), _dims(hi))
            self.slots[name] = TensorSlot(name, is_input, NUMPY_DTYPES[dtype_name], profile)
        self._inputs = [s.name for s in self.slots.values() if s.is_input]
        self._outputs = [s.name for s in self.slots.values() if not s.is_input]
        self.contract = contract_for_engine(self.path, self._inputs, record)
        self.shared = stream is not None
        self.engine_stream = stream if stream is not None else EngineStream(self.cuda, cuda_graph, tensorrt=tensorrt)
        self.engine_stream.attach(self)
        self.stream = self.engine_stream.stream
        self._bound: dict[str, int] = {}  # tensor name -> the device address TensorRT was given
        self._uploads: dict[str, TensorSlot] = {}  # to_device buffers, one per input name, reused
        self._buffers: set[DeviceBuffer] = set()  # new_buffer allocations not freed yet (freed by close)

    @property
    def ctx(self) -> "trt_types.IExecutionContext":
        if self.context is None:
            raise NanoSam2Error(f"{self.path.name}: the runner is closed")
        return self.context

    def max_batch(self) -> int | None:
        """The profile's max of the leading dimension shared by the batched inputs."""
        batched = [s.profile[2][0] for s in self.slots.values()
                   if s.profile is not None and s.profile[0][0] != s.profile[2][0]]
        return min(batched) if batched else None

    def _reserve(self, slot: TensorSlot, nbytes: int) -> None:
        if nbytes <= slot.capacity:
            return
        if slot.capacity:  # a held launch or a captured graph may use the old buffer
            self.engine_stream.flush()
            self.engine_stream.forget(self)
            self.cuda.device_free(slot.device)
            self.cuda.host_free(slot.host)
        slot.device = self.cuda.device_alloc(nbytes)
        slot.host = self.cuda.host_alloc(nbytes)
        slot.capacity = nbytes

    def _bind(self, name: str, address: int) -> None:
        """Give TensorRT the address of ``name`` when it changed (a captured CUDA graph holds the old one)."""
        if self._bound.get(name) == address:
            return
        if not self.ctx.set_tensor_address(name, address):
            raise NanoSam2Error(f"TensorRT rejected the address of {name}")
        self._bound[name] = address

    def _set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            slot = self.slots[name]
            lo, _, hi = slot.profile or ((), (), ())
            if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
                raise NanoSam2Error(f"{self.path.name}: input {name} of shape {shape} is outside the "
                                    f"engine's profile {lo}..{hi}; rebuild the engine with larger --maxShapes")
            if not self.ctx.set_input_shape(name, shape):
                raise NanoSam2Error(f"{self.path.name}: TensorRT rejected shape {shape} for {name}")
            slot.shape = shape

    def launch_key(self) -> tuple[Any, ...]:
        """What a captured launch of this engine depends on: the engine, its shapes, its addresses."""
        shapes = tuple((n, self.slots[n].shape) for n in self._inputs)
        return (id(self), shapes, tuple(sorted(self._bound.items())))

    def launch(self, check: bool = True) -> bool:
        """Queue one execution on the stream with the shapes and addresses set now."""
        ok = bool(self.ctx.execute_async_v3(self.cuda.stream_handle(self.stream)))
        if check and not ok:
            raise NanoSam2Error(f"{self.path.name}: TensorRT execution failed (its log above says why)")
        return ok

    def synchronize(self) -> None:
        self.engine_stream.flush()

    def input_dtype(self, name: str) -> np.dtype:
        return np.dtype(self.slots[name].dtype)

    def to_device(self, name: str, array: np.ndarray) -> DeviceArray:
        """Upload ``array`` into this runner's buffer for ``name`` (reused by the next upload of it)."""
        array = np.ascontiguousarray(array, dtype=self.input_dtype(name))
        self.engine_stream.flush()  # a held launch may read the buffer this upload rewrites
        slot = self._uploads.setdefault(name, TensorSlot(name, True, array.dtype))
        self._reserve(slot, array.nbytes)
        slot.host[: array.nbytes] = array.reshape(-1).view(np.uint8)
        self.cuda.to_device(slot.device, slot.host, array.nbytes, self.stream)
        self.cuda.synchronize(self.stream)
        return self._device_array(slot.device, tuple(array.shape), array.dtype)

    def reserve_graphs(self, count: int) -> None:
        self.engine_stream.max_graphs = max(self.engine_stream.max_graphs, int(count))

    def max_rows(self, name: str) -> int | None:
        profile = self.slots[name].profile if name in self.slots else None
        return None if profile is None else profile[2][0]

    def new_buffer(self, name: str, shape: tuple[int, ...]) -> DeviceBuffer:
        dtype = np.dtype(self.input_dtype(name))
        nbytes = int(np.prod(shape)) * dtype.itemsize
        address = self.cuda.device_alloc(nbytes)
        buffer = DeviceBuffer(address, tuple(shape), dtype, self.backend,
                              lambda: self._download(address, tuple(shape), dtype))

        def release() -> None:
            self._buffers.discard(buffer)
            self.engine_stream.flush()  # a held launch may read it
            self.cuda.device_free(address)

        buffer.release = release
        self._buffers.add(buffer)
        return buffer

    def rows(self, buffer: DeviceArray, start: int, count: int) -> DeviceArray:
        self._check_live(buffer)
        row_bytes = int(np.prod(buffer.shape[1:])) * np.dtype(buffer.dtype).itemsize
        return self._device_array(int(buffer.data) + start * row_bytes, (count, *buffer.shape[1:]), buffer.dtype)

    def write_rows(self, buffer: DeviceArray, row: int, values: Any) -> None:
        """A ``cudaMemcpyAsync`` on the pipeline's stream, after what is held (its results may be the source,
        or the rows it reads the destination); ordered before every later launch on the stream."""
        self._check_live(buffer)
        self.engine_stream.flush()
        row_bytes = int(np.prod(buffer.shape[1:])) * np.dtype(buffer.dtype).itemsize
        dst = int(buffer.data) + row * row_bytes
        if isinstance(values, DeviceArray) and values.backend == self.backend:
            if np.dtype(values.dtype) != np.dtype(buffer.dtype):
                raise NanoSam2Error(f"{self.path.name}: cannot copy {np.dtype(values.dtype)} rows into a "
                                    f"{np.dtype(buffer.dtype)} buffer")
            self.cuda.device_copy(dst, int(values.data), values.nbytes, self.stream)
            return
        host = np.ascontiguousarray(to_host(values), dtype=buffer.dtype)
        self.cuda.to_device(dst, host, host.nbytes, self.stream)
        self.cuda.synchronize(self.stream)  # the host array may go away

    def _device_array(self, address: int, shape: tuple[int, ...], dtype: Any) -> DeviceArray:
        return DeviceArray(address, shape, np.dtype(dtype), self.backend, lambda: self._download(address, shape, dtype))

    def _download(self, address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self.engine_stream.flush()  # run what is held first
        host = np.empty(shape, dtype)
        self.cuda.to_host(host, address, host.nbytes, self.stream)
        self.cuda.synchronize(self.stream)
        return host.astype(np.float32) if host.dtype == np.float16 else host

    def infer_impl(self, feed: dict[str, Any], copy_outputs_to_host: bool = True) -> dict[str, Any]:
        if self.engine_stream.holds(self):  # its last launch may still read these buffers
            self.engine_stream.flush()
        self._set_shapes({name: tuple(value.shape) for name, value in feed.items()})
        for name in self._outputs:
            self.slots[name].shape = _dims(self.ctx.get_tensor_shape(name))
            if any(d < 0 for d in self.slots[name].shape):
                raise NanoSam2Error(f"{self.path.name}: output {name} has an unresolved shape {self.slots[name].shape}")
        for name, value in feed.items():
            if isinstance(value, DeviceArray):  # already on the GPU (another runner's output, or to_device)
                self._bind(name, int(value.data))
                continue
            slot = self.slots[name]
            self._reserve(slot, value.nbytes)
            slot.host[: value.nbytes] = value.reshape(-1).view(np.uint8)
            self.cuda.to_device(slot.device, slot.host, value.nbytes, self.stream)
            self._bind(name, slot.device)
        for name in self._outputs:
            slot = self.slots[name]
            self._reserve(slot, int(np.prod(slot.shape)) * np.dtype(slot.dtype).itemsize)
            self._bind(name, slot.device)
        self.engine_stream.submit(self)
        if not copy_outputs_to_host:
            if not self.shared:
                self.engine_stream.flush()  # a consumer on another stream must find the results written
            return {n: self._device_array(self.slots[n].device, self.slots[n].shape, self.slots[n].dtype)
                    for n in self._outputs}
        self.engine_stream.flush()
        results = {}
        for name in self._outputs:
            slot = self.slots[name]
            nbytes = int(np.prod(slot.shape)) * np.dtype(slot.dtype).itemsize
            self.cuda.to_host(slot.host, slot.device, nbytes, self.stream)
        self.cuda.synchronize(self.stream)
        for name in self._outputs:
            slot = self.slots[name]
            nbytes = int(np.prod(slot.shape)) * np.dtype(slot.dtype).itemsize
            values = slot.host[:nbytes].view(slot.dtype).reshape(slot.shape)
            results[name] = values.astype(np.float32) if values.dtype == np.float16 else values.copy()
        return results

    def close(self) -> None:
        if getattr(self, "slots", None) is None:
            return
        if getattr(self, "stream", None) is not None:
            if self.engine_stream.holds(self):
                self.engine_stream.flush()
            self.cuda.synchronize(self.stream)
        for slot in [*self.slots.values(), *self._uploads.values()]:
            if slot.capacity:
                self.cuda.device_free(slot.device)
                self.cuda.host_free(slot.host)
                slot.capacity = 0
        for buffer in list(self._buffers):
            buffer.free()
        if self.stream is not None:
            self.engine_stream.detach(self)
            self.stream = None
        self.context = None
        self.engine = None
