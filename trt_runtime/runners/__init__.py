"""Backends behind one interface (Polygraphy-style runners): ``infer(feed) -> outputs``.

The interface is ``nanosam2.inference.runner.Runner``; each runner module here imports it and
its own heavy dependency lazily, so ``import trt_runtime`` works on a Jetson with only numpy,
pillow, tensorrt and cuda-python. ``trt_runtime.factory.open_runner`` picks one by file type.
"""

from nanosam2.inference.runner import Runner

__all__ = ["Runner"]
