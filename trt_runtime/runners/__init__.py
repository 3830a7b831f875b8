"""Backends behind one interface (Polygraphy-style runners): ``infer(feed) -> outputs``.

Each runner module imports its heavy dependency lazily, so ``import trt_runtime`` works on
a Jetson with only numpy, pillow, tensorrt and cuda-python.
"""

from trt_runtime.runners.base import Runner, open_runner

__all__ = ["Runner", "open_runner"]
