"""Bad inputs across every entry point, run as a user would (subprocesses).

Each case expects: a non-zero exit, at most two lines on stderr and no traceback, the named
paths absent afterwards (nothing half-written, no empty folders; a pattern with ``*`` must match
nothing) and the protected files byte-identical (earlier work never destroyed). A case of an
unusual input that must work (``succeeds``) expects exit 0, no traceback, its ``creates`` paths and
the ``says`` word in its output instead. ``tests/test_bad_inputs.py`` runs them;
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
    says: str = ""  # a word the one-line error must contain (case-insensitive); with succeeds: the output
    succeeds: bool = False  # an unusual input that must work, not be refused
    creates: list[str] = field(default_factory=list)  # with succeeds: paths that must exist afterwards
    cleanup: list[str] = field(default_factory=list)  # removed after the case (what a succeeding case made)


@dataclass
class Outcome:
    case: Case
    code: int
    lines: int
    traceback: bool
    left: list[str]
    changed: list[str]
    message: str

    missing: list[str] = field(default_factory=list)  # creates that do not exist

    @property
    def ok(self) -> bool:
        if self.case.succeeds:
            return (self.code == 0 and not self.traceback and not self.left and not self.changed and not self.missing
                    and self.case.says.lower() in self.message.lower())
        return (self.code != 0 and 0 < self.lines <= 2 and not self.traceback and not self.left and not self.changed
                and self.case.says.lower() in self.message.lower())


CASE_SECONDS = 180  # a bad input answers long before this; a case still running then counts as "ran on"


def _py(tree: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    if args and args[0].endswith(".py") and not os.path.isabs(args[0]):  # a script of the checkout
        args = (str(tree / args[0]), *args[1:])
    command = [sys.executable, *args]
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 0, "", f"(still running after {timeout:.0f} s: killed)\n")


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
                "quick.pop('video', None) if sys.argv[1].endswith('a') else None  # a: with the tracker's graphs\n"
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
    prepare_issue22(tree, work, rng)
    prepare_issue32(tree, work, rng)


def prepare_issue22(tree: Path, work: Path, rng: np.random.Generator) -> None:
    """Fixtures of the second round of trust: frame folders that could be misnumbered, folders that
    hold a user's files where commands write, prompts that predict refuses, a malformed QAT record."""
    def frames(folder: str, names: list[str]) -> None:
        (work / folder).mkdir(exist_ok=True)
        for name in names:
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(work / folder / name)

    frames("frames", [f"{i:05d}.jpg" for i in range(3)])
    frames("frames_gaps", ["0.jpg", "1.jpg", "2.jpg", "7.jpg", "8.jpg"])
    frames("frames_dup", ["0.jpg", "1.jpg", "01.jpg"])
    frames("frames_negative", ["0.jpg", "-1.jpg"])
    (work / "prompt_frame3.json").write_text('[{"frame": 3, "obj_id": 1, "box": [1, 1, 30, 30]}]')
    (work / "prompt_nan.json").write_text('[{"frame": 0, "obj_id": 1, "points": [[NaN, 5]]}]')
    for folder, name, content in (("users_masks", "masks/mine.png", b"hand-drawn"),
                                  ("named_record", "track.json", b'{"frames": 1}'),
                                  ("named_record", "masks/1/00000.png", b"kept"),
                                  ("video_inside", "overlay.mp4", b"the user's clip"),
                                  ("ev_foreign", "masks.json", b"[]"), ("pr_foreign", "overlay.png", b"a picture"),
                                  ("export_foreign", "image_encoder.onnx", b"someone else's graph"),
                                  ("engines", "enc.engine", b"trtexec made this")):
        (work / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (work / folder / name).write_bytes(content)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(work / "small.png")
    code = ("import sys, torch\nckpt = torch.load(sys.argv[1], weights_only=True)\n"
            "ckpt['quantization'] = {'format': 'modelopt-int8', 'folded_batchnorms': 7}\ntorch.save(ckpt, sys.argv[2])")
    result = _py(tree, "-c", code, str(work / "run" / "best.pth"), str(work / "qat_malformed.pth"), cwd=work)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])


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
        Case("qat on unreadable images", ["-m", "nanosam2.train", "--qat", "--checkpoint", "run/best.pth", "--images",
                                          "unreadable",
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
        *issue22_cases(everything, predict, engine, evaluate, enc_a, dec_a),
        *issue32_cases(predict, engine, enc_a, dec_a),
        *serve_cases(predict, enc_a),
    ]


def issue22_cases(everything: list[str], predict: list[str], engine: list[str], evaluate: list[str], enc_a: str,
                  dec_a: str) -> list[Case]:
    """The second round of trust (issue 22): one class per comment."""
    track = ["-m", "trt_runtime", "track", "--model-dir", "a", "--no-overlay"]
    box = ["--box", "2,2,40,40"]
    return [
        # 22.1 earlier work destroyed, inputs overwritten
        Case("track over a user's masks/", [*track, "--video", "frames", *box, "--output", "users_masks"],
             unchanged=["users_masks/masks/mine.png"], says="in the way"),
        Case("track over any file named track.json", [*track, "--video", "frames", *box, "--output", "named_record"],
             unchanged=["named_record/track.json", "named_record/masks/1/00000.png"], says="not the record"),
        Case("track --video OUT/overlay.mp4", [*track, "--video", "video_inside/overlay.mp4", *box,
                                               "--output", "video_inside"],
             unchanged=["video_inside/overlay.mp4"], says="inside what `track` would replace"),
        Case("everything over a masks.json it did not write", [*everything, "--points-per-side", "2",
                                                               "--output", "ev_foreign"],
             unchanged=["ev_foreign/masks.json"], says="in the way"),
        Case("predict over an overlay.png it did not write", [*predict, "--encoder", enc_a, "--decoder", dec_a,
                                                              "--output", "pr_foreign"],
             unchanged=["pr_foreign/overlay.png"], says="in the way"),
        Case("export over a graph it did not write", ["-m", "export.onnx", "--backbone", "resnet18", "--no-verify",
                                                      "--output-dir", "export_foreign"],
             unchanged=["export_foreign/image_encoder.onnx"], says="export.onnx"),
        Case("engine over an engine it did not build", [*engine, f"--onnx={dec_a}", "--saveEngine=engines/enc.engine"],
             unchanged=["engines/enc.engine"], says="build_engine"),
        Case("eval-coco --no-resume over a file it did not write", [*evaluate, "--encoder", enc_a, "--decoder", dec_a,
                                                                    "--no-resume", "--output", "notes.txt"],
             unchanged=["notes.txt"], says="not an eval-coco results file"),
        # 22.2 frames silently renumbered
        Case("track: a prompt on a frame the folder lacks", [*track, "--video", "frames_gaps", "--prompts",
                                                             "prompt_frame3.json", "--output", "t_gaps"],
             absent=["t_gaps"], says="frame 3 is not in the frame folder"),
        Case("track: 1.jpg and 01.jpg", [*track, "--video", "frames_dup", *box, "--output", "t_dup"], absent=["t_dup"],
             says="both frame 1"),
        Case("track: a negative frame name", [*track, "--video", "frames_negative", *box, "--output", "t_neg"],
             absent=["t_neg"], says="-1.jpg"),
        # 22.3 prompts predict refuses
        Case("track: a point outside the frame", [*track, "--video", "frames", "--point", "500,10",
                                                  "--output", "t_out"], absent=["t_out"], says="outside"),
        Case("track: a NaN in prompts.json", [*track, "--video", "frames", "--prompts", "prompt_nan.json",
                                              "--output", "t_nan"], absent=["t_nan"], says="finite"),
        Case("track: points with two boxes", [*track, "--video", "frames", *box, "--box", "5,5,20,20",
                                              "--point", "10,10", "--output", "t_two"], absent=["t_two"],
             says="several --box"),
        Case("track --preprocess (unused)", [*track, "--video", "frames", *box, "--preprocess", "missing.onnx",
                                             "--output", "t_pre"], absent=["t_pre"], says="--preprocess"),
        Case("track --cuda-graph without engines", [*track, "--video", "frames", *box, "--cuda-graph", "--output",
                                                    "t_cg"], absent=["t_cg"], says="--cuda-graph: an option of the tensorrt"),
        # 22.4 unbounded work
        Case("everything --points-per-side 10000", [*everything, "--points-per-side", "10000", "--output", "ev_big"],
             absent=["ev_big"], says="100,000,000 point prompts"),
        Case("everything: crops smaller than 2x2", ["-m", "trt_runtime", "everything", "--image", "small.png",
                                                    "--encoder", enc_a, "--decoder", dec_a, "--crop-n-layers", "3",
                                                    "--output", "ev_crop"], absent=["ev_crop"], says="crop layer"),
        # 22.5 smaller ones of the same kinds
        Case("qdq --holdout past the data", ["-m", "calib.qdq", "--onnx", enc_a, "--calib", "calib.npy", "--holdout", "5",
                                             "--out", "q/e.onnx"], absent=["q"], says="--holdout"),
        Case("engine --allowGPUFallback without a DLA", [*engine, f"--onnx={dec_a}", "--saveEngine=out/d.engine",
                                                         "--allowGPUFallback"], absent=["out"], says="allowGPUFallback"),
        Case("export from a malformed QAT record", ["-m", "export.onnx", "--backbone", "resnet18", "--checkpoint",
                                                    "qat_malformed.pth", "--no-verify", "--output-dir", "x_qat"],
             absent=["x_qat"], says="quantization record"),
        Case("predict: an ONNX file for the PyTorch backend", [*predict, "--encoder", enc_a, "--decoder", dec_a,
                                                               "--backend", "torch", "--output", "out_torch"],
             absent=["out_torch"], says="ONNX graph"),
    ]


def prepare_issue32(tree: Path, work: Path, rng: np.random.Generator) -> None:
    """Fixtures of the third round of trust: a 512-px export, Meta's Hiera checkpoint and students of two
    backbones, a checkpoint holding two sets of trunk names, a text file named .pth, DAVIS-layout sets (one
    with frames of two sizes), greyscale predictions, an output folder a kill -9 stopped while publishing."""
    def run(*args: str) -> None:
        result = _py(tree, *args, cwd=work)
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])

    run("-m", "export.onnx", "--backbone", "resnet18", "--image-size", "512", "--no-video", "--no-verify",
        "--output-dir", "e512")
    np.save(work / "calib512.npy", rng.standard_normal((3, 3, 512, 512)).astype(np.float32))
    run("-c", "import torch, sys\nfrom nanosam2.build import build_nanosam2, build_teacher, save_student\n"
              "from nanosam2.checkpoint import save_checkpoint\ntorch.manual_seed(0)\n"
              "save_checkpoint('sam2.1_hiera_tiny.pt', build_teacher('hiera_t', None, device='cpu'))\n"
              "save_student('mobilenet.pth', build_nanosam2('mobilenet_v3_large', device='cpu'))\n"
              "ckpt = torch.load('run/best.pth', weights_only=True)\n"
              "ckpt['model'].update({k.replace('trunk.body.layer', 'trunk.layer'): v for k, v in ckpt['model'].items()"
              " if 'trunk.body.layer' in k})\ntorch.save(ckpt, 'both_names.pth')")
    (work / "text.pth").write_text("weights: see the README\n")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.vos_synthetic import write_crossing_set

    write_crossing_set(work / "vos", num_frames=3, height=64, width=96)
    write_crossing_set(work / "vos_sizes", sequences=2, num_frames=3, height=64, width=96)
    Image.fromarray(rng.integers(0, 255, (48, 96, 3), dtype=np.uint8)).save(work / "vos_sizes/JPEGImages/cross-1/00002.jpg")
    grey = work / "pred_grey" / "cross-0"
    grey.mkdir(parents=True, exist_ok=True)
    for path in sorted((work / "vos" / "Annotations" / "cross-0").glob("*.png")):
        mask = (np.array(Image.open(path)) == 1).astype(np.uint8) * 255  # object 1 saved as a 0/255 picture
        Image.fromarray(mask).save(grey / path.name)
    swapped = work / "pred_fake"  # what eval-vos writes: its record beside the sequences
    shutil.copytree(work / "vos" / "Annotations", swapped, dirs_exist_ok=True)
    (swapped / "eval-vos.json").write_text('{"outputs": {"command": "eval-vos", "files": [], "complete": true}}')
    (work / "prompt_point_box.json").write_text('[{"frame": 0, "obj_id": 1, "points": [[30, 30]]}, '
                                                '{"frame": 0, "obj_id": 1, "box": [10, 10, 50, 50]}]')
    (work / "old_engine").mkdir(exist_ok=True)
    (work / "old_engine" / "d.engine").write_bytes(b"the user's own file, put where an engine was")
    (work / "old_engine" / "d.engine.json").write_text(json.dumps({
        "tensorrt_version": "10.3.0", "precision": "fp32", "onnx_sha256": "0" * 64, "engine_sha256": "1" * 64}))
    stale = work / "stale" / ".predict-0123abcd.partial"  # kill -9 before publishing: a staging folder
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "overlay.png").write_bytes(b"half a picture")
    killed = ("import os, signal, sys\nfrom trt_runtime.cli import main\nreal, calls = os.replace, []\n"
              "def replace(src, dst):\n    calls.append(dst)\n"
              "    if str(dst).endswith('mask_0_0.png'):\n        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return real(src, dst)\nos.replace = replace\n"
              "main(['predict', '--image', 'image.png', '--point', '40,40', '--encoder', 'a/image_encoder.onnx',"
              " '--decoder', 'a/mask_decoder.onnx', '--output', 'killed'])")
    result = _py(tree, "-c", killed, cwd=work)
    if result.returncode != -9 or not list((work / "killed").glob(".predict-*.partial/.publish.json")):
        raise RuntimeError(f"the killed predict did not stop while publishing: {result.returncode} {result.stderr[-500:]}")


