"""Shared fixtures: tiny random-weight models and synthetic images (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Skip hardware tests with the reason printed (``-ra`` shows it in the summary)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    try:
        import tensorrt

        has_trt = getattr(tensorrt, "__file__", None) is not None  # tensorrt-stubs alone is a namespace package
    except ImportError:
        has_trt = False
    for item in items:  # markers, not keywords: a parameter id such as "tensorrt" is a keyword too
        if item.get_closest_marker("gpu") and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch"))
        if item.get_closest_marker("tensorrt") and not (has_trt and has_cuda):
            why = "TensorRT is not installed" if not has_trt else "no CUDA GPU"
            item.add_marker(pytest.mark.skip(reason=f"needs TensorRT and a GPU: {why}"))
    group_for_xdist(config, items)


def group_for_xdist(config, items) -> None:
    """Make ``xdist_group`` keep its tests on one worker under ``--dist loadgroup``.

    pytest-xdist 3.8 names a test's group by appending ``@group`` to ``item._nodeid``, which pytest 9.2 no
    longer reads (a node id is ``item._id``, a ``NodeId``): every group was spread over both workers, so each
    built the group's fixtures (or waited for the other's). The same suffix, where pytest reads it; a no-op
    once xdist's own suffix takes effect, or outside loadgroup."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # a pytest that still reads _nodeid: xdist's suffix works there
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


def with_trained_logit_scale(model, factor: float = 100.0):
    """Scale the last layer of each mask-hypernetwork MLP by ``factor`` (in place).

    Random init gives mask logits of std ~0.09, a hundredth of a trained SAM2's, so masks sit
    on the threshold everywhere and mask IoU would measure rounding noise. Masks are linear in
    that layer, so this gives trained-like logits (std ~9) without changing anything else.
    """
    import torch

    with torch.no_grad():
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(factor)
            mlp.layers[-1].bias.mul_(factor)
    return model


def with_present_objects(model, bias: float = 4.0):
    """Random heads score every object as absent about half the time, and an absent object's mask
    is all background: shift the object-score head's output so that tracked objects are present
    (masks to compare), while its input still moves the score from frame to frame."""
    import torch

    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(bias)
    return model


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def make_test_image(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with a bright rectangle and a disc on a noisy background."""
    gen = np.random.default_rng(seed)
    image = gen.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    image[height // 5 : height // 2, width // 6 : width // 2] = (220, 40, 40)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - 0.65 * height) ** 2 + (xx - 0.7 * width) ** 2 < (0.18 * min(height, width)) ** 2
    image[disc] = (40, 200, 90)
    return image


@pytest.fixture(scope="session")
def test_image() -> np.ndarray:
    return make_test_image()


@pytest.fixture(scope="session")
def resnet18_model():
    """The resnet18 student with fixed random weights (seed 0), eval mode, CPU."""
    import torch

    from nanosam2.build import build_nanosam2

    torch.manual_seed(0)
    return build_nanosam2("resnet18", device="cpu")


@pytest.fixture(scope="session")
def hiera_t_model():
    """SAM2.1 hiera_t with fixed random weights (seed 0), eval mode, CPU."""
    import torch

    from nanosam2.build import build_teacher

    torch.manual_seed(0)
    return build_teacher("hiera_t", None, device="cpu")


@pytest.fixture(scope="session")
def runtime_model():
    """resnet18 student, random weights (seed 0) with trained-like mask logits, for runtime tests."""
    import torch

    from nanosam2.build import build_nanosam2

    torch.manual_seed(0)
    return with_trained_logit_scale(build_nanosam2("resnet18", device="cpu"))


def made_once(tmp_path_factory, key: str, make) -> Path:
    """``make(folder)`` run once per test session and shared by the xdist workers, which would
    otherwise each repeat it (fixtures that tests of several groups use). Returns the folder."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "made-once"
    root.mkdir(exist_ok=True)
    folder, done = root / key, root / f"{key}.done"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits instead of repeating the work
        if not done.exists():
            folder.mkdir(exist_ok=True)
            make(folder)
            done.touch()
    return folder


def export_once(tmp_path_factory, key: str, export) -> dict:
    """``export(folder)`` (export_model's {graph: ExportedGraph}) made once per session: {graph: path}."""
    import json

    def make(folder: Path) -> None:
        graphs = export(folder)
        (folder / "graphs.json").write_text(json.dumps({name: str(graph.path) for name, graph in graphs.items()}))

    folder = made_once(tmp_path_factory, key, make)
    return {name: Path(path) for name, path in json.loads((folder / "graphs.json").read_text()).items()}


@pytest.fixture(scope="session")
def runtime_onnx(runtime_model, tmp_path_factory):
    """``runtime_model`` exported: {"image_encoder": path, "mask_decoder": path, "preprocess": ..., "postprocess": ...}."""
    from export.exporter import export_model

    return export_once(tmp_path_factory, "onnx-runtime", lambda folder: export_model(runtime_model, "resnet18", folder,
                                                                                      video=False))
