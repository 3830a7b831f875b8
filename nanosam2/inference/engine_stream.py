"""One CUDA stream for the TensorRT engines of a pipeline, the CUDA graphs captured on it, and
TensorRT-RTX's runtime cache file (shared by the pipeline's engines)."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import atomic_path
from nanosam2.utils.cuda_api import CudaRuntime, PycudaRuntime, open_cuda, require_gpu
from nanosam2.utils.tensorrt_flavour import RTX, TensorRT, import_tensorrt

logger = logging.getLogger(__name__)


class TensorRTRunner(Protocol):
    """What the stream needs of an engine's runner (``tensorrt_runner.TensorRTRunner``)."""

    def launch(self, check: bool = True) -> bool: ...

    def launch_key(self) -> tuple[Any, ...]: ...


class RuntimeCacheFile:
    """TensorRT-RTX's runtime cache (kernels compiled just in time) kept in one file: read when the first
    engine opens, shared by the pipeline's engines, written atomically (complete or not at all) on close."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise NanoSam2Error(f"--runtime-cache {self.path} is a folder; give a file name")
        self.cache: Any = None
        self.loaded = False  # whether an earlier run's kernels were taken

    def attach(self, config: Any) -> None:
        """Give an engine's ``IRuntimeConfig`` the shared cache (created and filled on first use)."""
        if self.cache is None:
            self.cache = config.create_runtime_cache()
            if self.path.is_file() and self.path.stat().st_size:
                self.loaded = bool(self.cache.deserialize(self.path.read_bytes()))
                if not self.loaded:
                    logger.warning("%s was written by another GPU, driver or TensorRT-RTX release: its kernels are "
                                   "compiled again and the file is replaced on close", self.path)
        if not config.set_runtime_cache(self.cache):
            raise NanoSam2Error(f"TensorRT-RTX refused the runtime cache {self.path}")

    def save(self) -> None:
        if self.cache is None:
            return
        data = bytes(self.cache.serialize())
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(data)
        logger.info("runtime cache %s: %.1f MB", self.path, len(data) / 1e6)