def serve_cases(predict: list[str], enc_a: str) -> list[Case]:
    """Serving (issue 34) without a server running: what a user gets wrong before any request."""
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    return [
        Case("predict --server where no server runs", [*predict, "--server", closed, "--output", "srv_out"],
             absent=["srv_out"], says="no nanosam2 server at http://127.0.0.1:9"),
        Case("predict --server ftp://...", [*predict, "--server", "ftp://host:21", "--output", "srv_out"],
             absent=["srv_out"], says="give http://HOST:PORT or grpc://HOST:PORT"),
        Case("predict --server beside --encoder", [*predict, "--server", closed, "--encoder", enc_a, "--output", "srv_out"],
             absent=["srv_out"], says="drop --encoder"),
        Case("predict without graphs or --server", [*predict, "--output", "srv_out"], absent=["srv_out"],
             says="--server URL"),
        Case("track --server without --stream", ["-m", "trt_runtime", "track", "--server", closed, "--video", "frames",
                                                 "--point", "10,10", "--output", "srv_track"],
             absent=["srv_track"], says="add --stream"),
        Case("serve --model-dir that is not there", ["-m", "trt_runtime", "serve", "--model-dir", "no_such_export",
                                                     "--max-seconds", "5"], says="not a folder"),
        Case("serve --http-port 70000", ["-m", "trt_runtime", "serve", "--model-dir", "a", "--http-port", "70000"],
             says="1..65535"),
        Case("serve --drain-seconds -1", ["-m", "trt_runtime", "serve", "--model-dir", "a", "--drain-seconds", "-1"],
             says="at least 0"),
    ]


