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


STAGES = ["nanosam2", "export", "calib", "engines", "trt_runtime", "benchmarks"]  # the pipeline, in order


def _imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_imports_only_go_down_the_pipeline():
    """Each stage imports only earlier stages (nanosam2/tools included: the seed-compatible
    scripts use library functions of nanosam2, never a later stage's command line)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for position, stage in enumerate(STAGES):
        later = set(STAGES[position + 1 :])
        for path in (root / stage).rglob("*.py"):
            offenders += [f"{path.relative_to(root)}: {name}" for name in _imports(path) if name.split(".")[0] in later]
    assert not offenders, offenders


def test_inference_and_export_never_load_training_code():
    """The runtime and the exporter import no training, QAT or data-loading module (lazily or not);
    export imports none at module load (a QAT checkpoint is recognised by its modules' class names)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    training = ("nanosam2.distill", "nanosam2.qat", "nanosam2.data", "nanosam2.train")
    offenders = []
    for folder in (root / "trt_runtime", root / "nanosam2" / "inference", root / "export"):
        for path in folder.rglob("*.py"):
            offenders += [f"{path.relative_to(root)}: {n}" for n in _imports(path) if n.startswith(training)]
    assert not offenders, offenders
    loaded = subprocess.run([sys.executable, "-c", "import sys, export.exporter, export.onnx, trt_runtime.cli; "
                             "print(sorted(m for m in sys.modules if m.startswith(('nanosam2.qat', 'nanosam2.distill', "
                             "'modelopt'))))"], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_records_sit_at_the_bottom_and_the_runtime_reaches_no_model_code():
    """Issue 33's rules of the layout, lazy imports included: hashes and the engine record live in
    ``nanosam2.records`` (engines and evaluation do not borrow them from the runtime); the runtime package
    (``nanosam2.inference``, the commands of ``trt_runtime`` but its PyTorch demo) imports no model code, the
    PyTorch backend resolves it by the table's import paths; QAT never imports the distillation CLI above it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    model_code = ("nanosam2.modeling", "nanosam2.build", "nanosam2.checkpoint", "nanosam2.seed_checkpoint")
    rules = [(("engines", "nanosam2/evaluation"), ("nanosam2.inference.runner",)),
             (("nanosam2/inference", "trt_runtime"), model_code),
             (("nanosam2/qat",), ("nanosam2.distill",))]
    offenders = []
    for folders, forbidden in rules:
        for folder in folders:
            for path in (root / folder).rglob("*.py"):
                if path.name == "demo.py":  # the PyTorch showcase at the top builds a model on purpose
                    continue
                offenders += [f"{path.relative_to(root)}: {n}" for n in _imports(path) if n.startswith(forbidden)]
    assert not offenders, offenders


def test_no_module_imports_itself_back():
    """No import cycle between the project's modules, lazy imports included (``export.exporter`` and
    ``export.verify`` imported each other until the examples moved to ``export.examples``)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = {}
    for stage in STAGES:
        for path in (root / stage).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {name: {m for m in (_resolve(i, modules) for i in _imports(path)) if m and m != name}
             for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def _resolve(imported, modules):
    """The project module an import names (``from a.b import c``: a.b.c when it is a module, else a.b)."""
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None
