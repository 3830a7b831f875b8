"""The GPU proof in one short call: every GPU check and timing, each part in its own time box.

    bash scripts/gpu_check.sh                  # on a CUDA machine: install carried wheels, run every part
    bash scripts/gpu_check.sh --cpu-dry-run    # the same plumbing on a CPU, tiny (the test suite runs it)

GPU machines come rarely and briefly, so the whole proof is one command that ends in about six
minutes (``--budget``), leaving time for a second try. Wheels the machine lacks (Meta's ``sam2``,
hydra-core, iopath, PyAV, pycocotools, TensorRT-RTX: built or downloaded here for its Python) are
installed from ``--wheels`` into a temporary folder first. Each part runs in a child process with its
own time box (``--box PART=SECONDS`` changes one); a part whose box runs out is stopped and reported
as skipped with that reason, keeping the rows it had; a part that raises is a failure, and the
command then exits 1. Timings synchronise before reading the clock (CUDA events on a GPU), warm up
first, and report median and p90.

Parts: ``gpu-tests`` (the ``gpu``-marked tests), ``encoder`` (image encoder of every backbone at
fp32/fp16/bf16, eager, CUDA graph and torch.compile for resnet18/hiera_t, batch 1 and 8, plus
resnet18 timed without synchronisation the way the research code timed it), ``predict`` (set_image +
one box, every backbone and dtype), ``tracking`` (per-frame stages, resnet18 and hiera_t against
Meta's SAM2VideoPredictor under bf16 autocast as Meta runs it), ``everything`` (32x32 grid against
Meta's SAM2AutomaticMaskGenerator) and ``tensorrt-rtx`` (engines built with TensorRT-RTX and run
against ONNX Runtime on the same graphs: mask IoU and timings).

Writes ``OUT/<gpu>-<date>.{json,md,png}`` (``--out``, default ``benchmarks/results``; copied to
``$OUT`` when that is set, as on the device machine) and prints the compact table last.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks.report import Measurement, Report
from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import ArgumentParser, run_cli, setup_logging

logger = logging.getLogger("benchmarks.gpu_check")

def all_backbones() -> tuple[str, ...]:
    """Every registered student, then the two teachers Meta's predictors are timed with."""
    from nanosam2.modeling.backbones import list_backbones

    return (*list_backbones(), "hiera_t", "hiera_s")
COMPILED = ("resnet18", "hiera_t")  # torch.compile costs minutes per model: only these two
DTYPES = ("fp32", "fp16", "bf16")
DEFAULT_BUDGET_S = 330.0


@dataclass
class Plan:
    """What the parts do: the full GPU run, or the tiny CPU dry run of the same plumbing."""

    device: str
    dry_run: bool
    backbones: tuple[str, ...] = field(default_factory=all_backbones)
    dtypes: tuple[str, ...] = DTYPES
    modes: tuple[str, ...] = ("eager", "cuda-graph", "compile")
    batches: tuple[int, ...] = (1, 8)
    runs: int = 20
    warmup: int = 3
    test_paths: tuple[str, ...] = ("tests",)
    track_backbones: tuple[str, ...] = ("resnet18", "hiera_t")
    track_frames: int = 10
    onnx_dir: str | None = None  # an export to build the TensorRT-RTX engines from (default: export resnet18 here)
    work_dir: str = ""

    @classmethod
    def for_run(cls, dry_run: bool, work_dir: Path, onnx_dir: str | None) -> "Plan":
        if not dry_run:
            return cls("cuda", False, onnx_dir=onnx_dir, work_dir=str(work_dir))
        return cls("cpu", True, backbones=("resnet18",), dtypes=("fp32",), modes=("eager",), batches=(1,), runs=2,
                   warmup=1, test_paths=("tests/test_pipeline_graphs.py",), track_backbones=(), track_frames=0,
                   onnx_dir=onnx_dir, work_dir=str(work_dir))


@dataclass
class PartResult:
    name: str
    status: str  # passed | failed | skipped
    seconds: float
    reason: str = ""
    rows: list[dict] = field(default_factory=list)