def issue32_cases(predict: list[str], engine: list[str], enc_a: str, dec_a: str) -> list[Case]:
    """The third round of trust (issue 32): its eleven comments and the 512-px export."""
    track = ["-m", "trt_runtime", "track", "--model-dir", "a", "--no-overlay"]
    vos = ["-m", "trt_runtime", "eval-vos", "--model-dir", "a"]
    qdq512 = ["-m", "calib.qdq", "--onnx", "e512/image_encoder.onnx", "--calib", "calib512.npy"]
    train = ["-m", "nanosam2.train", "--images", "sa1b", *TRAIN_TINY]
    return [
        # 32.1 calib.qdq at 512 px; on the memory attention
        Case("qdq on a 512-px export", [*qdq512, "--out", "q512/e.onnx"], succeeds=True, creates=["q512/e.onnx"],
             cleanup=["q512"], says="mask IoU vs FP32"),
        Case("qdq on memory_attention.onnx", ["-m", "calib.qdq", "--onnx", "a/memory_attention.onnx", "--calib",
                                              "calib.npy", "--out", "q/m.onnx"], absent=["q"], says="memory_attention"),
        Case("calib.prepare: --image-size other than the --encoder's",
             ["-m", "calib.prepare", "--images", "sa1b", "-n", "2", "--image-size", "1024", "--encoder",
              "e512/image_encoder.onnx", "--out", "cp/c.npy"], absent=["cp"], says="takes 512 px"),
        # 32.2 Meta's Hiera checkpoint is not a seed casvit_s
        Case("predict with Meta's hiera_t checkpoint", [*predict, "--encoder", "sam2.1_hiera_tiny.pt", "--decoder",
                                                        "sam2.1_hiera_tiny.pt", "--output", "p_hiera"],
             succeeds=True, creates=["p_hiera/predict.json"], cleanup=["p_hiera"], says="hiera_t checkpoint"),
        Case("export --backbone resnet18 from Meta's hiera_t", ["-m", "export.onnx", "--backbone", "resnet18",
                                                                "--checkpoint", "sam2.1_hiera_tiny.pt", "--no-verify",
                                                                "--output-dir", "x_hiera"],
             absent=["x_hiera"], says="is Meta's SAM2.1 hiera_t checkpoint, not resnet18"),
        Case("train --init-from Meta's hiera_t", [*train, "--backbone", "resnet18", "--init-from",
                                                  "sam2.1_hiera_tiny.pt", "--output-dir", "t_hiera"],
             absent=["t_hiera/best.pth", "t_hiera/last.pth"], says="--teacher-checkpoint"),
        # 32.3 a trailing slash on a sequence
        Case("eval-vos --sequences cross-0/", [*vos, "--dataset", "vos", "--sequences", "cross-0/", "--output", "ev_slash"],
             succeeds=True, creates=["ev_slash/cross-0/00002.png", "ev_slash/eval-vos.json"], cleanup=["ev_slash"],
             says="1 sequence(s) in ev_slash"),
        # 32.4 two sets of trunk names
        Case("a checkpoint with our and the seed's trunk names", ["-m", "export.onnx", "--backbone", "resnet18",
                                                                  "--checkpoint", "both_names.pth", "--no-verify",
                                                                  "--output-dir", "x_both"],
             absent=["x_both"], says="under both nanosam2's names"),
        # 32.5 a point then a box for one object and frame
        Case("track: a point then a box for one object", [*track, "--video", "frames", "--prompts",
                                                          "prompt_point_box.json", "--output", "t_pb"],
             succeeds=True, creates=["t_pb/track.json"], cleanup=["t_pb"], says="applied together as one prompt"),
        # 32.6 frames of two sizes, found before any model loads
        Case("eval-vos: a sequence with frames of two sizes", [*vos, "--dataset", "vos_sizes", "--output", "ev_sizes"],
             absent=["ev_sizes"], says="sequence cross-1: vos_sizes/JPEGImages/cross-1/00002.jpg is 96x48"),
        # 32.7 vos-metric: a greyscale picture, swapped folders
        Case("vos-metric on 0/255 greyscale predictions", ["-m", "trt_runtime", "vos-metric", "vos/Annotations",
                                                           "pred_grey", "--predicted-only"],
             absent=["pred_grey/vos-metric.csv"], says="object id 255 never appears in the ground truth"),
        Case("vos-metric with GT and PRED swapped", ["-m", "trt_runtime", "vos-metric", "pred_fake", "vos/Annotations"],
             absent=["vos/Annotations/vos-metric.csv"], says="it is eval-vos's predictions, not ground truth"),
        # 32.8 the builder
        Case("engine: an empty --computeCapabilities=", [*engine, f"--onnx={dec_a}", "--saveEngine=out/d.engine",
                                                         "--computeCapabilities="], absent=["out"],
             says="--computeCapabilities is empty"),
        Case("engine: --computeCapabilities=current without a GPU",
             [*engine, f"--onnx={dec_a}", "--saveEngine=out/d.engine", "--computeCapabilities=current",
              "--trt-flavour=rtx"], absent=["out"], says="needs a CUDA GPU"),
        Case("engine: a user's file where an old engine was", [*engine, f"--onnx={dec_a}",
                                                               "--saveEngine=old_engine/d.engine"],
             unchanged=["old_engine/d.engine"], says="no record says `build_engine` wrote it"),
        Case("engine: --saveEngine=x.onnx", [*engine, f"--onnx={dec_a}", "--saveEngine=out/x.onnx"], absent=["out"],
             says="an engine file ends in .engine"),
        # 32.9, 32.10 checkpoints of another backbone; a text file named .pth; one training step
        Case("demo --checkpoint mobilenet --backbone resnet18", ["-m", "trt_runtime.demo", "--checkpoint",
                                                                 "mobilenet.pth", "--backbone", "resnet18",
                                                                 "--output-dir", "demo_mix"],
             absent=["demo_mix"], says="mobilenet_v3_large checkpoint, not resnet18"),
        Case("export --backbone resnet18 from a mobilenet checkpoint", ["-m", "export.onnx", "--backbone", "resnet18",
                                                                        "--checkpoint", "mobilenet.pth", "--no-verify",
                                                                        "--output-dir", "x_mob"],
             absent=["x_mob"], says="use --backbone mobilenet_v3_large"),
        Case("predict: a text file named .pth", [*predict, "--encoder", "text.pth", "--decoder", "text.pth",
                                                 "--output", "p_text"], absent=["p_text"],
             says="neither a zip archive nor a pickle"),
        Case("train: one step", [*train, "--backbone", "resnet18", "--output-dir", "t_one"], succeeds=True,
             creates=["t_one/last.pth"], cleanup=["t_one"], says="images/s not measured"),
        # 32.11 what a kill -9 left in an output folder
        Case("predict over a staging folder a kill -9 left", [*predict, "--encoder", enc_a, "--decoder", dec_a,
                                                              "--output", "stale"],
             succeeds=True, creates=["stale/predict.json"], absent=["stale/.predict-*.partial"],
             says="stopped before it published"),
        Case("track into a folder where a kill -9 stopped predict while publishing",
             ["-m", "trt_runtime", "track", "--model-dir", "a", "--no-overlay", "--video", "frames", "--box",
              "2,2,40,40", "--output", "killed"],
             succeeds=True, creates=["killed/predict.json", "killed/mask_0_0.png", "killed/track.json"],
             absent=["killed/.*.partial"], says="finished publishing an interrupted run's results"),
        # the 512-px export a user can ask for
        Case("export --image-size 500", ["-m", "export.onnx", "--backbone", "resnet18", "--image-size", "500",
                                         "--output-dir", "x_500"], absent=["x_500"], says="multiple of 64"),
    ]


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _found(work: Path, pattern: str) -> list[Path]:
    return sorted(work.glob(pattern)) if "*" in pattern else [work / pattern] if (work / pattern).exists() else []


