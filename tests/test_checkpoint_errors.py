"""Bad checkpoints and names fail with one line that names the problem."""

import subprocess
import sys

import pytest
import torch

from nanosam2.build import build_nanosam2, build_teacher
from nanosam2.checkpoint import save_checkpoint
from nanosam2.errors import CheckpointError, NanoSam2Error


@pytest.fixture(scope="module")
def student_file(tmp_path_factory, resnet18_model):
    from nanosam2.build import save_student

    return save_student(tmp_path_factory.mktemp("ckpt") / "student.pth", resnet18_model)


def _one_line(exc) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_missing_and_unexpected_keys_are_named(student_file, tmp_path):
    payload = torch.load(student_file, weights_only=True)
    del payload["model"]["sam_mask_decoder.iou_token.weight"]
    payload["model"]["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError) as info:
        build_nanosam2(checkpoint=bad, device="cpu")
    text = _one_line(info.value)
    assert "missing keys 1 (sam_mask_decoder.iou_token.weight)" in text
    assert "unexpected keys 1 (extra.weight)" in text


def test_checkpoint_of_another_backbone_is_rejected(student_file):
    with pytest.raises(CheckpointError) as info:
        build_nanosam2("casvit_s", checkpoint=student_file, device="cpu")
    assert "is a resnet18 checkpoint, not casvit_s (use --backbone resnet18" in _one_line(info.value)


def test_student_file_is_not_a_teacher(student_file):
    with pytest.raises(CheckpointError):
        build_teacher("hiera_t", student_file, device="cpu")


@pytest.mark.parametrize("content", [b"this is not a checkpoint", b""])
def test_non_checkpoint_file(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        build_nanosam2("resnet18", checkpoint=path, device="cpu")
    assert "is not a PyTorch checkpoint: neither a zip archive nor a pickle" in _one_line(info.value)
    assert ("(it is empty)" if not content else "(it begins 'this is not a ch')") in _one_line(info.value)


def test_dict_without_model_key(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError) as info:
        build_nanosam2("resnet18", checkpoint=path, device="cpu")
    assert "expected a dict with a 'model' state dict" in _one_line(info.value)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        build_nanosam2("resnet18", checkpoint=tmp_path / "nope.pth", device="cpu")


@pytest.mark.parametrize("name", ["resnet1000", "nanosam2.1_vgg"])
def test_unknown_student_config(name):
    with pytest.raises(NanoSam2Error) as info:
        build_nanosam2(name, device="cpu")
    assert "known" in _one_line(info.value)


def test_unknown_teacher_config():
    with pytest.raises(NanoSam2Error, match="unknown SAM2.1 teacher config 'hiera_xxl'"):
        build_teacher("hiera_xxl", None, device="cpu")


def test_demo_cli_reports_bad_checkpoint_in_one_line(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"nope")
    result = subprocess.run([sys.executable, "-m", "trt_runtime.demo", "--checkpoint", str(junk),
                             "--output-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not a PyTorch checkpoint" in errors[0]
    assert not (tmp_path / "out" / "overlay.png").exists()


def test_teacher_heads_from_wrong_model(tmp_path):
    path = save_checkpoint(tmp_path / "resnet.pth", torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="not a SAM2.1 checkpoint the student can take its heads from"):
        build_nanosam2("resnet18", teacher_checkpoint=path, device="cpu")
