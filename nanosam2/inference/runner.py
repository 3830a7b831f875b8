"""The runner interface every backend implements (Polygraphy's runner, reduced to one call).

It lives in the torch-free core so that training's validation and the deployment runtime share
one predictor; ``trt_runtime`` adds the TensorRT and ONNX Runtime runners, which import this
module and nothing imports them back. ``infer`` validates the feed once for every backend (names,
ranks, numeric types, prompt counts that agree) and hands float arrays to the backend's
``infer_impl``, as Polygraphy's ``infer`` / ``infer_impl`` split does.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nanosam2 import contract as C
from nanosam2.contract import GraphContract
from nanosam2.records import file_sha256
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.device import DeviceArray, DeviceBuffer, host_array, to_host


class Runner(abc.ABC):
    """Runs one graph. Use as a context manager; ``infer`` maps input names to arrays."""

    backend: str = ""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else Path("<in-memory model>")
        if path is not None and not self.path.is_file():
            raise NanoSam2Error(f"no such file: {self.path}")
        self.contract: GraphContract
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._file_sha256: str | None = None

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    def input_dtype(self, name: str) -> np.dtype:
        """The element type the backend takes for ``name`` (the contract's: float32, uint8 pixels,
        int64 plane indices; an engine may say otherwise)."""
        return np.dtype(C.INPUT_DTYPES.get(name, "float32"))

    def infer(self, feed: Mapping[str, Any], copy_outputs_to_host: bool = True) -> dict[str, Any]:
        """Validate ``feed`` against the graph and run it.

        Inputs are numpy arrays or :class:`DeviceArray` s (a same-backend device array is used in
        place). Returns host arrays by output name (float32, or the graph's integer type: uint8
        masks), or, with ``copy_outputs_to_host=False``, device arrays that stay on the backend's
        device until a caller downloads them (Polygraphy's runners do the same).
        """
        return self.infer_impl(self.check_feed(feed), copy_outputs_to_host)

    @abc.abstractmethod
    def infer_impl(self, feed: dict[str, Any], copy_outputs_to_host: bool = True) -> dict[str, Any]:
        """Run the graph on a validated feed: contiguous numpy arrays of ``input_dtype``, or device
        arrays of this backend."""

    def to_device(self, name: str, array: np.ndarray) -> DeviceArray:
        """Upload ``array`` for input ``name`` once, to feed it to several calls (of this runner or
        others of its backend) without copying it again. Backends without a device keep it on the host."""
        return host_array(np.ascontiguousarray(array, dtype=self.input_dtype(name)))

    # -- buffers a caller writes rows of, on this backend's device (the tracker's memory bank) --------------
    def new_buffer(self, name: str, shape: tuple[int, ...]) -> DeviceBuffer:
        """A buffer of ``shape`` for input ``name``, on this backend's device, to be filled row by row
        (``write_rows``) and fed in parts (``rows``) without a host round trip; contents undefined until
        written. The caller owns it: ``buffer.free()`` (once; ``close`` frees what is left). Backends without
        a device keep it on the host."""
        array = np.zeros(shape, self.input_dtype(name))
        return DeviceBuffer(array, tuple(array.shape), array.dtype, "host", lambda: array, "cpu", release=lambda: None)

    def rows(self, buffer: DeviceArray, start: int, count: int) -> DeviceArray:
        """Rows ``start:start + count`` (axis 0) of a ``new_buffer``: a view, no copy, valid while the buffer is."""
        self._check_live(buffer)
        return host_array(buffer.data[start : start + count])

    def write_rows(self, buffer: DeviceArray, row: int, values: Any) -> None:
        """``buffer[row:row + len(values)] = values``: a device-to-device copy where ``values`` is a device
        array of this backend (another runner's output, ``rows`` of a buffer), else an upload."""
        self._check_live(buffer)
        buffer.data[row : row + values.shape[0]] = to_host(values)

    def reserve_graphs(self, count: int) -> None:  # noqa: B027  (a hook: backends without CUDA graphs keep it empty)
        """Keep at least ``count`` captured launch sequences (the tracker needs about two per object and frame:
        each object's bank has its own address, part of what a captured graph replays)."""

    def max_rows(self, name: str) -> int | None:
        """The most rows (axis 0) input ``name`` takes (an engine profile's max), None if unbounded."""
        return None

    @staticmethod
    def _check_live(buffer: DeviceArray) -> None:
        if isinstance(buffer, DeviceBuffer) and buffer.freed:
            raise NanoSam2Error("a device buffer was used after it was freed")

    def synchronize(self) -> None:  # noqa: B027  (a hook: backends that run eagerly keep it empty)
        """Finish the work queued so far (a backend may hold launches to capture them in one CUDA graph)."""

    def max_batch(self) -> int | None:
        """Largest prompt/image batch one call accepts (an engine profile's max), None if unbounded."""
        return None

    def identity(self) -> dict[str, Any]:
        """What produced this runner's answers: backend, file hash, weights hash, precision.

        Results files record it (hashed), so a rerun never mixes answers of two models.
        """
        if self._file_sha256 is None and self.path.is_file():
            self._file_sha256 = file_sha256(self.path)
        return {"backend": self.backend, "graph": self.contract.graph, "file_sha256": self._file_sha256,
                "weights_sha256": self.contract.weights_sha256, "backbone": self.contract.backbone,
                "precision": self.contract.precision}

    def close(self) -> None:  # noqa: B027  (a hook: runners without resources keep it empty)
        """Release sessions, buffers and streams."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check_feed(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One-line errors for missing or unknown names, wrong ranks, non-numeric data and prompt
        batches whose sizes disagree; returns contiguous arrays in the backend's types."""
        name = self.path.name
        if not isinstance(feed, Mapping):
            raise NanoSam2Error(f"{name}: infer() takes a mapping of input name -> array, got {type(feed).__name__}")
        missing = [n for n in self.input_names if n not in feed]
        unknown = [n for n in feed if n not in self.input_names]
        if missing or unknown:
            parts = ([f"missing inputs {missing}"] if missing else []) + ([f"unknown inputs {unknown}"] if unknown else [])
            raise NanoSam2Error(f"{name}: {'; '.join(parts)}; the graph takes {self.input_names}")
        arrays: dict[str, Any] = {}
        for key in self.input_names:
            value = feed[key]
            if isinstance(value, DeviceArray):
                if value.backend == self.backend:
                    self._check_device_input(key, value)
                    arrays[key] = value
                    continue
                value = value.to_host()  # made by another backend: through the host (correct, not fast)
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise NanoSam2Error(f"{name}: input {key} holds {array.dtype} data, not numbers")
            rank = C.INPUT_RANKS.get(key)
            if rank is not None and array.ndim != rank:
                raise NanoSam2Error(f"{name}: input {key} has shape {tuple(array.shape)}, the graph takes "
                                    f"rank {rank}: {C.ROLES[key]}")
            arrays[key] = np.ascontiguousarray(array, dtype=self.input_dtype(key))
        if self.contract.graph == C.DECODER:
            C.check_decoder_shapes({k: tuple(v.shape) for k, v in arrays.items()}, name)
        return arrays

    def _check_device_input(self, key: str, value: DeviceArray) -> None:
        rank = C.INPUT_RANKS.get(key)
        if rank is not None and value.ndim != rank:
            raise NanoSam2Error(f"{self.path.name}: input {key} has shape {value.shape}, the graph takes rank {rank}: "
                                f"{C.ROLES[key]}")
        if np.dtype(value.dtype) != self.input_dtype(key):
            raise NanoSam2Error(f"{self.path.name}: device input {key} holds {np.dtype(value.dtype)}, the graph takes "
                                f"{self.input_dtype(key)} (a device array is not converted)")