def run_case(tree: Path, work: Path, case: Case) -> Outcome:
    before = {p: _digest(work / p) for p in case.unchanged}
    backups = {p: (work / p).read_bytes() for p in case.unchanged if (work / p).is_file()}
    result = _py(tree, *case.argv, cwd=work, timeout=CASE_SECONDS)
    stderr = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in stderr if not line.startswith(("INFO ", "WARNING ", "*** "))]
    left = [p for p in case.absent if _found(work, p)]
    missing = [p for p in case.creates if not (work / p).exists()]
    changed = [p for p in case.unchanged if _digest(work / p) != before[p]]
    for path in changed:  # put the fixture back so that later cases see it whole
        (work / path).write_bytes(backups[path])
    for target in [t for path in case.absent + case.cleanup for t in _found(work, path)]:  # for the next case
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink()
    if case.succeeds:  # what it printed (and logged) is what the case reads
        message = " | ".join(result.stdout.strip().splitlines()[-4:] + stderr)
    else:
        message = errors[-1] if errors else (result.stdout.strip().splitlines() or [""])[-1]
    return Outcome(case, result.returncode, len(errors), "Traceback" in result.stderr, left, changed, message, missing)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | exit | error lines | traceback | left behind / changed / missing | ok |",
            "| --- | --- | --- | --- | --- | --- |"]
    for o in outcomes:
        problems = o.left + [c + " (changed)" for c in o.changed] + [m + " (missing)" for m in o.missing]
        rows.append(f"| {o.case.name}{' (must work)' if o.case.succeeds else ''} | {o.code} | {o.lines} | "
                    f"{'yes' if o.traceback else 'no'} | {', '.join(problems) or '-'} | {'yes' if o.ok else 'NO'} |")
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