class Rows:
    """A part's results, appended to a JSON-lines file as they come (a part stopped at its box keeps them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, backbone: str, backend: str, precision: str, stage: str, median_ms: float | None = None,
            p90_ms: float | None = None, runs: int = 0, skipped: str | None = None, **extra: Any) -> None:
        row = asdict(Measurement(backbone, backend, precision, stage, median_ms, p90_ms, runs, skipped))
        with self.path.open("a") as f:
            f.write(json.dumps({**row, **extra}) + "\n")

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


# --- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], object], plan: Plan, synchronize: bool = True) -> tuple[float, float]:
    """(median, p90) ms of ``fn`` after warm-up: CUDA events on a GPU, the wall clock on a CPU.
    ``synchronize=False`` reads the wall clock without waiting for the GPU (what launch-only timing sees)."""
    import torch

    cuda = plan.device == "cuda"
    for _ in range(plan.warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    samples = []
    for _ in range(plan.runs):
        if cuda and synchronize:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)))
        else:
            begin = time.perf_counter()
            fn()
            samples.append(1000.0 * (time.perf_counter() - begin))
    if cuda:
        torch.cuda.synchronize()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.9 * (len(samples) - 1)))]


def autocast(plan: Plan, dtype: str) -> Any:
    import contextlib

    import torch

    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(plan.device, dtype=torch.float16 if dtype == "fp16" else torch.bfloat16)


def build_model(backbone: str, device: str) -> Any:
    """A student or teacher with seeded random weights (timings are real, masks meaningless)."""
    from benchmarks.run_all import load_model

    return load_model(backbone, None)[0].to(device).eval()


# --- parts -----------------------------------------------------------------------------------


def part_gpu_tests(plan: Plan, rows: Rows) -> None:
    """The ``gpu``-marked tests (on a CPU they skip, which still proves they collect and run)."""
    import xml.etree.ElementTree as ET

    import pytest

    junit = Path(plan.work_dir) / "gpu-tests.xml"
    code = pytest.main(["-q", "-m", "gpu", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={junit}",
                        *plan.test_paths])
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    for case in suite.iter("testcase"):
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else \
            "skipped" if case.find("skipped") is not None else "passed"
        rows.add("-", "pytest", "-", f"{case.get('classname')}::{case.get('name')}", outcome=outcome)
    if code not in (0, 5):  # 5: no test selected
        raise NanoSam2Error(f"gpu tests: {counts['failures']} failed, {counts['errors']} errors of {counts['tests']}")


def part_encoder(plan: Plan, rows: Rows) -> None:
    import torch

    from nanosam2.modeling.predictor_graphs import ImageEncoderGraph

    for backbone in plan.backbones:
        model = build_model(backbone, plan.device)
        encoder = ImageEncoderGraph(model).eval()
        size = int(model.image_size)
        for batch in plan.batches:
            image = torch.randn(batch, 3, size, size, device=plan.device)
            for dtype in plan.dtypes:
                for mode in plan.modes:
                    if mode == "compile" and backbone not in COMPILED:
                        continue
                    median, p90 = _time_encoder(encoder, image, plan, dtype, mode)
                    rows.add(backbone, f"torch-{mode}", dtype, f"encoder_b{batch}", median, p90, plan.runs)
                    if backbone == "resnet18" and mode == "eager" and batch == 1:  # the research code's way
                        with torch.no_grad(), autocast(plan, dtype):
                            median, p90 = timed(lambda e=encoder, x=image: e(x), plan, synchronize=False)
                        rows.add(backbone, "torch-eager-unsynced", dtype, "encoder_b1", median, p90, plan.runs)
        del model, encoder
        if plan.device == "cuda":
            torch.cuda.empty_cache()


def _time_encoder(encoder: Any, image: Any, plan: Plan, dtype: str, mode: str) -> tuple[float, float]:
    import torch

    with torch.no_grad(), autocast(plan, dtype):
        if mode == "eager":
            return timed(lambda: encoder(image), plan)
        if mode == "compile":
            compiled = torch.compile(encoder)
            return timed(lambda: compiled(image), plan)
        # one CUDA graph of the whole encoder, replayed (static input buffer)
        static = image.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                encoder(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            encoder(static)
        return timed(graph.replay, plan)


def part_predict(plan: Plan, rows: Rows) -> None:
    """set_image + one box prediction through the runtime's Predictor: the benchmark cases run_all times too
    (benchmarks/cases.py), PyTorch at every dtype, with and without its pre/post-processing graphs."""
    from benchmarks.cases import Settings, run_cases, torch_cases

    settings = Settings(plan.runs, plan.runs, plan.warmup, Path(plan.work_dir) / "predict", 0)
    for backbone in plan.backbones:
        model = build_model(backbone, plan.device)
        report = Report({})
        run_cases(report, torch_cases(backbone, model, plan.device, plan.dtypes), settings, stages=("pipeline",))
        add_rows(rows, report)
        del model


def add_rows(rows: Rows, report: Report, precision: Callable[[Measurement], str] | None = None) -> None:
    """A report's measurements as a part's rows."""
    for m in report.measurements:
        rows.add(m.backbone, m.backend, precision(m) if precision else m.precision, m.stage, m.median_ms, m.p90_ms,
                 m.runs, m.skipped)


def part_tracking(plan: Plan, rows: Rows) -> None:
    """Per-frame stages of our tracker (PyTorch graphs) and of Meta's SAM2VideoPredictor, same frames."""
    from benchmarks.cases import Settings
    from benchmarks.tracking import meta_tracking_cases, tracking_cases
    from nanosam2.inference.video import VideoPredictor
    from nanosam2.inference.torch_runner import TorchRunner

    if not plan.track_backbones:
        raise Skip("no tracking in the dry run (a CPU frame takes seconds)")
    settings = Settings(plan.runs, plan.runs, plan.warmup, Path(plan.work_dir) / "tracking", 0, plan.track_frames)
    report = Report({})
    for backbone in plan.track_backbones:
        model = build_model(backbone, plan.device)
        tracking_cases(report, backbone, {("torch-eager", "fp32"): lambda model=model: VideoPredictor(
            *(TorchRunner(graph=g, model=model, device=plan.device) for g in C.TRACKER_GRAPHS))}, settings)
        del model
    with autocast(plan, "bf16"):  # as Meta runs its video predictor
        meta_tracking_cases(report, {"hiera_t": None}, settings)
    add_rows(rows, report, lambda m: "bf16-autocast" if m.backend.startswith("meta") else m.precision)


