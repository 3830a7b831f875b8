"""The TensorRT calls of an engine build (10.x and 11.x), following a :class:`BuildPlan`.

API pages checked: Builder / IBuilderConfig / IOptimizationProfile / OnnxParser /
ITimingCache under docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/
(``create_network``, ``create_builder_config``, ``set_memory_pool_limit``, ``set_flag``,
``builder_optimization_level``, ``create_optimization_profile``, ``set_shape``,
``add_optimization_profile``, ``create_timing_cache``, ``set_timing_cache``,
``build_serialized_network``, ``parse_from_file``), and for TensorRT <= 10 only,
``int8_calibrator`` and ``set_calibration_profile`` (removed in 11, never reached there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import atomic_path
from engines.plan import BuildPlan

if TYPE_CHECKING:  # checked by mypy against tensorrt-stubs
    import tensorrt as trt_types

logger = logging.getLogger(__name__)


@dataclass
class BuilderOptions:
    memory_pools: dict[str, int] = field(default_factory=dict)  # MemoryPoolType name -> bytes
    timing_cache: Path | None = None
    optimization_level: int | None = None
    dla_core: int | None = None
    verbose: bool = False


def build_serialized(trt: Any, plan: BuildPlan, onnx_path: Path, options: BuilderOptions,
                     calibrator: Any = None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine as ``plan`` says."""
    trt_logger = trt.Logger(trt.Logger.VERBOSE if options.verbose else trt.Logger.WARNING)
    builder: trt_types.Builder = trt.Builder(trt_logger)
    flags = 0
    if plan.strongly_typed and plan.trt_major < 11:  # always strongly typed from 11 on
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: trt_types.INetworkDefinition = builder.create_network(flags)
    parser: trt_types.OnnxParser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise NanoSam2Error(f"TensorRT could not parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}")
    config: trt_types.IBuilderConfig = builder.create_builder_config()
    for pool, size in options.memory_pools.items():
        config.set_memory_pool_limit(getattr(trt.MemoryPoolType, pool), size)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    profile: trt_types.IOptimizationProfile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.profile.items():
        profile.set_shape(name, trt.Dims(lo), trt.Dims(opt), trt.Dims(hi))
    config.add_optimization_profile(profile)
    if plan.use_calibrator:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
    if options.timing_cache is not None:
        previous = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(previous), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise NanoSam2Error("TensorRT could not build the engine (see the TensorRT log above)")
    if options.timing_cache is not None:
        cache = config.get_timing_cache()
        if cache is not None:
            with atomic_path(options.timing_cache) as tmp:
                tmp.write_bytes(bytes(cache.serialize()))
    return bytes(serialized)
