"""What a build will do, decided before TensorRT is touched (and testable without it).

TensorRT 10.x: ``--fp16``/``--int8``/``--best`` map to builder flags as trtexec does; a graph with
Q/DQ nodes is built strongly typed (precision from the graph), and INT8 without Q/DQ needs
implicit calibration (a cache, or our calibration data) - deprecated since 10.1 but what JetPack
6 (TensorRT 10.3) users have. TensorRT 11.x removed the precision flags, the calibrator and weak
typing: ``--fp16`` converts an FP32 graph to an FP16 graph first, ``--int8`` requires a Q/DQ graph.
(docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html)

TensorRT-RTX (version 1.x) has TensorRT 11's API and is planned as 11, with its own limits: no
timing cache (it has no effect there and forces a GPU query, which breaks the CPU-only build:
docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/timing-cache-migration.html), no
DLA, no version-compatible engines (an engine runs only with the TensorRT-RTX release that built it:
.../inference-library/engine-compatibility.html), and target compute capabilities instead
(default: TensorRT-RTX's own portable set; .../inference-library/cpu-engines.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanosam2 import contract as C
from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.tensorrt_flavour import LABELS, RTX, TENSORRT, api_major

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]


@dataclass
class OnnxInfo:
    """What the plan needs to know about the ONNX file (read with onnx, not TensorRT)."""

    path: Path
    inputs: dict[str, list[int | str]]  # dims: int, or a symbolic name for a dynamic one
    has_qdq: bool
    contract: GraphContract | None


@dataclass
class BuildRequest:
    fp16: bool = False
    int8: bool = False
    best: bool = False
    calib_cache: str | None = None
    calib_data: str | None = None
    min_shapes: dict[str, Shape] = field(default_factory=dict)
    opt_shapes: dict[str, Shape] = field(default_factory=dict)
    max_shapes: dict[str, Shape] = field(default_factory=dict)
    dla_core: int | None = None
    allow_gpu_fallback: bool = False
    version_compatible: bool = False
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX: "8.6", "12.0", or "current"
    timing_cache: bool = False  # a timing cache file was given (build_engine sets it from BuilderOptions)


@dataclass
class BuildPlan:
    trt_major: int  # the API generation: 10 or 11 (TensorRT-RTX: 11)
    strongly_typed: bool
    builder_flags: list[str]
    convert_to_fp16: bool
    use_calibrator: bool
    profile: Profile
    precision: str
    notes: list[str] = field(default_factory=list)
    flavour: str = TENSORRT
    compute_capabilities: list[str] = field(default_factory=list)  # ComputeCapability member names (RTX)


def trt_major(version: str, flavour: str = TENSORRT) -> int:
    return api_major(flavour, version)


def compute_capability_names(values: tuple[str, ...]) -> list[str]:
    """``("8.6", "12.0", "current")`` -> ``["SM86", "SM120", "CURRENT"]`` (TensorRT-RTX's ComputeCapability names)."""
    names = []
    for value in values:
        text = value.strip().lower()
        if text == "current":
            names.append("CURRENT")
            continue
        major, dot, minor = text.partition(".")
        if not (dot and major.isdigit() and minor.isdigit() and len(minor) == 1):
            raise NanoSam2Error(f"--computeCapabilities: {value!r} is not a compute capability such as 8.6 or 12.0 "
                                "(or 'current': the GPU of this machine)")
        names.append(f"SM{int(major)}{int(minor)}")
    if "CURRENT" in names and len(names) > 1:
        raise NanoSam2Error("--computeCapabilities: 'current' stands alone (it means the GPU of this machine)")
    if len(set(names)) != len(names):
        raise NanoSam2Error(f"--computeCapabilities: {', '.join(values)} names one twice")
    return names


def read_onnx_info(path: str | Path) -> OnnxInfo:
    from nanosam2.utils.onnx_passes import load_onnx

    file = Path(path)
    model = load_onnx(file)
    initializers = {i.name for i in model.graph.initializer}
    inputs = {i.name: [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input if i.name not in initializers}
    try:
        contract: GraphContract | None = GraphContract.from_metadata({p.key: p.value for p in model.metadata_props},
                                                                     str(file))
    except NanoSam2Error:
        contract = None
    return OnnxInfo(file, inputs, any(n.op_type in QDQ_OPS for n in model.graph.node), contract)


def default_profile(info: OnnxInfo) -> Profile:
    """Fixed inputs get their shape; each dynamic axis the default profile of its entry in the table of
    graphs (``nanosam2.contract.GRAPH_SPECS``: a decoder 1..64 prompts and 1..16 points, opt 1 x 3; the
    preprocess graph images of 2..4096 pixels a side, opt 1024; an encoder batch of 1; memory attention
    1..16 spatial memories, opt 7: a full SAM2.1 bank, and 0..16 object pointers; the memory encoder a
    mask of S/4, a prediction, to S, a mask prompt); an axis the table does not know gets 1."""
    image_size = info.contract.image_size if info.contract is not None else C.IMAGE_SIZE
    profile: Profile = {}
    for name, dims in info.inputs.items():
        ranges = []
        for index, dim in enumerate(dims):
            axis = C.input_axis(name, index)
            if isinstance(dim, int) and dim > 0:
                ranges.append((dim, dim, dim))
            else:
                ranges.append(axis.profile_for(image_size) if axis is not None else (1, 1, 1))
        lo, opt, hi = (tuple(r[i] for r in ranges) for i in range(3))
        profile[name] = (lo, opt, hi)
    return profile


def resolve_profile(info: OnnxInfo, request: BuildRequest) -> Profile:
    """Defaults overridden by --minShapes/--optShapes/--maxShapes, validated against the graph."""
    given = {**request.min_shapes, **request.opt_shapes, **request.max_shapes}
    unknown = sorted(set(given) - set(info.inputs))
    if unknown:
        raise NanoSam2Error(f"{', '.join(unknown)} not an input of {info.path.name}; inputs: {', '.join(info.inputs)}")
    profile = default_profile(info)
    for name in given:
        lo, opt, hi = profile[name]
        lo = request.min_shapes.get(name, lo)
        hi = request.max_shapes.get(name, hi)
        opt = request.opt_shapes.get(name, opt)
        profile[name] = (lo, opt, hi)
    for name, (lo, opt, hi) in profile.items():
        dims = info.inputs[name]
        if not len(lo) == len(opt) == len(hi) == len(dims):
            raise NanoSam2Error(f"{name}: shapes {lo}, {opt}, {hi} do not have the graph's rank {len(dims)}")
        for axis, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0 and not lo[axis] == opt[axis] == hi[axis] == dim:
                raise NanoSam2Error(f"{name}: axis {axis} is fixed to {dim} in the graph, got {lo[axis]}/{opt[axis]}/{hi[axis]}")
        # empty tensors (TensorRT supports zero-size dimensions) only where a graph takes "none yet"
        empty_ok = name in C.MAY_BE_EMPTY
        if any(d < 1 for d in (*lo[1:], *opt, *hi)) or lo[0] < (0 if empty_ok else 1):
            least = "the first dimension at least 0, the others 1" if empty_ok else "every dimension must be at least 1"
            raise NanoSam2Error(f"{name}: {least}, got min {lo}, opt {opt}, max {hi}")
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise NanoSam2Error(f"{name}: needs min <= opt <= max on every axis, got min {lo}, opt {opt}, max {hi}")
    for index, which in enumerate(("min", "opt", "max")):  # one decoder call: prompt and point counts agree
        C.check_decoder_shapes({name: shapes[index] for name, shapes in profile.items()}, f"--{which}Shapes")
    return profile


def check_flavour_request(request: BuildRequest, flavour: str) -> list[str]:
    """What one flavour cannot honour, refused before any work; returns the compute capabilities."""
    if flavour != RTX:
        if request.compute_capabilities:
            raise NanoSam2Error("--computeCapabilities is a TensorRT-RTX option (TensorRT builds for the GPU it runs on); "
                                "use --trt-flavour rtx, or leave it out")
        return []
    label = LABELS[RTX]
    if request.timing_cache:
        raise NanoSam2Error(f"{label} has no timing cache (it does not change the engine and forces a GPU query that "
                            "breaks CPU-only builds); leave out --timingCacheFile, and use the runtime's --runtime-cache "
                            "for its just-in-time kernels")
    if request.dla_core is not None or request.allow_gpu_fallback:
        raise NanoSam2Error(f"{label} builds for RTX GPUs and has no DLA; leave out --useDLACore/--allowGPUFallback "
                            "(Jetson: use JetPack's TensorRT)")
    if request.version_compatible:
        raise NanoSam2Error(f"{label} engines run only with the {label} release that built them; leave out "
                            "--versionCompatible and rebuild after an upgrade")
    return compute_capability_names(request.compute_capabilities)


def plan_build(info: OnnxInfo, request: BuildRequest, trt_version: str, flavour: str = TENSORRT) -> BuildPlan:
    """Dispatch the precision request on the TensorRT API generation, the flavour and the graph's content."""
    major = trt_major(trt_version, flavour)
    if major < 10:
        raise NanoSam2Error(f"TensorRT {trt_version} is too old: nanosam2 needs TensorRT 10 or 11 (or TensorRT-RTX)")
    capabilities = check_flavour_request(request, flavour)
    profile = resolve_profile(info, request)
    want_fp16 = request.fp16 or request.best
    want_int8 = request.int8 or request.best
    graph_precision = info.contract.precision if info.contract else "fp32"
    notes: list[str] = []
    if info.contract is not None and C.GRAPH_SPECS[info.contract.graph].fp32_only and (want_fp16 or want_int8):
        notes.append(f"{info.contract.graph} stays FP32 (the precision policy of nanosam2.contract.GRAPH_SPECS)")
        want_fp16 = want_int8 = False
    flags: list[str] = []
    convert, calibrate = False, False
    if major >= 11:
        strongly_typed = True
        api = "TensorRT-RTX" if flavour == RTX else "TensorRT 11"
        if request.calib_cache or request.calib_data:
            removed = "TensorRT-RTX has no" if flavour == RTX else "TensorRT 11 removed"
            raise NanoSam2Error(f"{removed} implicit INT8 calibration (--calib/--calib-data); "
                                "make a Q/DQ graph: python -m calib.qdq --onnx MODEL.onnx --calib calib/sa1_512.npy "
                                "--out MODEL.int8.onnx")
        if request.int8 and want_int8 and not info.has_qdq:
            raise NanoSam2Error(f"--int8 on {api} needs a Q/DQ graph and {info.path.name} has none: "
                                f"python -m calib.qdq --onnx {info.path.name} --calib calib/sa1_512.npy "
                                f"--out {info.path.stem}.int8.onnx")
        if want_fp16 and graph_precision == "fp32" and not info.has_qdq:
            convert = True
            notes.append(f"{api} has no FP16 flag: the FP32 graph is converted to an FP16 graph first "
                         "(FP32 I/O, norms and point Fourier features kept in FP32)")
        precision = "int8" if info.has_qdq else ("fp16" if want_fp16 or graph_precision == "fp16" else "fp32")
        if info.has_qdq:  # said as TensorRT 10's branch says it
            notes.append("Q/DQ graph: built strongly typed, precision comes from the graph")
            if request.fp16 or request.best:
                notes.append("--fp16 ignored: strongly typed networks take no precision flags")
        elif request.best:
            notes.append(f"--best: no INT8 on {api} without a Q/DQ graph (python -m calib.qdq makes one): built "
                         f"{precision.upper()}")
    else:
        if info.has_qdq:
            strongly_typed = True
            notes.append("Q/DQ graph: built strongly typed, precision comes from the graph")
            if want_fp16:
                notes.append("--fp16 ignored: strongly typed networks take no precision flags")
            precision = "int8"
        else:
            strongly_typed = False
            if want_fp16:
                flags.append("FP16")
            if want_int8:
                if not (request.calib_cache or request.calib_data):
                    raise NanoSam2Error("--int8 without Q/DQ nodes needs calibration: --calib=CACHE or "
                                        "--calib-data=calib/sa1_512.npy (or a Q/DQ graph from python -m calib.qdq)")
                flags.append("INT8")
                calibrate = True
                notes.append("implicit INT8 calibration (deprecated since TensorRT 10.1, removed in 11)")
            precision = "int8" if want_int8 else ("fp16" if want_fp16 else graph_precision)
    if request.allow_gpu_fallback and request.dla_core is None:
        raise NanoSam2Error("--allowGPUFallback goes with --useDLACore=N (it lets DLA layers fall back to the GPU)")
    if request.dla_core is not None:
        if request.allow_gpu_fallback:
            flags.append("GPU_FALLBACK")
        notes.append(f"layers on DLA core {request.dla_core}" + (" with GPU fallback" if request.allow_gpu_fallback else ""))
    if request.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if capabilities:
        notes.append(f"compute capabilities: {', '.join(capabilities)}")
    return BuildPlan(major, strongly_typed, flags, convert, calibrate, profile, precision, notes, flavour, capabilities)
