"""The TensorRT calls of an engine build (10.x and 11.x), following a :class:`BuildPlan`.

API pages checked: Builder / IBuilderConfig / IOptimizationProfile / OnnxParser /
ITimingCache under docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/
(``create_network``, ``create_builder_config``, ``set_memory_pool_limit``, ``set_flag``,
``builder_optimization_level``, ``create_optimization_profile``, ``set_shape``,
``add_optimization_profile``, ``create_timing_cache``, ``set_timing_cache``,
``build_serialized_network``, ``parse_from_file``), and for TensorRT <= 10 only,
``int8_calibrator`` and ``set_calibration_profile`` (removed in 11, never reached there).
TensorRT-RTX (same API as 11): ``num_compute_capabilities`` and ``set_compute_capability``
(docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/cpu-engines.html); the parser's
``ParserError.node_name`` / ``node_operator`` / ``desc`` name the node a graph fails on, reported in one
line while the logger's ``min_severity`` keeps TensorRT from printing the same error again
(.../python-api/infer/Core/Logger.html).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import atomic_path
from nanosam2.utils.tensorrt_flavour import LABELS, make_logger, quiet
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
    flavour: str | None = None  # "tensorrt" | "rtx" | None: whichever is installed (nanosam2.utils.tensorrt_flavour)


def parser_error(error: Any, graph: str) -> str:
    """One line for a graph the parser rejects: the node, its op and TensorRT's reason."""
    reason = str(error.desc()).strip().splitlines()[0] if error.desc() else "unknown reason"
    node, op = str(error.node_name() or "").strip(), str(error.node_operator() or "").strip()
    where = f"node {node} ({op})" if node else (f"a {op} node" if op else f"node #{error.node()}")
    return f"TensorRT cannot parse {graph}: {where}: {reason}"


def build_serialized(trt: Any, plan: BuildPlan, onnx_path: Path, options: BuilderOptions,
                     calibrator: Any = None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine as ``plan`` says."""
    trt_logger: Any = make_logger(trt, options.verbose)
    builder: trt_types.Builder = trt.Builder(trt_logger)
    if options.dla_core is not None:  # before any work: IBuilder.num_DLA_cores (TensorRT 10) says what is there
        available = int(getattr(builder, "num_DLA_cores", 0))
        if not 0 <= options.dla_core < available:
            raise NanoSam2Error(f"--useDLACore={options.dla_core}: this machine has {available} DLA core(s) "
                                "(DLA is on Jetson AGX Orin / Orin NX); leave it out to build for the GPU")
    flags = 0
    if plan.strongly_typed and plan.trt_major < 11:  # always strongly typed from 11 on
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: trt_types.INetworkDefinition = builder.create_network(flags)
    parser: trt_types.OnnxParser = trt.OnnxParser(network, trt_logger)
    with quiet(trt, trt_logger):  # the parser's errors are said once, below
        parsed = parser.parse_from_file(str(onnx_path))
    if not parsed:
        if parser.num_errors:
            raise NanoSam2Error(parser_error(parser.get_error(0), onnx_path.name))
        raise NanoSam2Error(f"TensorRT cannot parse {onnx_path.name} (and recorded no error)")
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
    if plan.compute_capabilities:  # TensorRT-RTX; none set = its default portable set
        known = trt.ComputeCapability.__members__
        unknown = [name for name in plan.compute_capabilities if name not in known]
        if unknown:
            offered = ", ".join(n for n in known if n.startswith("SM"))
            raise NanoSam2Error(f"{LABELS[plan.flavour]} {trt.__version__} cannot build for {', '.join(unknown)}; "
                                f"it offers {offered} and CURRENT")
        rtx_config: Any = config  # TensorRT-RTX's API: not in TensorRT 10's stubs that mypy checks against
        rtx_config.num_compute_capabilities = len(plan.compute_capabilities)
        for index, name in enumerate(plan.compute_capabilities):
            if not rtx_config.set_compute_capability(getattr(trt.ComputeCapability, name), index):
                raise NanoSam2Error(f"{LABELS[plan.flavour]} refused compute capability {name}")
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
        raise NanoSam2Error(f"TensorRT could not build {onnx_path.name} (its log above says why)")
    if options.timing_cache is not None:
        cache = config.get_timing_cache()
        if cache is not None:
            with atomic_path(options.timing_cache) as tmp:
                tmp.write_bytes(bytes(cache.serialize()))
    return bytes(serialized)
