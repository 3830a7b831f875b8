"""Students are drop-in SAM2.1 image encoders: same outputs as Hiera, same heads, same files."""

import pytest
import torch

from nanosam2.build import build_nanosam2, build_teacher, save_student
from nanosam2.checkpoint import ENCODER_PREFIX, save_checkpoint

HIERA_SHAPES = {
    "vision_features": (1, 256, 64, 64),
    "backbone_fpn": [(1, 256, 256, 256), (1, 256, 128, 128), (1, 256, 64, 64)],
    "vision_pos_enc": [(1, 256, 256, 256), (1, 256, 128, 128), (1, 256, 64, 64)],
}


def _shapes(out):
    return {k: [tuple(t.shape) for t in v] if isinstance(v, list) else tuple(v.shape) for k, v in out.items()}


def test_hiera_reference_shapes(hiera_t_model):
    with torch.no_grad():
        assert _shapes(hiera_t_model.image_encoder(torch.zeros(1, 3, 1024, 1024))) == HIERA_SHAPES


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large", "casvit_s"])
def test_student_gives_hiera_outputs_at_1024(backbone):
    model = build_nanosam2(backbone, device="cpu")
    params = sum(p.numel() for p in model.image_encoder.parameters())
    print(f"{backbone}: image encoder {params / 1e6:.2f} M parameters")
    with torch.no_grad():
        out = model.image_encoder(torch.randn(1, 3, 1024, 1024))
    assert _shapes(out) == HIERA_SHAPES
    assert all(torch.isfinite(t).all() for t in out["backbone_fpn"])


def test_student_heads_are_the_teachers(hiera_t_model, tmp_path):
    """A student initialised from a teacher checkpoint carries the teacher's SAM heads exactly."""
    teacher_file = save_checkpoint(tmp_path / "teacher.pt", hiera_t_model)
    student = build_nanosam2("resnet18", teacher_checkpoint=teacher_file, device="cpu")
    teacher_state, student_state = hiera_t_model.state_dict(), student.state_dict()
    heads = [k for k in teacher_state if not k.startswith(ENCODER_PREFIX)]
    assert len(heads) > 100
    assert all(torch.equal(teacher_state[k], student_state[k]) for k in heads)


def test_student_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = build_nanosam2("casvit_s", device="cpu")
    path = save_student(tmp_path / "student.pth", model, epoch=3)
    assert not list(tmp_path.glob("*.partial"))
    reloaded = build_nanosam2(checkpoint=path, device="cpu")  # config comes from the file
    image = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        a, b = model.image_encoder(image), reloaded.image_encoder(image)
    assert all(torch.equal(x, y) for x, y in zip(a["backbone_fpn"], b["backbone_fpn"]))
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_teacher_loads_meta_checkpoint_strictly(hiera_t_model, tmp_path):
    path = save_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", hiera_t_model)
    teacher = build_teacher("sam2.1_hiera_t", path, device="cpu")
    key = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(teacher.state_dict()[key], hiera_t_model.state_dict()[key])