def part_everything(plan: Plan, rows: Rows) -> None:
    from benchmarks.cases import Settings, run_cases, torch_cases
    from benchmarks.run_all import meta_everything_cases

    if plan.dry_run:
        raise Skip("no segment everything in the dry run (3072 prompts take minutes on a CPU)")
    settings = Settings(1, 1, 0, Path(plan.work_dir) / "everything", 32, 0)
    report = Report({})
    model = build_model("resnet18", plan.device)
    run_cases(report, torch_cases("resnet18", model, plan.device, ("fp32",)), settings, stages=("everything",))
    meta_everything_cases(report, None, settings)
    add_rows(rows, report)


def part_tensorrt_rtx(plan: Plan, rows: Rows) -> None:
    """TensorRT-RTX engines (FP32, FP16) of resnet18's graphs, then, on a GPU, predict against ONNX Runtime on
    the same graphs: mask IoU and timings. Without a GPU: the builds only."""
    import numpy as np

    from benchmarks.cases import Settings, run_cases, sample_image, tensorrt_cases
    from engines.build_engine import build_engine
    from engines.builder import BuilderOptions
    from engines.plan import BuildRequest
    from nanosam2.metrics import mask_iou
    from nanosam2.utils.tensorrt_flavour import RTX, import_tensorrt
    from nanosam2.inference.factory import BackendOptions, load_predictor

    try:
        rtx = import_tensorrt(RTX)
    except NanoSam2Error as exc:
        raise Skip(str(exc).split(":")[0]) from None
    work = Path(plan.work_dir) / "rtx"
    if plan.onnx_dir:
        graphs = {g: Path(plan.onnx_dir) / f"{g}.onnx" for g in C.IMAGE_GRAPHS}
    else:
        from export.exporter import export_model

        graphs = {g: e.path for g, e in export_model(build_model("resnet18", "cpu"), "resnet18", work / "onnx",
                                                      video=False, verify=False).items()}
    image = sample_image()
    box = np.array([[120.0, 60.0, 400.0, 420.0]], np.float32)
    with load_predictor(graphs[C.ENCODER], graphs[C.DECODER]) as reference:
        reference.set_image(image)
        want = reference.predict(boxes=box)[0]
    for precision in ("fp32", "fp16"):
        engines = {}
        for graph in (C.ENCODER, C.DECODER):
            engines[graph] = work / f"{graph}.{precision}.engine"
            start = time.perf_counter()
            build_engine(graphs[graph], engines[graph], BuildRequest(fp16=precision == "fp16"), BuilderOptions(flavour=RTX))
            rows.add("resnet18", f"tensorrt-rtx {rtx.version}", precision, f"build_{graph}",
                     1000 * (time.perf_counter() - start), runs=1, engine_mb=engines[graph].stat().st_size / 1e6)
        if plan.device != "cuda":
            rows.add("resnet18", "tensorrt-rtx", precision, "pipeline", skipped="no GPU: built, not run")
            continue
        options = BackendOptions(trt_flavour=RTX, runtime_cache=str(work / "runtime.cache"))
        try:
            opened = load_predictor(engines[C.ENCODER], engines[C.DECODER], options)
        except NanoSam2Error as exc:  # e.g. a data-centre GPU outside TensorRT-RTX's compute capabilities
            if "cannot run here" in str(exc):
                raise Skip(f"TensorRT-RTX {rtx.version} does not run on this GPU: {exc}") from None
            raise
        with opened as predictor:
            predictor.set_image(image)
            got = predictor.predict(boxes=box)[0]
            iou = min(mask_iou(a, b) for a, b in zip(want.reshape(-1, *want.shape[-2:]), got.reshape(-1, *got.shape[-2:])))
        report = Report({})  # timed as every benchmark times a case (benchmarks/cases.py)
        settings = Settings(plan.runs, plan.runs, plan.warmup, work, 0)
        run_cases(report, tensorrt_cases("resnet18", {precision: (engines[C.ENCODER], engines[C.DECODER])},
                                         backend="tensorrt-rtx", options=options), settings, stages=("pipeline",))
        timing = next(m for m in report.measurements if m.stage == "pipeline")
        rows.add("resnet18", "tensorrt-rtx", precision, "pipeline", timing.median_ms, timing.p90_ms, timing.runs,
                 mask_iou_vs_onnxruntime=iou)
        if iou < (0.99 if precision == "fp32" else 0.98):
            raise NanoSam2Error(f"TensorRT-RTX {precision} masks differ from ONNX Runtime's: IoU {iou:.4f}")


