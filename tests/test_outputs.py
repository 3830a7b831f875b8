"""The one output policy (``nanosam2.utils.outputs``) and the rules issue 22 asked of every command:
files in the way that no record of the command lists are refused, inputs never lie inside what a
command replaces, frames keep the numbers their names carry, one prompt validation for images and
video, and work bounded before it starts. Torch-free and model-free where the rule allows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.prompts import Prompts
from nanosam2.utils.cli import run_cli
from nanosam2.utils.outputs import OUTPUT_KEY, OutputFolder

SAMPLE = "nanosam2/assets/grace_hopper.jpg"


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_once(out: Path, files: dict[str, str], command: str = "track", **kwargs) -> OutputFolder:
    folder = OutputFolder(out, command, f"{command}.json", files=("overlay.mp4",), folders=("masks",), **kwargs)
    with folder.staging() as stage:
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)
        folder.publish(stage, {"what": command})
    return folder


# -- the policy itself ------------------------------------------------------------------------------
def test_a_run_replaces_its_own_files_and_keeps_everyone_elses(tmp_path):
    out = tmp_path / "out"
    run_once(out, {"masks/1/00000.png": "a", "masks/1/00001.png": "b", "overlay.mp4": "v"})
    (out / "notes.txt").write_text("mine")
    record = json.loads((out / "track.json").read_text())[OUTPUT_KEY]
    assert record["complete"] and record["files"] == ["masks/1/00000.png", "masks/1/00001.png", "overlay.mp4",
                                                      "track.json"]
    run_once(out, {"masks/2/00000.png": "c"})  # the earlier run's masks and overlay go, the notes stay
    assert tree(out).keys() == {"masks/2/00000.png", "notes.txt", "track.json"}
    assert not (out / "masks" / "1").exists() and not list(out.glob(".track-*"))


@pytest.mark.parametrize("stranger", ["masks/mine.png", "masks/1/00000.png", "overlay.mp4"])
def test_files_no_record_lists_are_refused_before_any_work(tmp_path, stranger):
    out = tmp_path / "out"
    (out / stranger).parent.mkdir(parents=True)
    (out / stranger).write_text("the user's")
    before = tree(out)
    with pytest.raises(NanoSam2Error, match="in the way and no earlier `track` run recorded"):
        run_once(out, {"masks/1/00000.png": "a"})
    assert tree(out) == before


def test_a_record_that_is_not_the_commands_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for text in ('{"frames": 3}', "not json", json.dumps({OUTPUT_KEY: {"command": "predict", "files": []}})):
        (out / "track.json").write_text(text)
        with pytest.raises(NanoSam2Error, match="is not the record of a `track` run"):
            run_once(out, {"overlay.mp4": "v"})
        assert (out / "track.json").read_text() == text


def test_a_user_file_added_beside_earlier_outputs_is_refused(tmp_path):
    """The earlier run's track.json does not make every file under masks/ the tracker's."""
    out = tmp_path / "out"
    run_once(out, {"masks/1/00000.png": "a"})
    (out / "masks" / "1" / "edited.png").write_text("the user's")
    with pytest.raises(NanoSam2Error, match="edited.png is in the way"):
        run_once(out, {"masks/1/00000.png": "b"})
    assert (out / "masks" / "1" / "00000.png").read_text() == "a"


def test_a_failed_run_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    run_once(out, {"masks/1/00000.png": "a"})
    before = tree(out)
    folder = OutputFolder(out, "track", "track.json", files=("overlay.mp4",), folders=("masks",))
    with pytest.raises(KeyboardInterrupt), folder.staging() as stage:
        (stage / "masks").mkdir()
        (stage / "masks" / "x.png").write_text("half")
        raise KeyboardInterrupt
    assert tree(out) == before and not list(out.glob(".*"))
    with pytest.raises(KeyboardInterrupt), OutputFolder(tmp_path / "new" / "deep", "track", "track.json").staging():
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()  # the folders it made are gone too


def test_inputs_inside_what_a_command_replaces_are_refused(tmp_path):
    out = tmp_path / "out"
    run_once(out, {"masks/1/00000.png": "a", "overlay.mp4": "v"})
    (out / "masks" / "prompt").mkdir()
    for source in (out / "overlay.mp4", out / "masks" / "1" / "00000.png", out / "masks" / "prompt",
                   out / "track.json"):
        with pytest.raises(NanoSam2Error, match="lies inside what `track` would replace"):
            OutputFolder(out, "track", "track.json", files=("overlay.mp4",), folders=("masks",), inputs=(source,))
    (out / "frames").mkdir()
    OutputFolder(out, "track", "track.json", files=("overlay.mp4",), folders=("masks",),
                 inputs=(out / "frames", out / "notes.txt"))  # beside the outputs: fine


OLD = {"masks/1/00000.png": "a", "masks/1/00001.png": "b", "overlay.mp4": "old"}
NEW = {"masks/2/00000.png": "c", "masks/2/00001.png": "d", "overlay.mp4": "new"}


@pytest.mark.parametrize("stop_at", range(1, 7))  # the journal, the interim record, 3 files, the record
def test_ctrl_c_anywhere_in_publishing_leaves_the_old_or_the_new_results_whole(tmp_path, monkeypatch, stop_at):
    import os

    out = tmp_path / "out"
    run_once(out, OLD)
    real, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_once(out, NEW)
    monkeypatch.setattr(os, "replace", real)
    found = {name: (out / name).read_text() for name in tree(out) if name != "track.json"}
    assert found in (OLD, NEW), f"stopped at rename {stop_at}: {found}"
    record = json.loads((out / "track.json").read_text())[OUTPUT_KEY]
    assert record["complete"] and set(record["files"]) == set(found) | {"track.json"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from tests.test_outputs import NEW, run_once
real, calls = os.replace, []
def killed(src, dst):
    calls.append(dst)
    if len(calls) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # no handler runs, as with kill -9 or a power cut
    return real(src, dst)
os.replace = killed
run_once(Path(sys.argv[1]), NEW)
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 6])
def test_after_kill_9_the_next_start_finishes_or_removes_what_the_run_left(tmp_path, kill_at, caplog):
    import subprocess
    import sys

    out = tmp_path / "out"
    run_once(out, OLD)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", KILLED_RUN, str(out), str(kill_at)], cwd=root,
                            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    assert [p for p in out.iterdir() if p.name.endswith(".partial")]  # the run's staging folder is left behind
    with caplog.at_level("WARNING"):
        OutputFolder(out, "everything", "everything.json", files=("masks.json",))  # any command on the folder
    assert [r for r in caplog.records if "staging folder" in r.getMessage() or "finished publishing" in r.getMessage()]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    found = {name: (out / name).read_text() for name in tree(out) if name != "track.json"}
    assert found in (OLD, NEW), f"killed at rename {kill_at}: {found}"
    record = json.loads((out / "track.json").read_text())[OUTPUT_KEY]
    assert record["complete"] and set(record["files"]) == set(found) | {"track.json"}


# -- per command ----------------------------------------------------------------------------------------
def test_predict_and_everything_refuse_files_they_did_not_write(runtime_onnx, tmp_path):
    from trt_runtime import cli

    graphs = ["--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]), "--image", SAMPLE]
    for command, name, extra in (("predict", "overlay.png", ["--point", "200,200"]),
                                 ("predict", "predict.json", ["--point", "200,200"]),
                                 ("everything", "masks.json", ["--points-per-side", "2"]),
                                 ("everything", "everything.json", ["--points-per-side", "2"])):
        out = tmp_path / f"{command}-{name}"
        out.mkdir()
        (out / name).write_text("{}")
        assert run_cli(cli.main, [command, *graphs, *extra, "--output", str(out)]) == 2
        assert tree(out) == {name: hashlib.sha256(b"{}").hexdigest()}
    out = tmp_path / "inside"
    assert run_cli(cli.main, ["everything", *graphs, "--points-per-side", "2", "--output", str(out)]) == 0
    image = out / "overlay.png"  # the overlay given back as the image: it would be replaced by its own run
    assert run_cli(cli.main, ["everything", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder",
                              str(runtime_onnx[C.DECODER]), "--image", str(image), "--points-per-side", "2",
                              "--output", str(out)]) == 2


def test_file_commands_replace_only_what_their_record_says_they_wrote(runtime_onnx, tmp_path, capsys):
    from calib.prepare import prepare
    from engines.build_engine import BuildRequest, check_build_request
    from export.exporter import export_backbone

    foreign = tmp_path / "image_encoder.onnx"
    foreign.write_text("someone else's graph")
    with pytest.raises(NanoSam2Error, match="no record says `export.onnx` wrote it"):
        export_backbone("resnet18", tmp_path)
    engine = tmp_path / "enc.engine"
    engine.write_bytes(b"trtexec made this")
    with pytest.raises(NanoSam2Error, match="no record says `build_engine` wrote it"):
        check_build_request(runtime_onnx[C.DECODER], engine, BuildRequest())
    data = tmp_path / "calib.npy"
    np.save(data, np.zeros(3))
    with pytest.raises(NanoSam2Error, match="no record says `calib.prepare` wrote it"):
        prepare(str(tmp_path), data, 1)
    from calib import qdq

    graph = tmp_path / "enc.int8.onnx"
    graph.write_text("an INT8 graph made elsewhere")
    assert run_cli(qdq.main, ["--onnx", str(runtime_onnx[C.ENCODER]), "--calib", str(data), "--out", str(graph)]) == 2
    assert "no record says `calib.qdq` wrote it" in capsys.readouterr().err
    assert graph.read_text() == "an INT8 graph made elsewhere"
    assert foreign.read_text() == "someone else's graph" and engine.read_bytes() == b"trtexec made this"


# -- frames keep their numbers ----------------------------------------------------------------------
def jpegs(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        Image.fromarray(np.full((16, 24, 3), index * 20, np.uint8)).save(folder / name)
    return folder


def test_a_jpeg_folder_is_numbered_by_its_names_gaps_kept(tmp_path):
    from nanosam2.inference.frames import Frames

    frames = Frames(jpegs(tmp_path / "f", ["0.jpg", "1.jpg", "2.jpg", "7.jpg", "8.jpg"]))
    assert frames.numbers == [0, 1, 2, 7, 8] and frames.position(7) == 3 and int(frames[3][0, 0, 0]) == 60
    with pytest.raises(NanoSam2Error, match=r"frame 3 is not in the frame folder .*0-2, 7-8"):
        frames.position(3)
    with pytest.raises(NanoSam2Error, match="past the end"):
        frames.position(9)


@pytest.mark.parametrize("names, message", [(["1.jpg", "01.jpg"], "both frame 1"), (["0.jpg", "-1.jpg"], "-1.jpg"),
                                            (["0.jpg", "1.5.jpg"], "1.5.jpg"), (["0.jpg", "+2.jpg"], r"\+2.jpg"),
                                            (["0.jpg", "frame.jpg"], "frame.jpg")])
def test_frame_names_that_could_misnumber_are_refused(tmp_path, names, message):
    from nanosam2.inference.frames import Frames

    with pytest.raises(NanoSam2Error, match=message):
        Frames(jpegs(tmp_path / "f", names))


# -- one prompt validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("prompt, message", [
    ({"points": [[200, 10]]}, "outside the 100x50 frame"), ({"box": [-1, 0, 10, 10]}, "outside"),
    ({"points": [[float("nan"), 1]]}, "finite"), ({"box": [0, 0, float("inf"), 5]}, "finite"),
    ({"box": [5, 5, 1, 1]}, "x0 < x1"), ({"points": [[1, 1]], "labels": [2]}, "labels")])
def test_image_and_video_prompts_share_one_validation(prompt, message):
    with pytest.raises(NanoSam2Error, match=message):
        Prompts.from_dict(prompt).check_inside(100, 50, frame="frame")


def test_cli_prompts_must_be_finite():
    import argparse

    from nanosam2.prompts import parse_box, parse_point

    for text in ("nan,1", "1,inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_point(text)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_box("0,0,nan,4")


def test_track_prompts_file_refuses_non_finite_numbers(tmp_path):
    from nanosam2.inference.video_prompts import load_prompts

    path = tmp_path / "p.json"
    path.write_text('[{"frame": 0, "obj_id": 1, "points": [[NaN, 2]]}]')  # Python's JSON reader accepts NaN
    with pytest.raises(NanoSam2Error, match="finite"):
        load_prompts(path)


# -- bounded work ---------------------------------------------------------------------------------------
def test_huge_grids_are_refused_with_their_size_before_any_work():
    from nanosam2.inference.automatic import check_parameters, work_size

    assert work_size(32, 0, 1) == (1024, 1) and work_size(32, 1, 2) == (1024 + 4 * 256, 5)
    with pytest.raises(NanoSam2Error, match="100,000,000 point prompts"):
        check_parameters(points_per_side=10000)
    with pytest.raises(NanoSam2Error, match="crop"):
        check_parameters(points_per_side=64, crop_n_layers=12)  # 4**12 crops
    assert len(check_parameters(points_per_side=400, max_prompts=None)[0]) == 160000


def test_crops_too_small_are_refused_before_any_work():
    from nanosam2.inference.automatic import check_crops

    check_crops((64, 64), 3, 0.34)
    with pytest.raises(NanoSam2Error, match="crop layer 2 cuts the 8x6 image"):
        check_crops((6, 8), 3, 0.0)


def test_one_writer_per_output_folder(tmp_path):
    """Two runs into one folder interleaved (a record could name run A over a mix of A's and B's files): a
    run now holds the folder's lock from its first check to its last record; a second process is refused in
    one line naming the folder, and runs once the first has finished."""
    import subprocess
    import sys

    out = tmp_path / "out"
    hold = ("import sys, time; from pathlib import Path; from nanosam2.utils.outputs import OutputFolder; "
            "folder = OutputFolder(Path(sys.argv[1]), 'everything', 'everything.json'); print('held', flush=True); "
            "sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        command = [sys.executable, "-m", "trt_runtime", "everything", "--encoder", str(tmp_path / "e.onnx"), "--decoder",
                   str(tmp_path / "d.onnx"), "--image", "nanosam2/assets/grace_hopper.jpg", "--output", str(out)]
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert f"{out} is being written by another run" in second.stderr
        assert not out.exists()  # nothing made while waiting its turn
    finally:
        holder.communicate("done\n", timeout=30)
    after = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert after.returncode == 2 and "being written" not in after.stderr and "e.onnx" in after.stderr, after.stderr


def test_prompts_of_one_object_on_one_frame_are_applied_as_one():
    """A point then a box for one object and frame: one call with both (a box applied after would replace the
    point while track.json listed both, issue 32); what cannot be one prompt is refused."""
    from nanosam2.inference.video_prompts import parse_prompts

    merged = parse_prompts([{"frame": 0, "obj_id": 1, "points": [[5, 5]]}, {"frame": 0, "obj_id": 2, "box": [1, 1, 9, 9]},
                            {"frame": 0, "obj_id": 1, "box": [1, 1, 20, 20]},
                            {"frame": 0, "obj_id": 1, "points": [[7, 7]], "labels": [0]},
                            {"frame": 3, "obj_id": 1, "points": [[2, 2]]}], Path("."))
    assert merged == [{"frame": 0, "obj_id": 1, "points": [[5.0, 5.0], [7.0, 7.0]], "labels": [1, 0],
                       "box": [1.0, 1.0, 20.0, 20.0]},
                      {"frame": 0, "obj_id": 2, "box": [1.0, 1.0, 9.0, 9.0]},
                      {"frame": 3, "obj_id": 1, "points": [[2.0, 2.0]], "labels": [1]}]
    with pytest.raises(NanoSam2Error, match=r"prompts\[0\] and \[1\] \(object 1, frame 0\): two boxes"):
        parse_prompts([{"frame": 0, "obj_id": 1, "box": [1, 1, 9, 9]}, {"frame": 0, "obj_id": 1, "box": [2, 2, 9, 9]}],
                      Path("."))