class EngineStream:
    """One CUDA stream shared by the engines of a pipeline, and the CUDA graphs captured on it.

    Without graphs an engine's launch is queued at once. With graphs, launches are held until
    something needs their results (a download, an upload into a buffer they read, the same
    engine called again, ``synchronize``); the held sequence is then replayed from the graph
    captured for it, or launched plainly once (TensorRT allocates lazily, which a capture must
    not see) and captured for next time. A sequence is the same when the same engines run in
    the same order with the same input shapes and the same bound addresses; up to
    ``max_graphs`` sequences are kept (a camera alternates two: set_image and predict).
    Every flush ends with a stream synchronisation, so page-locked staging buffers are free to
    be rewritten afterwards.
    """

    def __init__(self, cuda: CudaRuntime | PycudaRuntime, cuda_graph: bool = False, max_graphs: int = 8,
                 tensorrt: TensorRT | None = None, runtime_cache: RuntimeCacheFile | None = None) -> None:
        self.cuda = cuda
        self.tensorrt = tensorrt  # the TensorRT every engine of the pipeline runs on (None: each runner finds one)
        self.runtime_cache = runtime_cache
        self.stream = cuda.stream()
        self.use_graphs = cuda_graph and getattr(cuda, "supports_graphs", False)
        self.max_graphs = max_graphs
        self.pending: list[tuple["TensorRTRunner", tuple[Any, ...]]] = []
        self.graphs: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        self.captures = 0  # graphs captured so far (tests and logs)
        self.users: set[int] = set()
        self.in_flight: set[int] = set()  # runners with work queued since the last synchronisation

    def attach(self, runner: "TensorRTRunner") -> None:
        self.users.add(id(runner))

    def detach(self, runner: "TensorRTRunner") -> None:
        """A runner closes: drop its held launch and the graphs it is part of; the last one closes the stream."""
        self.pending = [(r, key) for r, key in self.pending if r is not runner]
        self.forget(runner)
        self.users.discard(id(runner))
        if not self.users:
            self.close()

    def close(self) -> None:
        if self.stream is not None:
            self.forget(None)
            self.cuda.destroy_stream(self.stream)
            self.stream = None
            if self.runtime_cache is not None:
                self.runtime_cache.save()

    def forget(self, runner: "TensorRTRunner | None") -> None:
        """Destroy the graphs that launch ``runner`` (its buffers moved), or every graph (None)."""
        for key in [k for k in self.graphs if runner is None or any(part[0] == id(runner) for part in k)]:
            self.cuda.destroy_graph(*self.graphs.pop(key))  # type: ignore[union-attr]

    def holds(self, runner: "TensorRTRunner") -> bool:
        """Whether work of ``runner`` is held or not yet finished (its staging buffers are in use)."""
        return id(runner) in self.in_flight or any(r is runner for r, _ in self.pending)

    def submit(self, runner: "TensorRTRunner") -> None:
        """Queue one launch of ``runner`` with the shapes and addresses its context holds now."""
        self.in_flight.add(id(runner))
        if not self.use_graphs:
            runner.launch()
            return
        self.pending.append((runner, runner.launch_key()))

    def flush(self) -> None:
        """Run what is held (replay, or launch and capture) and wait for the stream."""
        if self.pending:
            runners = [r for r, _ in self.pending]
            key = tuple(k for _, k in self.pending)
            self.pending = []
            graph = self.graphs.get(key)
            if graph is not None:
                self.graphs.move_to_end(key)
                self.cuda.launch_graph(graph[0], self.stream)  # type: ignore[union-attr]
            else:
                for runner in runners:  # these launches compute this call's results
                    runner.launch()
                self.cuda.synchronize(self.stream)
                self._capture(key, runners)
        self.cuda.synchronize(self.stream)
        self.in_flight.clear()

    def _capture(self, key: tuple[Any, ...], runners: list["TensorRTRunner"]) -> None:
        self.cuda.begin_capture(self.stream)  # type: ignore[union-attr]
        try:
            ok = all(runner.launch(check=False) for runner in runners)
        finally:
            graph = self.cuda.end_capture(self.stream)  # type: ignore[union-attr]
        if not ok:
            self.cuda.destroy_graph(*graph)  # type: ignore[union-attr]
            raise NanoSam2Error("TensorRT execution failed during CUDA-graph capture (its log above says why)")
        self.graphs[key] = graph
        self.captures += 1
        while len(self.graphs) > self.max_graphs:
            self.cuda.destroy_graph(*self.graphs.popitem(last=False)[1])  # type: ignore[union-attr]


def open_engine_stream(cuda_graph: bool = False, flavour: str | None = None,
                       runtime_cache: str | os.PathLike[str] | None = None) -> EngineStream:
    """A stream for the engines of one pipeline, on one TensorRT (checked first, for its message)."""
    tensorrt = import_tensorrt(flavour, "the TensorRT backend")
    if cuda_graph and tensorrt.flavour == RTX:
        # TensorRT-RTX captures CUDA graphs itself (IRuntimeConfig.setCudaGraphStrategy: docs.nvidia.com/deeplearning/
        # tensorrt-rtx/latest/inference-library/work-with-cuda-graphs.html); an application's own stream capture
        # needs engines built with kREQUIRE_USER_ALLOCATION and isStreamCapturable() (TensorRT-RTX 1.2 release
        # notes), which no GPU run has proven here yet
        raise NanoSam2Error("--cuda-graph is not offered with TensorRT-RTX yet (its stream capture needs engines "
                            "built for user allocation; not proven on a GPU): leave it out")
    cache = RuntimeCacheFile(runtime_cache) if runtime_cache is not None else None
    if cache is not None and tensorrt.flavour != RTX:
        raise NanoSam2Error(f"--runtime-cache is a TensorRT-RTX option; {tensorrt.label} compiles its kernels "
                            "when it builds the engine")
    cuda = require_gpu(f"running TensorRT engines ({tensorrt.label} can still build them here)", open_cuda())
    return EngineStream(cuda, cuda_graph, tensorrt=tensorrt, runtime_cache=cache)