class Skip(Exception):
    """A part that cannot run here, with the reason."""


PARTS: dict[str, tuple[float, Callable[[Plan, Rows], None]]] = {  # name -> (time box in s, function)
    "gpu-tests": (60.0, part_gpu_tests),
    "encoder": (110.0, part_encoder),
    "predict": (40.0, part_predict),
    "tracking": (60.0, part_tracking),
    "everything": (40.0, part_everything),
    "tensorrt-rtx": (60.0, part_tensorrt_rtx),
}


def _child(name: str, plan: Plan, rows_path: str, paths: list[str]) -> None:
    """One part in its own process (killed at its time box); its outcome goes into the rows file."""
    sys.path[:0] = paths
    setup_logging(False)
    rows = Rows(Path(rows_path))
    try:
        PARTS[name][1](plan, rows)
    except Skip as exc:
        rows.add("-", "-", "-", "part", skipped=str(exc), outcome="skipped")
    except BaseException as exc:  # noqa: B036  (reported, then the part's process ends with 1)
        text = str(exc).strip().splitlines()
        rows.add("-", "-", "-", "part", skipped=f"{type(exc).__name__}: {text[0] if text else ''}", outcome="failed")
        raise SystemExit(1) from None


def run_part(name: str, plan: Plan, box: float, work: Path, paths: list[str]) -> PartResult:
    rows = Rows(work / f"{name}.jsonl")
    start = time.perf_counter()
    process = multiprocessing.get_context("spawn").Process(target=_child, args=(name, plan, str(rows.path), paths))
    process.start()
    process.join(box)
    seconds = time.perf_counter() - start
    if process.is_alive():
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
        return PartResult(name, "skipped", seconds, f"its time box ({box:.0f} s) ran out", rows.read())
    found = rows.read()
    ends = [r for r in found if r.get("stage") == "part"]
    data = [r for r in found if r.get("stage") != "part"]
    if ends and ends[-1].get("outcome") == "skipped":
        return PartResult(name, "skipped", seconds, ends[-1]["skipped"], data)
    if process.exitcode != 0:
        reason = ends[-1]["skipped"] if ends else f"its process ended with {process.exitcode}"
        return PartResult(name, "failed", seconds, reason, data)
    failed = [r for r in data if r.get("outcome") == "failed"]
    return PartResult(name, "failed" if failed else "passed", seconds, f"{len(failed)} failed" if failed else "", data)


