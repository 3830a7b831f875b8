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
    taps = {}  # each level is the output of the module its feature info names (timm's FeatureInfo check)
    modules = dict(model.named_modules())
    hooks = [modules[name].register_forward_hook(lambda m, i, o, name=name: taps.__setitem__(name, o))
             for name in info.modules]
    with torch.no_grad():
        features = model(torch.randn(1, 3, 128, 192))
    for hook in hooks:
        hook.remove()
    assert all(torch.equal(taps[name], f) for name, f in zip(info.modules, features))


def test_a_backbone_is_one_module_everything_else_reads_its_registry_entry(tmp_path):
    """Issue 33: a backbone registered in one place is a student config, a build, a benchmark row, an export
    choice, and its research-code checkpoints are recognised and mapped, with nothing else edited."""
    from torch import nn

    from benchmarks.run_all import default_backbones
    from export.onnx import build_parser
    from nanosam2.build import build_nanosam2, list_student_configs
    from nanosam2.modeling.backbones import FeatureInfo, SeedLayout, register_backbone
    from nanosam2.modeling.backbones import registry
    from nanosam2.seed_checkpoint import checkpoint_backbone, map_seed_state

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.levels = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, stride=s, padding=1)
                                        for c_in, c_out, s in ((3, 8, 4), (8, 16, 2), (16, 32, 2), (32, 64, 2)))

        def forward(self, x):
            out = []
            for level in self.levels:
                x = level(x)
                out.append(x)
            return out

    seed = SeedLayout(markers=("convs.",), renames=((r"^convs\.", "body.levels."),))
    register_backbone("tiny_test", FeatureInfo((8, 16, 32, 64), modules=tuple(f"levels.{i}" for i in range(4))),
                      seed=seed)(lambda pretrained=False: Tiny())
    try:
        assert "nanosam2.1_tiny_test" in list_student_configs() and "tiny_test" in default_backbones()
        assert "tiny_test" in build_parser().format_help()
        model = build_nanosam2("tiny_test", device="cpu", image_size=128)
        state = model.state_dict()
        assert checkpoint_backbone(state) == "tiny_test"
        seed = {k.replace("trunk.body.levels.", "trunk.convs."): v for k, v in state.items()}
        assert checkpoint_backbone(seed) == "tiny_test"
        assert set(map_seed_state(seed, "tiny_test", "seed.pth")) == set(state)
    finally:
        registry._REGISTRY.pop("tiny_test", None)


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
