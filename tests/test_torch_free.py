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
        "nanosam2.utils.cli\n"
        "print('ok', nanosam2.__version__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_torch_entry_points_name_the_extra():
    result = _run("import nanosam2\nnanosam2.build_nanosam2")
    assert result.returncode != 0
    assert "pip install 'nanosam2[train]'" in result.stderr