def install_wheels(folder: Path | None, target: Path) -> list[str]:
    """``pip install --no-index --no-deps --target`` every wheel in ``folder``; returns the path to import from."""
    wheels = sorted(folder.glob("*.whl")) if folder and folder.is_dir() else []
    if not wheels:
        return []
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                             "--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise NanoSam2Error(f"installing the carried wheels failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    logger.info("installed %d carried wheels into %s", len(wheels), target)
    return [str(target)]


def report_of(results: list[PartResult], plan: Plan, seconds: float) -> Report:
    from benchmarks.machine import machine_info

    report = Report(machine_info())
    device = "cpu (dry run)"
    if plan.device == "cuda":
        import torch

        device = torch.cuda.get_device_name(0)
    report.extra.update({"device": device, "dry_run": plan.dry_run, "seconds": round(seconds, 1),
                         "parts": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 1),
                                    "reason": r.reason} for r in results], "rows": [row for r in results for row in r.rows],
                         "weights": "random (timings are real, masks are not)"})
    keys = {f.name for f in Measurement.__dataclass_fields__.values()}  # type: ignore[attr-defined]
    for result in results:
        for row in result.rows:
            if row.get("backend") != "pytest":
                report.measurements.append(Measurement(**{k: v for k, v in row.items() if k in keys}))
    return report


def compact_table(report: Report) -> str:
    lines = ["| part | status | s | note |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['name']} | {p['status']} | {p['seconds']} | {p['reason']} |" for p in report.extra["parts"]]
    lines += ["", "| model | backend | precision | stage | median ms | p90 ms |", "| --- | --- | --- | --- | --- | --- |"]
    for m in report.measurements:
        value = f"{m.median_ms:.2f} | {m.p90_ms:.2f}" if m.median_ms is not None and m.p90_ms is not None else \
            f"{m.median_ms:.2f} | -" if m.median_ms is not None else f"skipped: {m.skipped} | -"
        lines.append(f"| {m.backbone} | {m.backend} | {m.precision} | {m.stage} | {value} |")
    return "\n".join(lines)


