"""Build a TensorRT engine from a nanosam2 ONNX graph, with trtexec's flag spellings.

    python engines/build_engine.py --onnx=image_encoder.onnx --saveEngine=image_encoder.engine --fp16
    python engines/build_engine.py --onnx=mask_decoder.onnx --saveEngine=mask_decoder.engine \\
        --minShapes=point_coords:1x1x2,point_labels:1x1 --maxShapes=point_coords:64x16x2,point_labels:64x16
    python engines/build_engine.py --onnx=image_encoder.int8.onnx --saveEngine=enc.int8.engine --int8   # Q/DQ graph
    python engines/build_engine.py --onnx=image_encoder.onnx --saveEngine=enc.int8.engine --int8 \\
        --calib-data=calib/sa1_512.npy --calib=enc.calib.cache                                     # TensorRT <= 10

    python engines/build_engine.py --trt-flavour=rtx --onnx=image_encoder.onnx --saveEngine=enc.engine --fp16 \\
        --computeCapabilities=8.6,8.9                                      # TensorRT-RTX, no GPU needed

Profiles default from the graph (decoder: 1..64 prompts, 1..16 points); flags given override
them per input. On TensorRT 11 precision comes from the graph: --fp16 converts an FP32 graph to
FP16 first, --int8 needs a Q/DQ graph (python -m calib.qdq). On TensorRT 10 the flags map to
builder flags as in trtexec; a Q/DQ graph is built strongly typed. The engine is written under
a temporary name and renamed when complete, with ENGINE.json beside it (TensorRT version, GPU,
precision, profile, ONNX hash, build time, and the graph's nanosam2 contract for the runtime).
TensorRT-RTX (``--trt-flavour=rtx``, or the only TensorRT installed) has TensorRT 11's API and builds
on the CPU; the record then names the flavour and the compute capabilities the engine targets.
Shapes, names and min <= opt <= max are checked before TensorRT is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Sequence

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.records import ENGINE_RECORD_KEYS, ENGINE_SUFFIXES, engine_record_path, file_sha256, is_our_engine
from nanosam2.utils.atomic import check_output_file, staged
from nanosam2.utils.outputs import check_replaceable_file, record_has
from nanosam2.utils.cli import ArgumentParser, run_cli, setup_logging
from nanosam2.utils.tensorrt_flavour import FLAVOURS, RTX, import_tensorrt
from engines.builder import BuilderOptions, build_serialized
from engines.plan import BuildPlan, BuildRequest, OnnxInfo, compute_capability_names, plan_build, read_onnx_info, resolve_profile
from engines.trtexec_args import parse_memory_pools, parse_shapes

logger = logging.getLogger("engines.build_engine")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python engines/build_engine.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="ONNX graph from export.onnx or calib.qdq")
    parser.add_argument("--saveEngine", required=True, help="engine file to write (.engine or .plan)")
    parser.add_argument("--fp16", action="store_true", help="FP16 (TensorRT 11: converts an FP32 graph to FP16 first)")
    parser.add_argument("--int8", action="store_true", help="INT8 (Q/DQ graph; on TensorRT <= 10 also implicit calibration)")
    parser.add_argument("--best", action="store_true", help="all precisions the graph and TensorRT allow")
    parser.add_argument("--calib", help="TensorRT <= 10: INT8 calibration cache to read, or write after calibrating")
    parser.add_argument("--calib-data", "--calibData", dest="calib_data",
                        help="TensorRT <= 10: calibration data from calib.prepare (.npy; decoder: .decoder.npz)")
    parser.add_argument("--minShapes", help="name:DxD,... smallest shapes of the profile")
    parser.add_argument("--optShapes", help="name:DxD,... shapes TensorRT tunes for")
    parser.add_argument("--maxShapes", help="name:DxD,... largest shapes of the profile")
    parser.add_argument("--memPoolSize", help="pool:size[,pool:size], e.g. workspace:4096M (units B, K, M, G; default M)")
    parser.add_argument("--timingCacheFile", help="timing cache to read and update (speeds up rebuilds)")
    parser.add_argument("--builderOptimizationLevel", type=int, choices=range(0, 6), metavar="0-5",
                        help="builder optimization level (TensorRT default 3)")
    parser.add_argument("--useDLACore", type=int, help="Jetson: build for this DLA core")
    parser.add_argument("--allowGPUFallback", action="store_true", help="Jetson DLA: run unsupported layers on the GPU")
    parser.add_argument("--versionCompatible", action="store_true", help="engine loadable by later TensorRT versions")
    parser.add_argument("--trt-flavour", choices=FLAVOURS,
                        help="tensorrt (TensorRT 10/11) or rtx (TensorRT-RTX); default: whichever is installed, "
                             "tensorrt first (or $NANOSAM2_TRT_FLAVOUR)")
    parser.add_argument("--computeCapabilities",
                        help="TensorRT-RTX: target GPUs, e.g. 8.6,8.9,12.0 or 'current' (default: TensorRT-RTX's "
                             "portable set: Ampere and later)")
    parser.add_argument("--verbose", action="store_true", help="TensorRT verbose log and debug logging")
    return parser


def request_from_args(args: argparse.Namespace) -> BuildRequest:
    return BuildRequest(
        fp16=args.fp16, int8=args.int8, best=args.best, calib_cache=args.calib, calib_data=args.calib_data,
        min_shapes=parse_shapes(args.minShapes, "minShapes") if args.minShapes else {},
        opt_shapes=parse_shapes(args.optShapes, "optShapes") if args.optShapes else {},
        max_shapes=parse_shapes(args.maxShapes, "maxShapes") if args.maxShapes else {},
        dla_core=args.useDLACore, allow_gpu_fallback=args.allowGPUFallback, version_compatible=args.versionCompatible,
        compute_capabilities=tuple(args.computeCapabilities.split(",")) if args.computeCapabilities else ())


def sidecar(info: OnnxInfo, plan: BuildPlan, trt_version: str, gpu: str | None, seconds: float,
            engine_sha256: str) -> dict:
    contract = info.contract
    record: dict = {
        "tensorrt_flavour": plan.flavour, "tensorrt_version": trt_version, "gpu": gpu,
        "compute_capabilities": (plan.compute_capabilities or "default") if plan.flavour == RTX else None,
        "precision": plan.precision,
        "strongly_typed": plan.strongly_typed, "builder_flags": plan.builder_flags,
        "profile": {name: {"min": lo, "opt": opt, "max": hi} for name, (lo, opt, hi) in plan.profile.items()},
        "onnx": str(info.path), "onnx_sha256": file_sha256(info.path), "engine_sha256": engine_sha256,
        "build_seconds": round(seconds, 2),
        "notes": plan.notes,
    }
    if contract is not None:
        contract.precision = plan.precision
        record[C.METADATA_KEY] = contract.to_json()
    return record


def check_build_request(onnx: str | Path, engine: str | Path, request: BuildRequest,
                        timing_cache: str | Path | None = None) -> OnnxInfo:
    """Everything that can be checked without TensorRT: the graph, the profile, the output paths
    (writable, not a folder, never one of the inputs)."""
    info = read_onnx_info(onnx)
    resolve_profile(info, request)  # names, ranks, dims >= 1, min <= opt <= max, prompt counts agree
    compute_capability_names(request.compute_capabilities)  # spelling; the flavour's limits come with the plan
    inputs = [onnx, request.calib_data, timing_cache]
    check_output_file(engine, inputs=inputs, what="--saveEngine")
    if Path(engine).suffix.lower() not in ENGINE_SUFFIXES:
        raise NanoSam2Error(f"--saveEngine {engine}: an engine file ends in {', '.join(ENGINE_SUFFIXES)} (every command "
                            "chooses how to read a file by its suffix)")
    check_output_file(engine_record_path(engine), inputs=inputs, what="engine record")
    record = engine_record_path(engine)  # an engine (and its record) is replaced only when build_engine wrote both
    ours = is_our_engine(engine)
    check_replaceable_file(engine, "build_engine", lambda _: ours, "--saveEngine")
    check_replaceable_file(record, "build_engine", lambda p: ours or (record_has(p, *ENGINE_RECORD_KEYS)
                                                                      and not Path(engine).exists()), "engine record")
    if request.calib_cache:
        check_output_file(request.calib_cache, inputs=[onnx, request.calib_data, engine], what="--calib cache")
    if request.calib_data and not Path(request.calib_data).is_file():
        raise NanoSam2Error(f"no such calibration data: {request.calib_data}")
    return info


def build_engine(onnx: str | Path, engine: str | Path, request: BuildRequest | None = None,
                 options: BuilderOptions | None = None) -> dict:
    """``build_engine.py`` as a function: check, plan, build, then publish the engine and its
    ``ENGINE.json`` record together. Returns the record."""
    request, options = request or BuildRequest(), options or BuilderOptions()
    if options.timing_cache is not None and not request.timing_cache:  # the plan judges it (TensorRT-RTX has none)
        request = dataclasses.replace(request, timing_cache=True)
    engine_path = Path(engine)
    info = check_build_request(onnx, engine_path, request, options.timing_cache)
    tensorrt = import_tensorrt(options.flavour, "building engines")
    trt = tensorrt.module
    plan = plan_build(info, request, tensorrt.version, tensorrt.flavour)
    for note in plan.notes:
        logger.info(note)
    logger.info("%s: precision %s, strongly typed %s, flags %s, profile %s", tensorrt.label, plan.precision,
                plan.strongly_typed, plan.builder_flags or "none",
                {n: f"{lo}..{hi}" for n, (lo, _, hi) in plan.profile.items() if lo != hi})
    from nanosam2.utils.cuda_api import require_gpu

    cuda = None
    if "CURRENT" in plan.compute_capabilities:  # TensorRT's own error would blame the driver
        require_gpu("--computeCapabilities=current (the GPU of this machine)")
    if tensorrt.flavour != RTX:  # TensorRT builds on (and for) a GPU; TensorRT-RTX ahead of time on the CPU
        cuda = require_gpu(f"building with {tensorrt.label} (TensorRT-RTX builds on the CPU: --trt-flavour rtx)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        onnx_path = info.path
        if plan.convert_to_fp16:
            import onnx as onnx_lib

            from nanosam2.utils.onnx_passes import save_checked, to_fp16

            onnx_path = Path(work) / f"{info.path.stem}.fp16.onnx"
            save_checked(to_fp16(onnx_lib.load(str(info.path))), onnx_path)
        calibrator = None
        if plan.use_calibrator:
            from calib.int8_calibrator import make_entropy_calibrator
            from calib.qdq import load_feeds

            graph = info.contract.graph if info.contract else C.ENCODER
            feeds = load_feeds(graph, request.calib_data) if request.calib_data else []
            calibrator = make_entropy_calibrator(trt, feeds, request.calib_cache, cuda)
        serialized = build_serialized(trt, plan, onnx_path, options, calibrator)
    seconds = time.perf_counter() - start
    record = sidecar(info, plan, tensorrt.version, cuda.device_name() if cuda is not None else None, seconds,
                     hashlib.sha256(serialized).hexdigest())
    with staged([engine_path, engine_record_path(engine_path)]) as (engine_tmp, record_tmp):
        engine_tmp.write_bytes(serialized)
        record_tmp.write_text(json.dumps(record, indent=1))
    logger.info("wrote %s (%.1f MB, %s, built in %.1f s with %s)", engine_path, len(serialized) / 1e6,
                plan.precision, seconds, tensorrt.label)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # an empty flag is refused there, as in every command
    setup_logging(args.verbose)
    request = request_from_args(args)  # shape strings parse before anything else
    pools = parse_memory_pools(args.memPoolSize) if args.memPoolSize else {}
    options = BuilderOptions(pools, Path(args.timingCacheFile) if args.timingCacheFile else None,
                             args.builderOptimizationLevel, args.useDLACore, args.verbose, args.trt_flavour)
    record = build_engine(args.onnx, args.saveEngine, request, options)
    label = "TensorRT-RTX" if record["tensorrt_flavour"] == RTX else "TensorRT"
    print(f"wrote {args.saveEngine} ({record['precision']}, built in {record['build_seconds']:.1f} s with {label} "
          f"{record['tensorrt_version']}) and {engine_record_path(args.saveEngine).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
