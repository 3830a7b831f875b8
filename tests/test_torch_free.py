"""The runtime's torch-free parts import with numpy and pillow alone (as on a Jetson)."""

import subprocess
import sys

BLOCK_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'torchvision', 'sam2', 'onnxruntime', 'tensorrt', 'hydra', 'onnx'}:
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_HEAVY + code], capture_output=True, text=True)


def test_torch_free_modules_import_without_torch():
    result = _run(
        "import nanosam2, nanosam2.prompts, nanosam2.viz, nanosam2.errors, nanosam2.images, nanosam2.transforms, "
        "nanosam2.contract, nanosam2.evaluation.coco_metrics, nanosam2.evaluation.coco_eval, nanosam2.utils.atomic, "
        "nanosam2.utils.cli, nanosam2.inference.predictor, nanosam2.inference.runner, nanosam2.data.sa1b_files, "
        "nanosam2.data.download_sa1\n"
        "print('ok', nanosam2.__version__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_torch_entry_points_name_the_extra():
    result = _run("import nanosam2\nnanosam2.build_nanosam2")
    assert result.returncode != 0
    assert "pip install 'nanosam2[train]'" in result.stderr


def test_imports_only_go_down_the_pipeline():
    """nanosam2 never imports a later stage (export, calib, engines, trt_runtime, benchmarks);
    the seed-compatible shims in nanosam2/tools are entry points and may call the runtime CLI."""
    import ast
    from pathlib import Path

    later = {"export", "calib", "engines", "trt_runtime", "benchmarks"}
    root = Path(__file__).resolve().parents[1] / "nanosam2"
    offenders = []
    for path in root.rglob("*.py"):
        if "tools" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in later]
    assert not offenders, offenders
