"""Distillation on synthetic SA-1B chunks with a random-init SAM2.1 hiera_t teacher at 128 px."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nanosam2.build import build_nanosam2
from nanosam2.checkpoint import state_digest
from nanosam2.distill.train_log import read_log
from nanosam2.distill.trainer import TrainConfig, train
from nanosam2.train import main as train_main
from nanosam2.utils.cli import run_cli

from .sa1b_synthetic import make_sa1b

pytestmark = pytest.mark.xdist_group("distill")

TINY = ["--teacher-config", "sam2.1_hiera_t", "--random-teacher", "--image-size", "128", "--batch-size", "2",
        "--epochs", "3", "--lr", "1e-3", "--num-workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def sa1b(tmp_path_factory) -> Path:
    return make_sa1b(tmp_path_factory.mktemp("sa1b"))  # 8 images in 2 chunks + 1 corrupt JPEG


@pytest.fixture(scope="module")
def full_run(sa1b, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    cfg = TrainConfig(images=str(sa1b), output_dir=str(out), backbone="resnet18", teacher_config="sam2.1_hiera_t",
                      image_size=128, batch_size=2, epochs=3, lr=1e-3, num_workers=0, progress=False)
    return out, train(cfg)


def test_loss_goes_down_and_best_checkpoint_loads(full_run):
    out, result = full_run
    losses = np.array(result.losses)
    assert len(losses) == 12 and np.isfinite(losses).all()  # 9 files -> 4 steps of 2 per epoch
    assert losses[-4:].mean() < 0.75 * losses[:4].mean(), losses
    log = read_log(out / "train_log.csv")
    assert [float(r["loss"]) for r in log] == result.losses  # the CSV round-trips exactly
    assert sum(int(r["skipped"]) for r in log) == 3  # the corrupt JPEG, once per epoch
    student = build_nanosam2(checkpoint=result.best, device="cpu")
    last = build_nanosam2(checkpoint=result.last, device="cpu")
    assert state_digest(last.image_encoder) == result.weights_sha256
    assert student.nanosam2_spec["trunk"]["backbone"] == "resnet18"
    payload = torch.load(result.best, weights_only=True)
    assert "optimizer" not in payload and payload["epoch"] == 2  # best.pth is the student alone


def test_resume_mid_epoch_is_bit_exact(full_run, sa1b, tmp_path):
    _, reference = full_run
    out = tmp_path / "resumed"
    args = ["--images", str(sa1b), "--output-dir", str(out), "--backbone", "resnet18", *TINY]
    assert run_cli(train_main, [*args, "--stop-after-steps", "5", "--tensorboard"]) == 0  # stops in epoch 2
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(read_log(out / "train_log.csv")) == 5
    assert run_cli(train_main, [*args, "--resume", "--num-workers", "2"]) == 0  # workers do not change numbers
    resumed = [float(r["loss"]) for r in read_log(out / "train_log.csv")]
    assert resumed == reference.losses
    last = build_nanosam2(checkpoint=out / "last.pth", device="cpu")
    assert state_digest(last.image_encoder) == reference.weights_sha256


def test_resume_refuses_a_changed_batch_size(full_run, sa1b, tmp_path, capsys):
    out, _ = full_run
    args = ["--images", str(sa1b), "--output-dir", str(tmp_path), "--resume", str(out / "last.pth"), *TINY]
    args[args.index("--batch-size") + 1] = "4"
    assert run_cli(train_main, args) == 2
    assert "batch_size (2 -> 4)" in capsys.readouterr().err


def test_a_new_run_never_overwrites_an_earlier_one(full_run, sa1b, tmp_path, capsys):
    out, _ = full_run
    before = {name: (out / name).read_bytes() for name in ("best.pth", "last.pth", "train_log.csv")}
    assert run_cli(train_main, ["--images", str(sa1b), "--output-dir", str(out), *TINY]) == 2
    assert "holds an earlier run" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "train_log.csv").write_bytes(before["train_log.csv"])
    args = ["--images", str(sa1b), "--output-dir", str(copy), *TINY, "--stop-after-steps", "1"]
    assert run_cli(train_main, [*args, "--overwrite"]) == 0  # said so: a new run replaces the files
    assert (copy / "train_log.csv").read_bytes() != before["train_log.csv"] and (copy / "last.pth").is_file()


def test_training_on_unreadable_images_fails_without_a_checkpoint(tmp_path, capsys):
    chunk = tmp_path / "bad" / "sa_000000"
    chunk.mkdir(parents=True)
    for index in range(4):
        (chunk / f"sa_{index}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "run"
    assert run_cli(train_main, ["--images", str(tmp_path / "bad"), "--output-dir", str(out), *TINY]) == 2
    assert "every image was unreadable" in capsys.readouterr().err
    assert not (out / "best.pth").exists() and not (out / "last.pth").exists()


def test_cli_errors_are_one_line(sa1b, tmp_path, capsys):
    assert run_cli(train_main, ["--images", str(sa1b), "--output-dir", str(tmp_path)]) == 2
    assert "--teacher-checkpoint is required" in capsys.readouterr().err
    assert run_cli(train_main, ["--images", str(tmp_path / "none"), "--output-dir", str(tmp_path), *TINY]) == 2
    assert "no such image folder" in capsys.readouterr().err
    assert run_cli(train_main, ["--images", str(sa1b), "--output-dir", str(tmp_path), *TINY,
                                "--chunks", "sa_000007"]) == 2
    assert "chunk folder(s) not found" in capsys.readouterr().err
    too_big = [*TINY]
    too_big[too_big.index("--batch-size") + 1] = "64"
    assert run_cli(train_main, ["--images", str(sa1b), "--output-dir", str(tmp_path), *too_big]) == 2
    assert "too few for batch 64" in capsys.readouterr().err
    bad_lr = [*TINY]
    bad_lr[bad_lr.index("--lr") + 1] = "nan"
    with pytest.raises(SystemExit) as exit_info:  # argparse rejects it: one line, exit 2
        train_main(["--images", str(sa1b), "--output-dir", str(tmp_path / "nan"), *bad_lr])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--lr" in error and "above 0" in error  # no usage block
    assert not (tmp_path / "nan").exists()


def test_seed_readme_command_with_a_meta_format_teacher(sa1b, tmp_path):
    """The seed README's flags (incl. --model_name and --checkpoint) on a Meta-format checkpoint."""
    from nanosam2.build import build_teacher
    from nanosam2.tools.train import main as seed_main

    torch.manual_seed(1)
    teacher = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_teacher("hiera_t", None, device="cpu").state_dict()}, teacher)
    out = tmp_path / "results" / "sam2.1_hiera_t_resnet18"
    code = run_cli(seed_main, ["--images", str(sa1b), "--output_dir", str(out), "--model_name", "resnet18",
                               "--nanosam2_config", "nanosam2.1_resnet18", "--sam2_config", "sam2.1_hiera_t",
                               "--checkpoint", str(teacher), "--batch_size", "2", "--num_epochs", "1",
                               "--num_images", "4", "--num_workers", "0"])
    assert code == 0
    student = build_nanosam2(checkpoint=out / "checkpoint.pth", device="cpu")
    reference = torch.load(teacher, weights_only=True)["model"]
    decoder_key = "sam_mask_decoder.transformer.layers.0.self_attn.q_proj.weight"
    assert torch.equal(student.state_dict()[decoder_key], reference[decoder_key])  # heads are the teacher's


