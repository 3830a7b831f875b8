"""QAT: BatchNorm folding, modelopt INT8 fake quantization, training, Q/DQ ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from nanosam2.utils.onnx_passes import read_metadata
from nanosam2.build import build_nanosam2, save_student
from nanosam2.distill.train_log import read_log
from nanosam2.train import main as train_main

from nanosam2.qat.batchnorm import find_conv_bn_pairs, fold_and_check, freeze_batchnorms
from nanosam2.modeling.predictor_graphs import is_quantized
from nanosam2.utils.cli import run_cli

from .sa1b_synthetic import make_sa1b


def qat_main(argv: list[str]) -> int:
    """``python -m nanosam2.train --qat``: QAT's entry point under the distillation CLI."""
    return train_main(["--qat", *argv])


pytestmark = pytest.mark.xdist_group("qat")

TINY = ["--teacher-config", "sam2.1_hiera_t", "--random-teacher", "--image-size", "128", "--batch-size", "2",
        "--lr", "1e-3", "--num-workers", "0", "--no-progress", "--calib-batches", "2"]


@pytest.fixture(scope="module")
def sa1b(tmp_path_factory) -> Path:
    return make_sa1b(tmp_path_factory.mktemp("sa1b-qat"))


@pytest.mark.parametrize("backbone,expected_pairs", [("resnet18", 20), ("mobilenet_v3_large", 46), ("casvit_s", 50)])
def test_batchnorm_folding_keeps_outputs(backbone, expected_pairs):
    torch.manual_seed(0)
    encoder = build_nanosam2(backbone, device="cpu").image_encoder
    for m in encoder.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    example = torch.randn(1, 3, 128, 128)
    pairs = fold_and_check(encoder, example)  # raises if the eval output moved by > 1e-4 relative
    assert len(pairs) == expected_pairs
    assert not find_conv_bn_pairs(encoder, example)
    remaining = freeze_batchnorms(encoder)
    # casvit_s: 2 pre-norms x 15 blocks + 4 out norms
    assert remaining == {"resnet18": 0, "mobilenet_v3_large": 0, "casvit_s": 34}[backbone]


def test_conv_feeding_two_consumers_is_not_folded():
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn, self.other = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + self.other(y)

    assert find_conv_bn_pairs(Fork(), torch.randn(1, 3, 8, 8)) == []


@pytest.fixture(scope="module")
def fp32_students(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp32")
    paths = {}
    for backbone in ("resnet18", "casvit_s"):
        torch.manual_seed(0)
        paths[backbone] = save_student(folder / f"{backbone}.pth", build_nanosam2(backbone, device="cpu"))
    return paths


@pytest.mark.parametrize("backbone", ["resnet18", pytest.param("casvit_s", marks=pytest.mark.slow)])
def test_qat_trains_and_exports_a_qdq_encoder(backbone, fp32_students, sa1b, tmp_path):
    out = tmp_path / "qat"
    assert run_cli(qat_main, ["--checkpoint", str(fp32_students[backbone]), "--images", str(sa1b),
                              "--output-dir", str(out), "--epochs", "3", *TINY]) == 0
    losses = np.array([float(r["loss"]) for r in read_log(out / "train_log.csv")])
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert losses[-4:].mean() < losses[:4].mean(), losses
    model = build_nanosam2(checkpoint=out / "best.pth", device="cpu")  # rebuilds the quantizers
    assert is_quantized(model.image_encoder)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.image_encoder.modules())
    assert batchnorms == {"resnet18": 0, "casvit_s": 34}[backbone]  # folded (the rest were frozen)

    from export.onnx import main as export_main

    onnx_dir = tmp_path / "onnx"
    # exit 0 means ONNX Runtime ran the Q/DQ encoder and matched the fake-quantized model
    assert run_cli(export_main, ["--backbone", backbone, "--checkpoint", str(out / "best.pth"),
                                 "--output-dir", str(onnx_dir), "--no-video"]) == 0
    graph = onnx.load(str(onnx_dir / "image_encoder.int8.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    convs = ops.count("Conv")
    assert ops.count("QuantizeLinear") >= convs and ops.count("DequantizeLinear") >= convs  # inputs + weights
    assert read_metadata(onnx_dir / "image_encoder.int8.onnx").precision == "int8-qat"
    assert read_metadata(onnx_dir / "mask_decoder.onnx").precision == "fp32"


@pytest.mark.slow
def test_qat_resume_restores_quantizers_bit_exactly(fp32_students, sa1b, tmp_path):
    args = ["--checkpoint", str(fp32_students["resnet18"]), "--images", str(sa1b), "--epochs", "2", *TINY]
    assert run_cli(qat_main, [*args, "--output-dir", str(tmp_path / "a")]) == 0
    assert run_cli(qat_main, [*args, "--output-dir", str(tmp_path / "b"), "--stop-after-steps", "3"]) == 0
    assert run_cli(qat_main, [*args, "--output-dir", str(tmp_path / "b"), "--resume"]) == 0
    full = [r["loss"] for r in read_log(tmp_path / "a" / "train_log.csv")]
    assert [r["loss"] for r in read_log(tmp_path / "b" / "train_log.csv")] == full


def test_qat_needs_the_fp32_checkpoint(sa1b, tmp_path, capsys):
    assert run_cli(qat_main, ["--checkpoint", str(tmp_path / "missing.pth"), "--images", str(sa1b),
                              "--output-dir", str(tmp_path), *TINY]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
