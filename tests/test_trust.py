"""No lost work, no answer that belongs to other inputs, no silent wrong answer (issue 14).

Each test fails on the code before the change: earlier outputs overwritten, half-published
results, mismatched graphs accepted, 16-bit images whitened, truncated archives kept.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanosam2 import contract as C
from nanosam2.contract import GraphContract
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_output_dir, check_output_file, staged
from nanosam2.utils.cli import run_cli

pytestmark = pytest.mark.xdist_group("runtime_onnx")
SAMPLE = "nanosam2/assets/grace_hopper.jpg"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- publishing outputs -------------------------------------------------------------------------
def test_staged_publishes_all_or_nothing(tmp_path):
    earlier = tmp_path / "a.txt"
    earlier.write_text("earlier work")
    with pytest.raises(RuntimeError):
        with staged([earlier, tmp_path / "new" / "deep" / "b.txt"]) as (a, b):
            a.write_text("new a")
            b.write_text("new b")
            raise RuntimeError("crash before publishing")
    assert earlier.read_text() == "earlier work"
    assert not (tmp_path / "new").exists()  # folders it created are gone again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary files
    with staged([earlier, tmp_path / "new" / "b.txt"]) as (a, b):
        a.write_text("new a")
        b.write_text("new b")
    assert earlier.read_text() == "new a" and (tmp_path / "new" / "b.txt").read_text() == "new b"


def test_output_checks_create_nothing_and_refuse_inputs(tmp_path):
    source = tmp_path / "graph.onnx"
    source.write_text("x")
    with pytest.raises(NanoSam2Error, match="also an input"):
        check_output_file(tmp_path / "." / "graph.onnx", inputs=[source])
    with pytest.raises(NanoSam2Error, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(NanoSam2Error, match="not writable"):
        check_output_file(source / "sub" / "out.json")
    check_output_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_interrupted_export_keeps_the_earlier_export(runtime_onnx, tmp_path, monkeypatch, runtime_model):
    import shutil

    import export.exporter as exporter

    for path in runtime_onnx.values():
        shutil.copy(path, tmp_path / path.name)
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    real = exporter.export_graph

    def crash_on_decoder(graph_name, *args, **kwargs):
        if graph_name == C.DECODER:
            raise KeyboardInterrupt
        return real(graph_name, *args, **kwargs)

    monkeypatch.setattr(exporter, "export_graph", crash_on_decoder)
    with pytest.raises(KeyboardInterrupt):
        exporter.export_model(runtime_model, "resnet18", tmp_path, do_simplify=False, verify=False)
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before  # no new encoder beside the old decoder


# -- results belong to their inputs --------------------------------------------------------------
def test_graphs_of_one_export_carry_one_weights_hash(runtime_onnx, runtime_model):
    from nanosam2.utils.onnx_passes import read_metadata
    from nanosam2.checkpoint import state_digest

    encoder, decoder = (read_metadata(runtime_onnx[g]) for g in (C.ENCODER, C.DECODER))
    assert encoder.weights_sha256 == decoder.weights_sha256 == state_digest(runtime_model)
    assert encoder.contract_version == C.CONTRACT_VERSION == 4


def test_check_pair_refuses_graphs_of_different_models():
    enc = GraphContract.for_graph(C.ENCODER, "resnet18", weights_sha256="a" * 64)
    dec = GraphContract.for_graph(C.DECODER, "resnet18", weights_sha256="a" * 64)
    C.check_pair(enc, dec, "e", "d")
    with pytest.raises(NanoSam2Error, match="different weights"):
        C.check_pair(enc, GraphContract.for_graph(C.DECODER, "resnet18", weights_sha256="b" * 64), "e", "d")
    with pytest.raises(NanoSam2Error, match="casvit_s"):
        C.check_pair(enc, GraphContract.for_graph(C.DECODER, "casvit_s"), "e", "d")
    with pytest.raises(NanoSam2Error, match="image sizes"):
        C.check_pair(enc, GraphContract.for_graph(C.DECODER, "resnet18", image_size=512), "e", "d")
    with pytest.raises(NanoSam2Error, match="expected the mask_decoder"):
        C.check_pair(enc, enc, "e", "e")
    # contract v1 files (no hash) and engines without a sidecar ("unknown") still pair
    C.check_pair(enc, GraphContract.for_graph(C.DECODER, "resnet18"), "e", "d")
    C.check_pair(GraphContract.for_graph(C.ENCODER, "unknown"), dec, "e", "d")


def test_newer_contract_is_refused_with_the_fix():
    text = json.dumps({**json.loads(GraphContract.for_graph(C.ENCODER, "x").to_json()), "contract_version": 9,
                       "field_from_the_future": 1})
    with pytest.raises(NanoSam2Error, match="newer nanosam2"):
        GraphContract.from_json(text)


def test_coco_results_are_resumed_only_by_the_model_that_wrote_them(runtime_onnx, tmp_path):
    from nanosam2.evaluation.coco_eval import RUN_KEY, evaluate_coco
    from nanosam2.inference.factory import load_predictor

    from .coco_synthetic import make_coco

    images, ann_file = make_coco(tmp_path / "coco", num_images=2)
    out = tmp_path / "results.json"
    with load_predictor(runtime_onnx[C.ENCODER], runtime_onnx[C.DECODER]) as predictor:
        records, _ = evaluate_coco(predictor, images, ann_file, out, limit=1, progress=False)
        assert len({r[RUN_KEY] for r in records}) == 1
        records, stats = evaluate_coco(predictor, images, ann_file, out, progress=False)  # resumes: one image to go
        assert stats.images == 1 and len(records) == 6
        seed_format = [{k: v for k, v in r.items() if k != RUN_KEY} for r in records]  # no record of its model
        out.write_text(json.dumps(seed_format))
        with pytest.raises(NanoSam2Error, match="another model"):
            evaluate_coco(predictor, images, ann_file, out, progress=False)
        with pytest.raises(NanoSam2Error, match="another model"):  # --no-resume replaces only eval-coco's results
            evaluate_coco(predictor, images, ann_file, out, resume=False, progress=False)
        out.write_text("{not json")
        for resume in (True, False):
            with pytest.raises(NanoSam2Error, match="not an eval-coco results file"):
                evaluate_coco(predictor, images, ann_file, out, resume=resume, progress=False)
        assert out.read_text() == "{not json"  # refused, not overwritten
        out.write_text(json.dumps([{**r, RUN_KEY: "another-run"} for r in records]))
        records, _ = evaluate_coco(predictor, images, ann_file, out, resume=False, progress=False)
        assert len(records) == 6 and {r[RUN_KEY] for r in records} != {"another-run"}


def test_predict_publishes_together_and_drops_its_own_stale_masks(runtime_onnx, tmp_path, monkeypatch):
    from trt_runtime import cli
    import nanosam2.viz as viz

    base = ["predict", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
            "--image", SAMPLE, "--output", str(tmp_path)]
    assert run_cli(cli.main, [*base, "--box", "120,60,400,420", "--box", "10,300,300,590"]) == 0
    assert sorted(p.name for p in tmp_path.glob("mask_*.png")) == ["mask_0_0.png", "mask_1_0.png"]
    record = json.loads((tmp_path / "predict.json").read_text())
    assert record["model"][C.DECODER]["weights_sha256"] and len(record["boxes"]) == 2
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert run_cli(cli.main, [*base, "--point", "250,200"]) == 0
    assert sorted(p.name for p in tmp_path.glob("mask_*.png")) == ["mask_0_0.png"]  # mask_1_0 was of other prompts
    assert keep.read_text() == "mine"
    before = {p.name: digest(p) for p in tmp_path.iterdir()}

    def broken_overlay(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(viz, "overlay", broken_overlay)
    with pytest.raises(KeyboardInterrupt):
        cli.main([*base, "--box", "1,1,300,300", "--box", "5,5,100,100", "--box", "50,50,200,200"])
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before  # no masks without their overlay


# -- runner interface -------------------------------------------------------------------------------
def test_infer_validates_the_feed_once_for_every_backend(runtime_onnx):
    from nanosam2 import transforms as T
    from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(runtime_onnx[C.DECODER]) as runner:
        features = {C.IMAGE_EMBED: np.zeros((1, 256, 64, 64), np.float32),
                    C.HIGH_RES_FEATS_0: np.zeros((1, 32, 256, 256), np.float32),
                    C.HIGH_RES_FEATS_1: np.zeros((1, 64, 128, 128), np.float32)}
        prompts = C.prompt_feed(T.build_prompts((100, 100), boxes=np.array([[1, 1, 50, 50], [2, 2, 60, 60]], np.float32)))
        out = runner.infer({**features, **prompts})
        assert out[C.LOW_RES_MASKS].shape == (2, 4, 256, 256)
        with pytest.raises(NanoSam2Error, match="unknown inputs"):
            runner.infer({**features, **prompts, "extra": np.zeros(1)})
        with pytest.raises(NanoSam2Error, match="missing inputs"):
            runner.infer(features)
        with pytest.raises(NanoSam2Error, match="rank 3"):
            runner.infer({**features, **prompts, C.POINT_COORDS: prompts[C.POINT_COORDS][0]})
        with pytest.raises(NanoSam2Error, match="number of prompts"):
            runner.infer({**features, **prompts, C.HAS_MASK_INPUT: np.zeros(3, np.float32)})
        with pytest.raises(NanoSam2Error, match="not numbers"):
            runner.infer({**features, **prompts, C.HAS_MASK_INPUT: np.array(["a", "b"])})


def test_runner_layer_has_no_cycle():
    """Concrete runners import the interface; the interface and the factory's module graph never
    come back to them (no runners/base.py <-> runner module loop)."""
    import ast

    root = Path(__file__).resolve().parents[1]
    interface = ast.parse((root / "nanosam2/inference/runner.py").read_text())
    imported = {n.module for n in ast.walk(interface) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("trt_runtime") for m in imported)
    assert not (root / "trt_runtime/runners").exists()  # one runtime package: nanosam2.inference
    for runner in ("onnxruntime_runner", "tensorrt_runner"):
        tree = ast.parse((root / f"nanosam2/inference/{runner}.py").read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "nanosam2.inference.runner" in modules and not any(m and "factory" in m for m in modules)


# -- degenerate input ---------------------------------------------------------------------------------
def test_16_bit_png_is_scaled_not_whitened(tmp_path):
    from nanosam2.images import read_rgb

    grey = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = read_rgb(tmp_path / "g16.png")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    expected = np.round(grey / 257.0).astype(np.uint8)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1 and (rgb[..., 0] == rgb[..., 2]).all()
    assert 120 < rgb.mean() < 135  # Pillow's convert("RGB") gave 254.5: a white image
    Image.fromarray(np.random.default_rng(0).random((8, 8)).astype(np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(NanoSam2Error, match="no stated range"):
        read_rgb(tmp_path / "f.tif")


def test_truncated_download_without_content_length_is_not_kept(tmp_path):
    import io
    import tarfile

    from nanosam2.data.download_sa1 import archive_is_complete

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for index in range(3):
            data = bytes([index]) * 5000
            info = tarfile.TarInfo(f"sa_{index}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole = buffer.getvalue()
    path = tmp_path / "chunk.tar.partial"
    for cut, complete in ((len(whole), True), (len(whole) - 1024, True), (6000, False), (700, False), (100, False)):
        path.write_bytes(whole[:cut])
        assert archive_is_complete(path, "chunk.tar") is complete, cut


def test_a_missing_optional_module_is_one_line_with_the_extra(tmp_path):
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'onnx': raise ImportError(\"No module named 'onnx'\", name='onnx')\n"
            "sys.meta_path.insert(0, Block())\nfrom nanosam2.utils.cli import run_cli\nfrom engines.build_engine import main\n"
            f"raise SystemExit(run_cli(main, ['--onnx={SAMPLE}', '--saveEngine={tmp_path / 'x.engine'}']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == "error: onnx is not installed: pip install 'nanosam2[export]'"


def test_benchmark_reference_is_measured_not_nominal(monkeypatch):
    from benchmarks import machine

    monkeypatch.setattr(machine, "fp32_peak_gflops", lambda cores=None: 332.0)  # Zen 4 AVX-512 nominal
    monkeypatch.setattr(machine, "gemm_gflops", lambda: 180.0)
    info = machine.machine_info()
    assert info["fp32_peak_gflops"] == 180.0 and info["nominal_fp32_peak_gflops"] == 332.0