def write_outputs(report: Report, out_dir: Path, stem: str) -> dict[str, Path]:
    """JSON (every row), the compact table (markdown) and, where matplotlib is installed, a bar chart of the
    batch-1 encoder times; each written whole (atomic)."""
    from nanosam2.utils.atomic import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "table": out_dir / f"{stem}.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(report.to_json())
    table = compact_table(report)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from benchmarks.report import save_figure
    except ImportError:
        table += "\n\n(no plot: matplotlib is not installed)"
    else:
        rows = [m for m in report.measurements if m.stage == "encoder_b1" and m.median_ms]
        if rows:
            paths["plot"] = out_dir / f"{stem}.png"
            fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(rows))))
            ax.barh([f"{m.backbone} {m.backend} {m.precision}" for m in rows], [m.median_ms for m in rows])
            ax.set_xlabel("image encoder, batch 1, median ms")
            ax.set_title(f"nanosam2 on {report.extra['device']} ({report.machine.get('date', '')[:10]})", fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
            save_figure(fig, paths["plot"])
    with atomic_path(paths["table"]) as tmp:
        tmp.write_text(table + "\n")
    return paths


def run_check(dry_run: bool, budget: float = DEFAULT_BUDGET_S, wheels: Path | None = None,
              out_dir: Path = Path("benchmarks/results"), boxes: dict[str, float] | None = None,
              parts: Sequence[str] | None = None, onnx_dir: str | None = None) -> tuple[Report, dict[str, Path], int]:
    """``gpu_check`` as a function: (report, files written, exit code)."""
    unknown = sorted(set(parts or []) - set(PARTS)) + sorted(set(boxes or {}) - set(PARTS))
    if unknown:
        raise NanoSam2Error(f"unknown part {unknown[0]!r}; parts: {', '.join(PARTS)}")
    if budget <= 0 or any(b <= 0 for b in (boxes or {}).values()):
        raise NanoSam2Error("--budget and every --box must be positive seconds")
    if not dry_run:
        import torch

        if not torch.cuda.is_available():
            raise NanoSam2Error("no CUDA GPU is visible to torch: run on a GPU machine, or --cpu-dry-run here")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        paths = install_wheels(wheels, work / "site")
        plan = Plan.for_run(dry_run, work, onnx_dir)
        results = []
        for name in parts or list(PARTS):
            left = budget - (time.perf_counter() - start)
            box = min((boxes or {}).get(name, PARTS[name][0]), left)
            if left < 5:
                results.append(PartResult(name, "skipped", 0.0, f"the whole budget ({budget:.0f} s) is spent"))
                continue
            logger.info("part %s (box %.0f s)", name, box)
            results.append(run_part(name, plan, box, work, paths))
            logger.info("part %s: %s in %.0f s %s", name, results[-1].status, results[-1].seconds, results[-1].reason)
        report = report_of(results, plan, time.perf_counter() - start)
    label = "cpu-dry-run" if dry_run else str(report.extra["device"]).replace(" ", "_")
    written = write_outputs(report, out_dir, f"{label}-{report.machine['date'][:10]}")
    if os.environ.get("OUT"):  # the device machine hands back what lies under $OUT
        import shutil

        for path in written.values():
            shutil.copy(path, Path(os.environ["OUT"]) / path.name)
    code = 1 if any(r.status == "failed" for r in results) else 0
    return report, written, code


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="bash scripts/gpu_check.sh", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-dry-run", action="store_true", help="the same plumbing on a CPU, tiny")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all parts (default 330)")
    parser.add_argument("--box", action="append", default=[], metavar="PART=SECONDS", help="one part's time box")
    parser.add_argument("--parts", help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--wheels", help="folder of carried wheels to install first (default .whl, where present)")
    parser.add_argument("--onnx-dir", help="tensorrt-rtx: an export folder to build from (default: export resnet18)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the json/md/png report")
    parser.add_argument("--verbose", action="store_true")
    return parser


def parse_boxes(items: list[str]) -> dict[str, float]:
    boxes = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            boxes[name.strip()] = float(value)
        except ValueError:
            raise NanoSam2Error(f"--box {item!r}: expected PART=SECONDS") from None
    return boxes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    parts = [p.strip() for p in args.parts.split(",")] if args.parts else None
    if args.wheels and not Path(args.wheels).is_dir():
        raise NanoSam2Error(f"--wheels {args.wheels} is not a folder of wheels (make one: bash scripts/gpu_wheels.sh)")
    wheels = Path(args.wheels or ".whl")
    report, written, code = run_check(args.cpu_dry_run, args.budget, wheels, Path(args.out),
                                      parse_boxes(args.box), parts, args.onnx_dir)
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    print(compact_table(report))
    return code


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
