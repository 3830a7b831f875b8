"""Arrays that stay where a backend put them (GPU memory, an ONNX Runtime ``OrtValue``, a torch tensor).

``Runner.infer(feed, copy_outputs_to_host=False)`` returns these instead of numpy arrays, and a
runner of the same backend takes them as inputs without a copy (TensorRT binds the pointer, ONNX
Runtime binds the ``OrtValue``, torch uses the tensor), so an encoder's features go straight into
every decoder call and only what a caller downloads crosses the bus. ``to_host()`` downloads; a
runner of another backend downloads them itself (correct, not fast).

A device array made by a runner stays valid until that runner's next call that writes the same
tensor (TensorRT reuses its buffers): keep it for as long as one image's predictions, as the
``Predictor`` does, not longer.
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


def host_array(array: np.ndarray) -> DeviceArray:
    """A numpy array in the device-array interface (backends without a device of their own)."""
    return DeviceArray(array, tuple(array.shape), array.dtype, "host", lambda: array, "cpu")


def to_host(value: Any) -> np.ndarray:
    """numpy for a numpy array or a device array."""
    return value.to_host() if isinstance(value, DeviceArray) else np.asarray(value)
