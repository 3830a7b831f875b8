"""Bad inputs across every entry point, run as a user would (subprocesses).

Each case expects: a non-zero exit, at most two lines on stderr and no traceback, the named
paths absent afterwards (nothing half-written, no empty folders) and the protected files
byte-identical (earlier work never destroyed). ``tests/test_bad_inputs.py`` runs them;
``python -m tests.bad_inputs --tree DIR`` prints the table for any checkout (the before/after
table of issue 14 was made this way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_TINY = ["--teacher-config", "sam2.1_hiera_t", "--random-teacher", "--image-size", "64", "--batch-size", "2",
              "--epochs", "1", "--num-workers", "0", "--no-progress"]


@dataclass
class Case:
    name: str
    argv: list[str]  # after `python`
    absent: list[str] = field(default_factory=list)  # paths (relative to the work dir) that must not exist after
    unchanged: list[str] = field(default_factory=list)  # files that must stay byte-identical
    says: str = ""  # a word the one-line error must contain (case-insensitive)


@dataclass
class Outcome:
    case: Case
    code: int
    lines: int
    traceback: bool
    left: list[str]
    changed: list[str]
    message: str

    @property
    def ok(self) -> bool:
        return (self.code != 0 and 0 < self.lines <= 2 and not self.traceback and not self.left and not self.changed
                and self.case.says.lower() in self.message.lower())


def _py(tree: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    if args and args[0].endswith(".py") and not os.path.isabs(args[0]):  # a script of the checkout
        args = (str(tree / args[0]), *args[1:])
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def prepare(tree: Path, work: Path) -> None:
    """Fixtures for the cases: two exports of different weights, calibration data, a COCO set,
    a finished tiny training run, images, results files."""
    work.mkdir(parents=True, exist_ok=True)
    for name, seed in (("a", 0), ("b", 1)):
        code = ("import inspect, torch, sys; torch.manual_seed(%d)\n"
                "from nanosam2.build import build_nanosam2\nfrom export.exporter import export_model\n"
                "from pathlib import Path\n"
                "params = inspect.signature(export_model).parameters\n"
                "quick = {k: False for k in ('verify', 'video') if k in params}\n"
                "export_model(build_nanosam2('resnet18', device='cpu'), 'resnet18', Path(sys.argv[1]), **quick)" % seed)
        result = _py(tree, "-c", code, str(work / name), cwd=work)
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((3, 3, 1024, 1024)).astype(np.float32)
    np.save(work / "calib.npy", calib)
    np.save(work / "calib_shape.npy", calib[:, :2])
    nan = calib.copy()
    nan[1, 0, 5, 5] = np.nan
    np.save(work / "calib_nan.npy", nan)
    np.save(work / "calib_object.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    (work / "notes.txt").write_text("not an array, not a graph\n")
    (work / "not_a_graph.onnx").write_text("hello\n")
    (work / "adir").mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(work / "image.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(work / "tiny.png")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.coco_synthetic import make_coco  # noqa: E402  (the harness runs from any checkout)
    from tests.sa1b_synthetic import make_sa1b

    make_coco(work / "coco", num_images=2)
    make_sa1b(work / "sa1b", per_chunk=2, chunks=1, corrupt=False)
    bad = work / "unreadable" / "sa_000000"
    bad.mkdir(parents=True, exist_ok=True)
    for index in range(4):
        (bad / f"sa_{index}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = _py(tree, "-m", "nanosam2.train", "--images", str(work / "sa1b"), "--output-dir", str(work / "run"),
                 "--backbone", "resnet18", *TRAIN_TINY, cwd=work)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    result = _py(tree, "-m", "trt_runtime", "eval-coco", "--encoder", "a/image_encoder.onnx", "--decoder",
                 "a/mask_decoder.onnx", "--coco-root", "coco/images", "--coco-ann", "coco/instances.json",
                 "--output", "results_a.json", cwd=work)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    records = json.loads((work / "results_a.json").read_text())
    records[0]["iou"] = "high"
    (work / "results_text_iou.json").write_text(json.dumps(records))


def cases() -> list[Case]:
    enc_a, dec_a, enc_b, dec_b = "a/image_encoder.onnx", "a/mask_decoder.onnx", "b/image_encoder.onnx", "b/mask_decoder.onnx"
    predict = ["-m", "trt_runtime", "predict", "--image", "image.png", "--point", "40,40"]
    everything = ["-m", "trt_runtime", "everything", "--image", "image.png", "--encoder", enc_a, "--decoder", dec_a]
    evaluate = ["-m", "trt_runtime", "eval-coco", "--coco-root", "coco/images", "--coco-ann", "coco/instances.json"]
    qdq = ["-m", "calib.qdq", "--onnx", enc_a]
    engine = ["-m", "engines.build_engine"]
    train = ["-m", "nanosam2.train", "--backbone", "resnet18", *TRAIN_TINY]
    return [
        # 1. never destroy earlier work
        Case("qdq --out is its own --onnx", [*qdq, "--calib", "calib.npy", "--out", enc_a], unchanged=[enc_a]),
        Case("new training run over a finished one", [*train, "--images", "sa1b", "--output-dir", "run"],
             unchanged=["run/best.pth", "run/last.pth", "run/train_log.csv"], says="run"),
        Case("eval-coco --output is the annotation file", [*evaluate, "--encoder", enc_a, "--decoder", dec_a,
                                                          "--output", "coco/instances.json"],
             unchanged=["coco/instances.json"]),
        Case("engine --saveEngine is the --onnx", [*engine, f"--onnx={enc_a}", f"--saveEngine={enc_a}"],
             unchanged=[enc_a], says="input"),
        # 2. validate cheap things first
        Case("engine: unwritable --saveEngine", [*engine, f"--onnx={enc_a}", "--saveEngine=/proc/nope/enc.engine"],
             says="/proc/nope"),
        Case("engine: zero dimension", [*engine, f"--onnx={dec_a}", "--saveEngine=out/dec.engine",
                                        "--minShapes=point_coords:0x1x2,point_labels:0x1"],
             absent=["out"], says="point_coords"),
        Case("engine: prompt counts differ", [*engine, f"--onnx={dec_a}", "--saveEngine=out/dec.engine",
                                              "--maxShapes=point_coords:8x4x2,point_labels:4x4"],
             absent=["out"], says="point_labels"),
        Case("eval-coco --output is a folder", [*evaluate, "--encoder", enc_a, "--decoder", dec_a, "--output", "adir"],
             says="adir"),
        # 3. a result must belong to its inputs
        Case("eval-coco resumes another model's results", [*evaluate, "--encoder", enc_b, "--decoder", dec_b,
                                                           "--output", "results_a.json"],
             unchanged=["results_a.json"]),
        Case("predict: encoder and decoder of different models", [*predict, "--encoder", enc_a, "--decoder", dec_b,
                                                                  "--output", "out_pair"], absent=["out_pair"]),
        # 4. degenerate input is an error
        Case("train on images that are all unreadable", [*train, "--images", "unreadable", "--output-dir", "run_bad"],
             absent=["run_bad/best.pth", "run_bad/last.pth"]),
        Case("run_all --backends bogus", ["-m", "benchmarks.run_all", "--backbones", "resnet18", "--backends", "bogus",
                                          "--output-dir", "bench"], absent=["bench"], says="bogus"),
        Case("eval-coco --limit -1", [*evaluate, "--encoder", enc_a, "--decoder", dec_a, "--limit", "-1",
                                      "--output", "res_limit.json"], absent=["res_limit.json"]),
        Case("predict --runs 0", [*predict, "--encoder", enc_a, "--decoder", dec_a, "--runs", "0", "--output", "out_runs"],
             absent=["out_runs"]),
        Case("seed benchmark --runs 0", ["nanosam2/tools/benchmark.py", "--config=nanosam2.1_resnet18", "--runs", "0"]),
        Case("qdq --keep-float unknown node", [*qdq, "--calib", "calib.npy", "--out", "q/enc.int8.onnx",
                                               "--keep-float", "no_such_node"], absent=["q"], says="no_such_node"),
        # 5. no tracebacks for user mistakes
        Case("qdq: calibration data of the wrong shape", [*qdq, "--calib", "calib_shape.npy", "--out", "q/e.onnx"],
             absent=["q"]),
        Case("qdq: calibration data with NaN", [*qdq, "--calib", "calib_nan.npy", "--out", "q/e.onnx"], absent=["q"],
             says="nan"),
        Case("qdq: calibration data of objects", [*qdq, "--calib", "calib_object.npy", "--out", "q/e.onnx"],
             absent=["q"]),
        Case("qdq: calibration data is a text file", [*qdq, "--calib", "notes.txt", "--out", "q/e.onnx"], absent=["q"]),
        Case("qdq: a text file as --onnx", ["-m", "calib.qdq", "--onnx", "not_a_graph.onnx", "--calib", "calib.npy",
                                            "--out", "q/e.onnx"], absent=["q"]),
        Case("qdq: the encoder as --decoder", [*qdq, "--calib", "calib.npy", "--out", "q/e.onnx", "--decoder", enc_a],
             absent=["q"], says="decoder"),
        Case("predict --device cuda without a GPU", [*predict, "--encoder", "run/best.pth", "--decoder", "run/best.pth",
                                                     "--device", "cuda", "--output", "out_cuda"], absent=["out_cuda"],
             says="cuda"),
        Case("predict --device bogus", [*predict, "--encoder", "run/best.pth", "--decoder", "run/best.pth",
                                        "--device", "bogus", "--output", "out_dev"], absent=["out_dev"], says="bogus"),
        Case("train --lr nan", [*train, "--images", "sa1b", "--output-dir", "run_nan", "--lr", "nan"],
             absent=["run_nan"], says="lr"),
        Case("coco-metric: non-numeric iou", ["-m", "trt_runtime", "coco-metric", "results_text_iou.json"], says="iou"),
        Case("qat on unreadable images", ["-m", "nanosam2.qat", "--checkpoint", "run/best.pth", "--images", "unreadable",
                                          "--output-dir", "qat_bad", *TRAIN_TINY[:5], "--batch-size", "2",
                                          "--num-workers", "0", "--no-progress"],
             absent=["qat_bad/best.pth", "qat_bad/last.pth"]),
        # 6. nothing that looks complete, no empty folders made before validation
        Case("predict: missing encoder leaves no output folder", [*predict, "--encoder", "missing.onnx",
                                                                   "--decoder", dec_a, "--output", "out_missing"],
             absent=["out_missing"]),
        Case("eval-coco: missing annotations leave no folder", ["-m", "trt_runtime", "eval-coco", "--coco-root",
                                                                "coco/images", "--coco-ann", "missing.json",
                                                                "--encoder", enc_a, "--decoder", dec_a,
                                                                "--output", "new_dir/results.json"],
             absent=["new_dir"]),
        # 7. segment everything: bad parameters before any model loads
        Case("everything --points-per-side 0", [*everything, "--points-per-side", "0", "--output", "ev"], absent=["ev"],
             says="points-per-side"),
        Case("everything --crop-overlap-ratio 1", [*everything, "--crop-overlap-ratio", "1", "--output", "ev"],
             absent=["ev"], says="crop_overlap_ratio"),
        Case("everything on a 1x1 image", ["-m", "trt_runtime", "everything", "--image", "tiny.png", "--encoder", enc_a,
                                           "--decoder", dec_a, "--output", "ev"], absent=["ev"], says="2x2"),
    ]


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_case(tree: Path, work: Path, case: Case) -> Outcome:
    before = {p: _digest(work / p) for p in case.unchanged}
    backups = {p: (work / p).read_bytes() for p in case.unchanged if (work / p).is_file()}
    result = _py(tree, *case.argv, cwd=work)
    stderr = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in stderr if not line.startswith(("INFO ", "WARNING ", "*** "))]
    left = [p for p in case.absent if (work / p).exists()]
    changed = [p for p in case.unchanged if _digest(work / p) != before[p]]
    for path in changed:  # put the fixture back so that later cases see it whole
        (work / path).write_bytes(backups[path])
    for path in case.absent:  # clean up for the next case
        target = work / path
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()
    message = errors[-1] if errors else (result.stdout.strip().splitlines() or [""])[-1]
    return Outcome(case, result.returncode, len(errors), "Traceback" in result.stderr, left, changed, message)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | exit | error lines | traceback | left behind / changed | ok |", "| --- | --- | --- | --- | --- | --- |"]
    for o in outcomes:
        rows.append(f"| {o.case.name} | {o.code} | {o.lines} | {'yes' if o.traceback else 'no'} | "
                    f"{', '.join(o.left + [c + ' (changed)' for c in o.changed]) or '-'} | {'yes' if o.ok else 'NO'} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to test")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("-k", help="only cases whose name contains this")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    if not (work / "run" / "best.pth").is_file():
        prepare(args.tree.resolve(), work)
    outcomes = []
    for case in cases():
        if args.k and args.k not in case.name:
            continue
        outcome = run_case(args.tree.resolve(), work, case)
        outcomes.append(outcome)
        print(f"{'ok ' if outcome.ok else 'BAD'} {case.name}: exit {outcome.code}: {outcome.message[:160]}", flush=True)
    print(table(outcomes))
    print(f"{sum(o.ok for o in outcomes)} of {len(outcomes)} cases answered well")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
