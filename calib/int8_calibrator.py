"""Implicit INT8 calibration for TensorRT <= 10: an ``IInt8EntropyCalibrator2`` fed by our
calibration batches, reading and writing a calibration cache (so a Jetson can reuse a cache
made on a desktop). TensorRT 10.1 deprecated this path and 11 removed it; use Q/DQ graphs
(calib.qdq) there. Docs: docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Int8/EntropyCalibrator2.html
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nanosam2.utils.atomic import atomic_path
from nanosam2.utils.cuda_api import CudaRuntime, PycudaRuntime, open_cuda

logger = logging.getLogger(__name__)


def make_entropy_calibrator(trt: Any, feeds: list[dict[str, np.ndarray]], cache_file: str | Path | None,
                            cuda: CudaRuntime | PycudaRuntime | None = None) -> Any:
    """An ``trt.IInt8EntropyCalibrator2`` over ``feeds`` (one batch each, batch size 1).

    With an existing ``cache_file`` TensorRT reads the scales from it and asks for no batch.
    """
    runtime = cuda if cuda is not None else open_cuda()
    cache_path = Path(cache_file) if cache_file else None

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity)
            self.stream = runtime.stream()

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(feeds):
                return None
            feed = feeds[self.index]
            self.index += 1
            pointers = []
            for name in names:
                array = np.ascontiguousarray(feed[name], dtype=np.float32)
                pointer, capacity = self.device.get(name, (0, 0))
                if array.nbytes > capacity:
                    if capacity:
                        runtime.device_free(pointer)
                    pointer, capacity = runtime.device_alloc(array.nbytes), array.nbytes
                    self.device[name] = (pointer, capacity)
                runtime.to_device(pointer, array.reshape(-1).view(np.uint8), array.nbytes, self.stream)
                pointers.append(pointer)
            runtime.synchronize(self.stream)
            logger.debug("calibration batch %d/%d", self.index, len(feeds))
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is not None and cache_path.is_file():
                logger.info("using calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is None:
                return
            with atomic_path(cache_path) as tmp:
                tmp.write_bytes(bytes(cache))
            logger.info("wrote calibration cache %s", cache_path)

        def release(self) -> None:
            for pointer, _ in self.device.values():
                runtime.device_free(pointer)
            self.device.clear()

    return EntropyCalibrator()
