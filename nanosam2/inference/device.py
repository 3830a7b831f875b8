"""Arrays that stay where a backend put them (GPU memory, an ONNX Runtime ``OrtValue``, a torch tensor).

``Runner.infer(feed, copy_outputs_to_host=False)`` returns these instead of numpy arrays, and a
runner of the same backend takes them as inputs without a copy (TensorRT binds the pointer, ONNX
Runtime binds the ``OrtValue``, torch uses the tensor), so an encoder's features go straight into
every decoder call and only what a caller downloads crosses the bus. ``to_host()`` downloads; a
runner of another backend downloads them itself (correct, not fast).

Who owns what: a device array a runner returns (an output, ``to_device``, ``rows``) is a view of the
runner's own buffer, valid until that runner's next call that writes the same tensor (TensorRT reuses its
buffers, as Polygraphy's runners do): copy what you keep. A :class:`DeviceBuffer` (``Runner.new_buffer``)
belongs to the caller until its ``free()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(eq=False)
class DeviceArray:
    data: Any  # the backend's own handle: a CUDA pointer (int), an OrtValue, a torch.Tensor, or a numpy array
    shape: tuple[int, ...]
    dtype: np.dtype
    backend: str  # the runner backend that can take it without a copy ("host": anyone, after to_host)
    download: Callable[[], np.ndarray]
    device: str = "cuda"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def to_host(self) -> np.ndarray:
        """The values as a numpy array (a device-to-host copy where the data is on a device)."""
        return self.download()


@dataclass(eq=False)
class DeviceBuffer(DeviceArray):
    """A buffer ``Runner.new_buffer`` made for a caller, who owns it: ``free()`` releases it once (a second
    call does nothing), whatever was allocated at the same address since. Nothing is looked up by address:
    CUDA hands a freed address to the next allocation, so a registry keyed by address (or a finalizer
    holding one) could free another owner's memory."""

    release: Callable[[], None] | None = None

    @property
    def freed(self) -> bool:
        return self.release is None

    def free(self) -> None:
        release, self.release = self.release, None
        if release is not None:
            release()


def host_array(array: np.ndarray) -> DeviceArray:
    """A numpy array in the device-array interface (backends without a device of their own)."""
    return DeviceArray(array, tuple(array.shape), array.dtype, "host", lambda: array, "cpu")


def to_host(value: Any) -> np.ndarray:
    """numpy for a numpy array or a device array."""
    return value.to_host() if isinstance(value, DeviceArray) else np.asarray(value)
