"""Checkpoints written as the research code urbste/nanosam2 writes them load wherever a checkpoint is
accepted (issue 24): its trunk names (``tests/data/seed_trunk_keys.json``: names and shapes derived
from its backbone definitions) are mapped once, the load stays strict, and the student computes
exactly what it computes with the same tensors under our names."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from nanosam2 import contract as C
from nanosam2.build import build_nanosam2, student_config_name
from nanosam2.errors import CheckpointError

SEED_KEYS = json.loads((Path(__file__).parent / "data" / "seed_trunk_keys.json").read_text())
TRUNK = "image_encoder.trunk."
SIZE = 256


def module_order(backbone: str, seed_key: str) -> tuple[int, ...]:
    """Where a seed trunk key's container sits in our module order. resnet18 and mobilenet_v3_large
    declare their modules in our order; casvit_s keeps stages and downsamplings in one ``network`` list
    and the output norms last, where ours has stem, downsamples, stages, out_norms."""
    if backbone != "casvit_s":
        return (0,)
    head, _, rest = seed_key.partition(".")
    if head == "network":
        index = int(rest.split(".")[0])
        return (2, index // 2) if index % 2 == 0 else (1, (index + 1) // 2)
    return (0,) if head == "patch_embed" else (3, int(head.removeprefix("norm")))


def seed_checkpoint(backbone: str, path: Path, qat: bool = False) -> tuple[Path, torch.nn.Module]:
    """A seed-format checkpoint of random weights, and our model holding the same tensors. Ours are
    placed by position: the seed's trunk keys (in our container order, :func:`module_order`) and ours come
    in the same order with the same shapes (an independent check of the name mapping)."""
    torch.manual_seed(0)
    ours = build_nanosam2(student_config_name(backbone), device="cpu", image_size=SIZE)
    state = ours.state_dict()
    our_trunk = [k for k in state if k.startswith(TRUNK)]
    seed_trunk = sorted(SEED_KEYS[backbone].items(), key=lambda item: module_order(backbone, item[0]))
    assert len(our_trunk) == len(seed_trunk)
    seed_state = {k: v for k, v in state.items() if not k.startswith(TRUNK)}
    for ours_key, (seed_key, shape) in zip(our_trunk, seed_trunk):
        assert list(state[ours_key].shape) == shape, (ours_key, seed_key)
        tensor = state[ours_key]
        if tensor.is_floating_point():
            tensor = torch.randn_like(tensor) * 0.1 + (1.0 if seed_key.endswith("running_var") else 0.0)
            tensor = tensor.abs() if seed_key.endswith("running_var") else tensor
        state[ours_key] = tensor
        seed_state[TRUNK + seed_key] = tensor
        if qat and seed_key.endswith("conv1.weight"):  # torch.ao prepare_qat's observers beside the weights
            seed_state[TRUNK + seed_key.replace("weight", "weight_fake_quant.scale")] = torch.ones(1)
            seed_state[TRUNK + seed_key.replace("weight", "activation_post_process.zero_point")] = torch.zeros(1)
    ours.load_state_dict(state)
    torch.save({"model": seed_state, "optimizer": {"state": {}}, "best_miou_all": 0.61, "epoch": 9}, path)
    return path, ours.eval()


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large", "casvit_s"])
def test_a_seed_checkpoint_loads_and_computes_what_ours_does(backbone, tmp_path, caplog):
    path, ours = seed_checkpoint(backbone, tmp_path / "seed.pth")
    with caplog.at_level(logging.INFO):
        loaded = build_nanosam2(checkpoint=path, device="cpu", image_size=SIZE).eval()  # its keys say the student
    assert f"seed urbste/nanosam2 checkpoint: trunk names mapped ({backbone}" in caplog.text
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        expected, got = ours.image_encoder(image), loaded.image_encoder(image)
    for a, b in zip(expected["backbone_fpn"], got["backbone_fpn"]):
        assert torch.equal(a, b)


def test_a_seed_qat_checkpoint_loads_as_its_float_weights(tmp_path, caplog):
    path, ours = seed_checkpoint("resnet18", tmp_path / "qat.pth", qat=True)
    with caplog.at_level(logging.INFO):
        loaded = build_nanosam2(student_config_name("resnet18"), checkpoint=path, device="cpu", image_size=SIZE)
    assert "18 QAT observer entries dropped: loads as its float weights" in caplog.text  # 9 convs named conv1
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), loaded.state_dict().values()))


def test_a_seed_checkpoint_of_another_backbone_is_refused_naming_both(tmp_path):
    path, _ = seed_checkpoint("resnet18", tmp_path / "seed.pth")
    with pytest.raises(CheckpointError, match="seed urbste/nanosam2 resnet18 checkpoint, not mobilenet_v3_large "
                                              r"\(use --backbone resnet18"):
        build_nanosam2(student_config_name("mobilenet_v3_large"), checkpoint=path, device="cpu")
    path, _ = seed_checkpoint("casvit_s", tmp_path / "casvit.pth")
    with pytest.raises(CheckpointError, match="seed urbste/nanosam2 casvit_s checkpoint, not resnet18"):
        build_nanosam2(student_config_name("resnet18"), checkpoint=path, device="cpu")


def test_the_runtime_and_the_exporter_take_a_seed_checkpoint(tmp_path):
    from nanosam2.inference.torch_runner import TorchRunner

    path, ours = seed_checkpoint("mobilenet_v3_large", tmp_path / "seed.pth")
    runner = TorchRunner(path, graph=C.ENCODER, device="cpu")
    assert runner.contract.backbone == "mobilenet_v3_large"


def test_metas_hiera_checkpoint_is_never_taken_for_a_seed_casvit(tmp_path, hiera_t_model):
    """Hiera's trunk has a patch_embed too (issue 32): it is Meta's hiera_t, built as the teacher where no model
    is named, and named beside the student where one is."""
    from nanosam2.build import build_model
    from nanosam2.checkpoint import save_checkpoint
    from nanosam2.seed_checkpoint import checkpoint_backbone, seed_backbone

    path = save_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", hiera_t_model)
    state = torch.load(path, weights_only=True)["model"]
    assert seed_backbone(state) is None and checkpoint_backbone(state) == "hiera_t"
    with pytest.raises(CheckpointError, match="is Meta's SAM2.1 hiera_t checkpoint, not resnet18 "
                                              r"\(build it with --backbone hiera_t"):
        build_nanosam2(student_config_name("resnet18"), checkpoint=path, device="cpu")
    with pytest.raises(CheckpointError, match="hiera_t checkpoint, not a nanosam2 student"):
        build_nanosam2(checkpoint=path, device="cpu")
    teacher = build_model(None, path, "cpu")
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), hiera_t_model.state_dict().values()))


def test_a_checkpoint_with_our_names_and_the_seeds_for_one_trunk_is_refused(tmp_path):
    """Merged silently, the seed's copies won and the export's weights hash changed (issue 32)."""
    path, ours = seed_checkpoint("resnet18", tmp_path / "seed.pth")
    both = torch.load(path, weights_only=True)
    both["model"].update({k: v for k, v in ours.state_dict().items() if k.startswith(TRUNK)})
    torch.save(both, tmp_path / "both.pth")
    with pytest.raises(CheckpointError, match=r"under both nanosam2's names \(120 keys\) and the seed's resnet18 "
                                              r"names \(120 keys\)"):
        build_nanosam2(student_config_name("resnet18"), checkpoint=tmp_path / "both.pth", device="cpu")
