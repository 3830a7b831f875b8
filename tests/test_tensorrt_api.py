"""Keep the fake TensorRT honest: every name it offers, and every TensorRT name our code spells, exists in
the real API — TensorRT-RTX's real bindings (TensorRT 11's API) and, for what only TensorRT 10 has
(the implicit INT8 calibrator, the FP16/INT8 builder flags), NVIDIA's ``tensorrt-stubs`` for 10.x.

A call that exists only in the fake fails here; so does a fake member our code could lean on that
TensorRT lacks. The other direction (TensorRT accepts our calls) is the real builds of
``test_tensorrt_rtx.py``.
"""

from __future__ import annotations

import ast
import enum
import inspect
import os
from importlib import metadata
from pathlib import Path

import pytest

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.tensorrt_flavour import RTX, import_tensorrt

from . import fake_tensorrt as fake_module
from .fake_tensorrt import FakeCudart, FakeTensorRT, make_builder_module
from .trt_stubs import _loosen

ROOT = Path(__file__).resolve().parents[1]
# the modules that call TensorRT, and the names they bind the module to
TRT_MODULES = ["engines/builder.py", "engines/build_engine.py", "nanosam2/inference/tensorrt_runner.py",
               "nanosam2/inference/engine_stream.py",
               "calib/int8_calibrator.py", "nanosam2/utils/tensorrt_flavour.py"]
TRT_ROOTS = {"trt", "self.trt"}


@pytest.fixture(scope="module")
def rtx_module():
    try:
        return import_tensorrt(RTX).module
    except NanoSam2Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must check the fake against the real bindings: {exc}")
        pytest.skip(str(exc))


class StubApi:
    """TensorRT 10's API as ``tensorrt-stubs`` declares it: {class: members}, nested classes as ``A.B``."""

    def __init__(self) -> None:
        files = [f for f in metadata.files("tensorrt-stubs") or [] if str(f).endswith("tensorrt.pyi")]
        source, _ = _loosen(Path(str(files[0].locate())).read_text())  # a few stub signatures do not parse as is
        tree = ast.parse(source)
        self.classes: dict[str, set[str]] = {}
        self.module: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self._add(node, node.name)
            self.module |= _defined_names(node)

    def _add(self, node: ast.ClassDef, name: str) -> None:
        members: set[str] = set()
        for item in node.body:
            members |= _defined_names(item)
            if isinstance(item, ast.ClassDef):
                self._add(item, f"{name}.{item.name}")
        self.classes[name] = members

    def has(self, owner: str | None, name: str) -> bool:
        return name in (self.module if owner is None else self.classes.get(owner, set()))


