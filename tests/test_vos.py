"""Video accuracy (issue 24): ``eval-vos`` (Meta's vos_inference protocol over any backend) and
``vos-metric`` (J&F with vos-benchmark) on synthetic DAVIS-layout sets of moving shapes (objects
appearing late, one leaving), an oracle tracker for the loop, the resnet18 ONNX export end to end.
Meta's own ``tools/vos_inference.py`` against eval-vos: test_vos_oracle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.evaluation.vos_data import davis_palette, read_mask_png, write_mask_png
from nanosam2.evaluation.vos_eval import evaluate_vos, plan_vos
from nanosam2.evaluation.vos_metrics import score
from nanosam2.samples import vos_objects, write_vos_dataset
from nanosam2.utils.cli import run_cli
from tests.conftest import made_once

SMALL = 64


def cli(*args: str) -> int:
    from trt_runtime.cli import main

    return run_cli(main, list(args))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return made_once(tmp_path_factory, "vos-small", lambda root: write_vos_dataset(root, 3, 8, SMALL, SMALL))


def oracle(shift: int = 0):
    """A tracker that knows the true shapes (shifted right by ``shift`` px): the loop without a model."""
    def track(sequence, masks):
        index = int(sequence.name.split("-")[1])
        joined: set[int] = set()
        for t, (number, _) in enumerate(sequence.frames):
            joined |= set(masks.get(number, {}))
            truth = vos_objects(SMALL, SMALL, t, index)
            yield number, {obj: np.where(np.roll(truth.get(obj, np.zeros((SMALL, SMALL), bool)), shift, 1), 10.0, -10.0)
                           for obj in joined}
    return track


def test_vos_metric_is_100_on_the_truth_and_vos_benchmark_on_shifted_masks(small_set, tmp_path, capsys):
    from vos_benchmark.benchmark import benchmark

    gt = small_set / "Annotations"
    assert cli("vos-metric", str(small_set), str(gt), "--csv", str(tmp_path / "truth.csv")) == 0
    assert "J&F 100.00  J 100.00  F 100.00  (7 objects in 3 sequences)" in capsys.readouterr().out
    shifted = tmp_path / "shifted"
    for path in gt.rglob("*.png"):
        ids, _ = read_mask_png(path)
        target = shifted / path.relative_to(gt)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_mask_png(target, np.roll(ids, 3, axis=1 + int(path.stem) % 2 - 1), davis_palette())
    ours = score(gt, shifted)
    theirs = benchmark([str(gt)], [str(shifted)], num_processes=1, verbose=False)
    assert 50 < ours.global_jf < 99
    assert ours.global_jf == pytest.approx(theirs[0][0], abs=1e-9)
    assert ours.global_j == pytest.approx(theirs[1][0], abs=1e-9) and ours.global_f == pytest.approx(theirs[2][0], abs=1e-9)
    per_object = theirs[3][0]
    for (sequence, obj), j in ours.j.items():
        assert j == pytest.approx(per_object[sequence][0][obj], abs=1e-9)
        assert ours.f[(sequence, obj)] == pytest.approx(per_object[sequence][1][obj], abs=1e-9)
    everything = score(gt, shifted, skip_first_and_last=False)
    assert everything.global_jf != ours.global_jf  # the first and last frames count only when asked


def test_eval_vos_protocols_layouts_and_resume_with_an_oracle(small_set, tmp_path):
    images, gt = small_set / "JPEGImages", small_set / "Annotations"
    with pytest.raises(NanoSam2Error, match="sequence shapes-1: object 3 is absent from the first frame .first on "
                                            "frame 00002.; the first-frame protocol"):
        plan_vos(images, gt, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "pred"
    first = evaluate_vos(plan_vos(images, gt, out, "later-objects", limit=2), oracle(), "oracle", progress=False)
    assert first.evaluated == ["shapes-0", "shapes-1"]
    again = evaluate_vos(plan_vos(images, gt, out, "later-objects"), oracle(), "oracle", progress=False)
    assert again.evaluated == ["shapes-2"]  # resumed after the complete sequences
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == \
        sorted(p.relative_to(gt).as_posix() for p in gt.rglob("*.png"))  # every frame of every sequence
    assert score(gt, out).global_jf == 100.0
    with pytest.raises(NanoSam2Error, match="holds results of another model or protocol"):
        evaluate_vos(plan_vos(images, gt, out, "later-objects"), oracle(), "another model", progress=False)
    shifted = evaluate_vos(plan_vos(images, gt, out, "later-objects", sequences=["shapes-1"]), oracle(4),
                           "another model", resume=False, progress=False)
    assert shifted.evaluated == ["shapes-1"] and sorted(shifted.sequences) == ["shapes-1"]
    assert not (out / "shapes-0").exists()  # a fresh start replaced the earlier run's results
    assert 0 < score(gt, out, predicted_only=True).global_jf < 100

    sav = write_vos_dataset(tmp_path / "sav", 2, 7, SMALL, SMALL, per_object=True)  # SA-V: sparse, per object
    out = tmp_path / "sav-pred"
    evaluate_vos(plan_vos(sav / "JPEGImages", sav / "Annotations", out, "later-objects"), oracle(), "o", progress=False)
    assert len(list((out / "shapes-1" / "003").glob("*.png"))) == 7  # every frame, per object
    assert score(sav / "Annotations", out).global_jf == 100.0


def test_eval_vos_and_vos_metric_refuse_bad_inputs(small_set, tmp_path, capsys):
    def refused(args: list[str], says: str) -> None:
        assert cli(*args) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err

    bad = tmp_path / "bad"
    shutil.copytree(small_set, bad)
    ann = bad / "Annotations" / "shapes-0"
    Image.open(ann / "00003.png").convert("RGB").save(ann / "00003.png")
    (tmp_path / "model.pth").write_bytes(b"")  # never loaded: the dataset is refused first
    run = ["eval-vos", "--model-dir", str(tmp_path / "model.pth"), "--dataset", str(bad), "--output", str(tmp_path / "o")]
    refused(run, "00003.png: a RGB image, not a palette or greyscale mask of object ids")
    (ann / "00003.png").unlink()
    shutil.copy(ann / "00004.png", ann / "00042.png")
    refused(run, "00042.png: sequence shapes-0 has no frame 00042.jpg for this annotation")
    (ann / "00042.png").unlink()
    (ann / "001").mkdir()
    refused(run, "both frame PNGs and object folders")
    (ann / "001").rmdir()
    stranger = tmp_path / "o" / "shapes-0"
    stranger.mkdir(parents=True)
    (stranger / "00000.png").write_bytes(b"mine")
    refused([*run, "--later-objects"], "is in the way and no earlier `eval-vos` run recorded writing it")
    refused(["vos-metric", str(bad), str(tmp_path / "o")], "lacks 2 of 3 sequences (first: shapes-1)")
    pred = tmp_path / "p"
    shutil.copytree(small_set / "Annotations", pred)
    (pred / "shapes-2" / "00004.png").unlink()
    refused(["vos-metric", str(small_set), str(pred)], "00004.png: missing; predictions cover every annotated frame")
    sizes = tmp_path / "sizes"  # frames of two sizes: found before any model loads, naming the file
    shutil.copytree(small_set, sizes)
    frame = sizes / "JPEGImages" / "shapes-1" / "00002.jpg"
    Image.open(frame).resize((40, 30)).save(frame)
    refused(["eval-vos", "--model-dir", str(tmp_path / "model.pth"), "--dataset", str(sizes), "--output",
             str(tmp_path / "o2")], f"sequence shapes-1: {frame} is 40x30")
    refused([*run, "--sequences", "shapes-0/../shapes-1"], "a sequence is the name of a folder in ANNOTATIONS")
    grey = tmp_path / "grey"  # object 1 saved as a 0/255 picture: id 255 is no object of the truth
    for path in sorted((small_set / "Annotations" / "shapes-0").glob("*.png")):
        (grey / "shapes-0").mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.array(Image.open(path)) == 1).astype(np.uint8) * 255).save(grey / "shapes-0" / path.name)
    refused(["vos-metric", str(small_set), str(grey), "--predicted-only"], "object id 255 never appears in the ground truth")
    eval_out = tmp_path / "eval-out"  # what eval-vos writes, given first
    shutil.copytree(small_set / "Annotations", eval_out)
    (eval_out / "eval-vos.json").write_text("{}")
    refused(["vos-metric", str(eval_out), str(small_set)], "holds eval-vos.json: it is eval-vos's predictions")
    assert not (small_set / "Annotations" / "vos-metric.csv").exists()
    user_csv = tmp_path / "mine.csv"
    user_csv.write_text("a,b\n")
    refused(["vos-metric", str(small_set), str(small_set / "Annotations"), "--csv", str(user_csv)],
            "no record says `vos-metric` wrote it")
    assert user_csv.read_text() == "a,b\n"


@pytest.fixture(scope="module")
def video_set(tmp_path_factory) -> Path:
    return made_once(tmp_path_factory, "vos-512", lambda root: write_vos_dataset(root, 2, 4, 512, 512))


def test_eval_vos_end_to_end_on_the_resnet18_export(video_set, tmp_path_factory, tmp_path, capsys):
    """eval-vos on the ONNX export (ONNX Runtime): resumed after a whole sequence, every frame written, the
    run recorded with the tracker's configuration (Meta's vos_inference one), scored by vos-metric. Meta's own
    script is the oracle of its masks: test_vos_oracle."""
    from export.exporter import export_model
    from nanosam2.inference.tracker_config import VOS_INFERENCE
    from tests.conftest import export_once
    from tests.test_video import video_model

    paths = export_once(tmp_path_factory, "onnx-video-512",
                        lambda folder: export_model(video_model("resnet18"), "resnet18", folder))
    model_dir = Path(paths[C.ENCODER]).parent
    ours = tmp_path / "ours"
    args = ["eval-vos", "--model-dir", str(model_dir), "--dataset", str(video_set), "--later-objects",
            "--output", str(ours)]
    assert cli(*args, "--limit", "1") == 0
    assert cli(*args) == 0
    assert "tracked 1 sequence(s), 4 frames" in capsys.readouterr().out  # resumed: shapes-0 was done
    record = json.loads((ours / "eval-vos.json").read_text())
    assert record["protocol"] == "later-objects" and sorted(record["sequences"]) == ["shapes-0", "shapes-1"]
    tracker = record["model"]["tracker"]  # Meta's vos_inference model; palette PNGs: its non-overlap rule on
    assert tracker == {**VOS_INFERENCE.record(), "memory_frames": 6, "max_object_pointers": 16}
    assert sorted(p.relative_to(ours).with_suffix("").as_posix() for p in ours.rglob("*.png")) == \
        sorted(p.relative_to(video_set / "JPEGImages").with_suffix("").as_posix()
               for p in (video_set / "JPEGImages").rglob("*.jpg"))  # every frame of every sequence
    assert cli("vos-metric", str(video_set), str(ours)) == 0
    line = capsys.readouterr().out.splitlines()[0]
    print("resnet18 ONNX Runtime:", line)
    assert line.startswith("J&F ")


def test_a_sequence_named_with_a_trailing_slash_is_that_sequence(small_set, tmp_path):
    """``--sequences shapes-0/`` as a shell completes it (issue 32: the work was lost at publishing)."""
    from nanosam2.evaluation.vos_eval import evaluate_vos, plan_vos

    plan = plan_vos(small_set / "JPEGImages", small_set / "Annotations", tmp_path / "o", sequences=["shapes-0/"])
    assert [seq.name for seq in plan.sequences] == ["shapes-0"]
    evaluate_vos(plan, oracle(), "o", progress=False)
    assert (tmp_path / "o" / "shapes-0" / "00007.png").is_file()