def test_two_process_ddp_keeps_ranks_identical(sa1b, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "nanosam2.train", "--images", str(sa1b), "--output-dir", str(out), "--backbone", "resnet18", *TINY,
           "--epochs", "1", "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Every rank's digest was gathered and compared (a mismatch raises); rank 0 reports it.
    synced = [line for line in result.stderr.splitlines() if "on all 2 ranks" in line]
    assert len(synced) == 1, result.stderr[-3000:]
    digest = synced[0].split("sha256 ")[1].split()[0]
    log = read_log(out / "train_log.csv")
    assert len(log) == 2 and all(int(r["images"]) == 4 for r in log)  # 2 ranks x batch 2, 9 files -> 2 steps
    last = build_nanosam2(checkpoint=out / "last.pth", device="cpu")
    assert state_digest(last.image_encoder) == digest


def test_coco_validation_during_training_picks_best_by_miou(sa1b, tmp_path):
    """--coco-root/--coco-ann: mIoU through the runtime's predictor, logged and used for best.pth."""
    import json

    from nanosam2.evaluation.coco_metrics import load_results, summarize

    from .coco_synthetic import make_coco

    images, ann = make_coco(tmp_path / "coco", num_images=2)
    out = tmp_path / "val"
    args = ["--images", str(sa1b), "--output-dir", str(out), "--backbone", "resnet18", *TINY, "--epochs", "2",
            "--coco-root", str(images), "--coco-ann", str(ann), "--val-limit", "2"]
    assert run_cli(train_main, args) == 0
    val_rows = [r for r in read_log(out / "train_log.csv") if r["val_miou_all"]]
    assert [int(r["epoch"]) for r in val_rows] == [1, 2]
    scores = [float(r["val_miou_all"]) for r in val_rows]
    for epoch, score in zip((1, 2), scores):  # the logged number is the results file's metric
        records = load_results(out / f"coco_val_epoch{epoch}.json")
        assert len(records) == len(json.loads(ann.read_text())["annotations"])
        assert summarize(records).miou["all"] == pytest.approx(score)
    best = torch.load(out / "best.pth", weights_only=True)
    assert best["metrics"]["all"] == pytest.approx(max(scores))
    assert best["epoch"] == int(np.argmax(scores))


def test_distilling_continues_from_a_seed_checkpoint(sa1b, tmp_path, caplog, capsys):
    """``--init-from`` takes the seed urbste/nanosam2's checkpoint (trunk names mapped); its backbone is the
    student's, and a --backbone that contradicts it is refused naming both."""
    import logging

    from tests.test_seed_checkpoint import seed_checkpoint

    seed, ours = seed_checkpoint("mobilenet_v3_large", tmp_path / "seed_mobilenet.pth")
    out = tmp_path / "run"
    args = ["--images", str(sa1b), "--output-dir", str(out), *TINY, "--init-from", str(seed)]
    with caplog.at_level(logging.INFO):
        assert run_cli(train_main, [*args, "--stop-after-steps", "1", "--lr", "1e-12"]) == 0
    assert "seed urbste/nanosam2 checkpoint: trunk names mapped (mobilenet_v3_large" in caplog.text
    student = build_nanosam2(checkpoint=out / "last.pth", device="cpu")
    assert student.nanosam2_spec["trunk"]["backbone"] == "mobilenet_v3_large"
    started = ours.image_encoder.trunk.state_dict()
    trained = student.image_encoder.trunk.state_dict()
    assert all(torch.allclose(started[k].float(), trained[k].float(), atol=1e-6) for k in started
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))  # BN statistics move in training
    assert run_cli(train_main, ["--images", str(sa1b), "--output-dir", str(tmp_path / "other"), *TINY,
                                "--init-from", str(seed), "--backbone", "resnet18"]) == 2
    assert ("seed urbste/nanosam2 mobilenet_v3_large checkpoint, not resnet18 (use --backbone mobilenet_v3_large"
            in capsys.readouterr().err)