def _defined_names(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return set()


class RealApi:
    """The real bindings' names, the same questions as :class:`StubApi`."""

    def __init__(self, module) -> None:
        self.module = module

    def _owner(self, owner: str | None):
        target = self.module
        for part in (owner.split(".") if owner else []):
            target = getattr(target, part, None)
        return target

    def has(self, owner: str | None, name: str) -> bool:
        target = self._owner(owner)
        return target is not None and hasattr(target, name)


@pytest.fixture(scope="module")
def apis(rtx_module):
    """Which real API each fake stands in for: TensorRT 10 -> the stubs; 11 and RTX -> the RTX bindings."""
    return {"10": StubApi(), "11": RealApi(rtx_module), "rtx": RealApi(rtx_module)}


def _fakes() -> dict[str, FakeTensorRT]:
    fakes = {"10": FakeTensorRT(FakeCudart(), "10.3.0"), "11": FakeTensorRT(FakeCudart(), "11.4.1"),
             "rtx": FakeTensorRT(FakeCudart(), "1.7.1.116", flavour="rtx")}
    for trt in fakes.values():
        make_builder_module(trt)
    return fakes


def _public(names) -> list[str]:
    return sorted(n for n in names if not n.startswith("_"))


def _class_members(cls: type) -> list[str]:
    """What a fake class offers: its own attributes and methods (not object's or enum machinery)."""
    if cls.__module__ == "builtins":  # a plain stand-in (Dims = tuple) offers no names of its own
        return []
    base = set(dir(object)).union(*(dir(b) for b in cls.__mro__[1:] if b.__module__ in ("builtins", "enum")))
    members = set(dir(cls)) - base
    if issubclass(cls, enum.Enum):
        members |= set(cls.__members__)
    return _public(members)


def _fake_classes(trt: FakeTensorRT) -> dict[str, type]:
    """The classes a fake hands out, by their TensorRT name: module attributes and what they return."""
    classes = {name: value for name, value in vars(trt).items() if isinstance(value, type)}
    classes.update({name: getattr(type(trt), name) for name in dir(type(trt)) if isinstance(getattr(type(trt), name), type)
                    and not name.startswith("_")})
    rtx = trt._flavour == "rtx"
    major = 11 if rtx else int(trt.__version__.split(".")[0])
    returned = [fake_module.ICudaEngineRTX if rtx else fake_module.ICudaEngine, fake_module.IExecutionContext,
                fake_module.IOptimizationProfile, fake_module.ITimingCache, fake_module.ParserError,
                fake_module.INetworkDefinition, fake_module.IBuilderConfigRTX if rtx else
                fake_module.IBuilderConfig10 if major < 11 else fake_module.IBuilderConfig]
    if rtx:
        returned += [fake_module.IRuntimeConfig, fake_module.IRuntimeCache]
    classes.update({cls.__name__.replace("RTX", ""): cls for cls in returned})
    classes["ILogger.Severity"] = fake_module.ILogger.Severity
    return classes


@pytest.mark.parametrize("generation", ["10", "11", "rtx"])
def test_the_fake_offers_only_real_names(apis, generation):
    trt = _fakes()[generation]
    api = apis[generation]
    missing = [f"tensorrt.{name}" for name in _public(vars(trt)) + _public(dir(type(trt)))
               if name not in ("__version__", "__file__") and not api.has(None, name)]
    for owner, cls in _fake_classes(trt).items():
        if not api.has(None, owner.split(".")[0]):
            missing.append(f"tensorrt.{owner}")
            continue
        missing += [f"{owner}.{m}" for m in _class_members(cls) if not api.has(owner, m)]
    # instance attributes a test could read as if they were TensorRT's
    engine_data = fake_module.engine_bytes(Path(__file__), {})
    missing += [f"IBuilderConfig.{m}" for m in _public(vars(trt.Builder(None).create_builder_config()))
                if not api.has("IBuilderConfig", m)]
    assert engine_data.startswith(fake_module.MAGIC)
    assert not missing, f"the fake offers names the real TensorRT ({generation}) lacks: {', '.join(sorted(set(missing)))}"


def _spelled_names(path: Path) -> set[tuple[str | None, str]]:
    """``trt.X`` and ``trt.X.Y`` chains in one source file -> {(None, X), (X, Y)}."""
    found: set[tuple[str | None, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        chain: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            chain.insert(0, current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            continue
        root = current.id
        if chain[:1] == ["trt"] and root == "self":
            root, chain = "self.trt", chain[1:]
        if root not in TRT_ROOTS or not chain:
            continue
        found.add((None, chain[0]))
        if len(chain) > 1 and chain[1][0].isupper():  # trt.Class.MEMBER / trt.Enum.MEMBER
            found.add((chain[0], chain[1]))
    return found


def test_our_code_spells_only_real_names(apis):
    """Every ``trt.X`` / ``trt.X.Y`` in the modules that call TensorRT exists in TensorRT-RTX's bindings or,
    for TensorRT-10-only names, in the 10.x stubs."""
    used: set[tuple[str | None, str]] = set()
    for name in TRT_MODULES:
        used |= _spelled_names(ROOT / name)
    assert (None, "Builder") in used and ("ComputeCapability", "__members__") not in used
    unknown = sorted(f"{owner + '.' if owner else ''}{name}" for owner, name in used
                     if not (apis["rtx"].has(owner, name) or apis["10"].has(owner, name)))
    assert not unknown, f"names TensorRT does not have: {', '.join(unknown)}"


def test_methods_our_runner_calls_exist_with_these_parameters(rtx_module):
    """The runner's calls that only a GPU reaches (so no real run in CI covers them), checked on the real
    bindings by name and by the parameters we pass."""
    calls = {
        "Runtime": ["deserialize_cuda_engine", "get_engine_validity"],
        "ICudaEngine": ["create_execution_context", "create_runtime_config", "get_tensor_name", "get_tensor_mode",
                        "get_tensor_dtype", "get_tensor_profile_shape", "num_io_tensors"],
        "IExecutionContext": ["set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3"],
        "IRuntimeConfig": ["create_runtime_cache", "set_runtime_cache"],
        "IRuntimeCache": ["serialize", "deserialize"],
    }
    missing = [f"{cls}.{name}" for cls, names in calls.items() for name in names
               if not hasattr(getattr(rtx_module, cls), name)]
    assert not missing
    doc = inspect.getdoc(rtx_module.ICudaEngine.create_execution_context) or ""
    assert "runtime_config" in doc  # the overload the runtime cache needs
    assert "tuple" in (inspect.getdoc(rtx_module.Runtime.get_engine_validity) or "")


def test_the_fake_cuda_runtime_offers_only_real_names():
    """FakeCudart stands in for cuda-python's runtime module: each call and enum member it offers exists
    there, with the same values (docs: nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html)."""
    runtime = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed")
    for name, value in vars(FakeCudart).items():
        if name.startswith("cuda") and callable(value) and not isinstance(value, type):
            assert callable(getattr(runtime, name, None)), f"cuda-python has no {name}"
        if isinstance(value, type) and issubclass(value, enum.Enum):
            real = getattr(runtime, name)
            for member in value:
                assert int(getattr(real, member.name)) == int(member), f"{name}.{member.name}"
