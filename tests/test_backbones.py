import pytest
import torch

from nanosam2.modeling.backbones import UnknownBackboneError, create_backbone, get_backbone_spec, list_backbones
from nanosam2.modeling.backbones.casvit import CASViT

STUDENTS = ["resnet18", "mobilenet_v3_large", "casvit_s"]


def test_registry_lists_every_student():
    assert set(STUDENTS) <= set(list_backbones())


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(UnknownBackboneError) as info:
        create_backbone("resnet1000")
    message = str(info.value)
    assert "resnet1000" in message and all(name in message for name in STUDENTS)
    assert "\n" not in message


@pytest.mark.parametrize("name", STUDENTS)
def test_backbone_honours_its_feature_contract(name):
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    info = get_backbone_spec(name).feature_info
    with torch.no_grad():
        features = model(torch.randn(1, 3, 128, 192))
    assert [f.shape[1] for f in features] == list(info.channels)
    assert [(128 // s, 192 // s) for s in info.strides] == [tuple(f.shape[-2:]) for f in features]
    assert all(torch.isfinite(f).all() for f in features)


def test_casvit_s_parameter_count_matches_paper():
    paper = 5.8e6
    classifier = sum(p.numel() for p in CASViT(num_classes=1000).parameters())
    trunk = sum(p.numel() for p in create_backbone("casvit_s").parameters())
    print(f"CAS-ViT-S: {classifier / 1e6:.3f} M with ImageNet heads (paper 5.8 M), trunk {trunk / 1e6:.3f} M")
    assert abs(classifier - paper) / paper < 0.05
    assert 5.0e6 < trunk < classifier


def test_casvit_classifier_runs():
    model = CASViT(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
