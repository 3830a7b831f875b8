"""The few CUDA runtime calls the TensorRT runner needs, every one checked.

Backed by cuda-python (``cuda.bindings.runtime`` in cuda-python >= 12.6, ``cuda.cudart`` in
older releases; docs: nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html)
or, when that is what a Jetson image has, by pycuda. Host staging buffers are page-locked so
that ``cudaMemcpyAsync`` is truly asynchronous on the runner's stream.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from nanosam2.errors import MissingDependencyError, NanoSam2Error


def load_cudart() -> Any:
    """cuda-python's runtime module under either package layout."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # type: ignore[attr-defined,no-redef]  # cuda-python <= 12.5

        return cudart
    except ImportError:
        raise MissingDependencyError(
            "cuda-python is not installed (needed for the TensorRT backend): pip install 'nanosam2[trt]'") from None


class CudaRuntime:
    """Checked cuda-python runtime calls: device/pinned memory, one stream, async copies, graphs."""

    name = "cuda-python"

    def __init__(self, cudart: Any = None) -> None:
        self.rt = cudart if cudart is not None else load_cudart()
        self._pinned: dict[int, int] = {}  # id(host array) -> pinned pointer

    def check(self, result: Any, call: str) -> Any:
        """cuda-python returns ``(cudaError_t, *values)``; raise on anything but cudaSuccess."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            message = text.decode() if isinstance(text, bytes) else str(text)
            raise NanoSam2Error(f"CUDA error in {call}: {message} ({err})")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def stream(self) -> Any:
        return self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def device_name(self, device: int = 0) -> str:
        """The GPU's name, for build records (``unknown`` when the driver does not say)."""
        try:
            props = self.check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
            name = props.name
            return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00")
        except (NanoSam2Error, AttributeError):
            return "unknown"

    def device_count(self) -> int:
        """How many CUDA GPUs this process sees (0 without a GPU or driver)."""
        try:
            return int(self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))
        except NanoSam2Error:
            return 0

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def synchronize(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def destroy_stream(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def device_alloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def device_free(self, ptr: int) -> None:
        self.check(self.rt.cudaFree(ptr), "cudaFree")

    def host_alloc(self, nbytes: int) -> np.ndarray:
        """A page-locked uint8 host array of ``nbytes``."""
        ptr = int(self.check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
        array = np.frombuffer(memoryview((ctypes.c_uint8 * max(nbytes, 1)).from_address(ptr)), dtype=np.uint8)[:nbytes]
        self._pinned[id(array)] = ptr
        return array

    def host_free(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(id(array), None)
        if ptr is not None:
            self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def to_device(self, dst: int, src: np.ndarray, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, nbytes, kind, stream), "cudaMemcpyAsync(HtoD)")

    def to_host(self, dst: np.ndarray, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, nbytes, kind, stream), "cudaMemcpyAsync(DtoH)")

    def device_copy(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(DtoD)")

    # CUDA graphs: capture one execute_async_v3 and replay it (removes launch overhead at batch 1).
    supports_graphs = True

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        graph = self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        return self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate"), graph

    def launch_graph(self, graph_exec: Any, stream: Any) -> None:
        self.check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def destroy_graph(self, graph_exec: Any, graph: Any) -> None:
        self.check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        self.check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")


class PycudaRuntime:
    """The same calls through pycuda (no CUDA graphs)."""

    name = "pycuda"
    supports_graphs = False

    def __init__(self) -> None:
        try:
            import pycuda.autoinit  # noqa: F401  (creates the context)
            import pycuda.driver as driver
        except ImportError:
            raise MissingDependencyError("neither cuda-python nor pycuda is installed: pip install 'nanosam2[trt]'") from None
        self.driver = driver
        self._allocations: dict[int, Any] = {}

    def stream(self) -> Any:
        return self.driver.Stream()

    def device_name(self, device: int = 0) -> str:
        return str(self.driver.Device(device).name())

    def device_count(self) -> int:
        return int(self.driver.Device.count())

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def destroy_stream(self, stream: Any) -> None:
        pass

    def device_alloc(self, nbytes: int) -> int:
        allocation = self.driver.mem_alloc(max(nbytes, 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def device_free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            allocation.free()

    def host_alloc(self, nbytes: int) -> np.ndarray:
        return self.driver.pagelocked_empty(max(nbytes, 1), np.uint8)[:nbytes]

    def host_free(self, array: np.ndarray) -> None:
        pass

    def to_device(self, dst: int, src: np.ndarray, nbytes: int, stream: Any) -> None:
        self.driver.memcpy_htod_async(dst, src[:nbytes], stream)

    def to_host(self, dst: np.ndarray, src: int, nbytes: int, stream: Any) -> None:
        self.driver.memcpy_dtoh_async(dst[:nbytes], src, stream)

    def device_copy(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self.driver.memcpy_dtod_async(dst, src, nbytes, stream)


def open_cuda(prefer: str | None = None) -> CudaRuntime | PycudaRuntime:
    """cuda-python when importable (or asked for), else pycuda."""
    if prefer in (None, "cuda-python"):
        try:
            return CudaRuntime()
        except MissingDependencyError:
            if prefer == "cuda-python":
                raise
    return PycudaRuntime()


def require_gpu(purpose: str, cuda: CudaRuntime | PycudaRuntime | None = None) -> CudaRuntime | PycudaRuntime:
    """The CUDA runtime (``cuda``, else opened here), or one line saying there is no GPU (instead of a raw
    CUDA error from the first allocation)."""
    cuda = cuda if cuda is not None else open_cuda()
    if cuda.device_count() < 1:
        raise NanoSam2Error(f"{purpose} needs a CUDA GPU and this machine has none visible")
    return cuda
