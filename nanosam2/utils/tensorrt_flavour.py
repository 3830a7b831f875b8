"""Which TensorRT: NVIDIA's TensorRT (10.x, 11.x) or TensorRT for RTX, found and named in one place.

TensorRT-RTX (``pip install 'nanosam2[rtx]'``: the ``tensorrt-rtx-cu13-libs`` and
``tensorrt-rtx-cu13-bindings`` wheels) has TensorRT 11's Python API under another module name
(``tensorrt_rtx``, or ``tensorrt_rtx_bindings`` for the standalone bindings wheel) and its own
version numbers (1.x). Its builder needs no GPU: engines are compiled ahead of time on the CPU for a
set of compute capabilities and finished just in time on the GPU that runs them
(docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/cpu-engines.html).

The flavour is chosen by ``--trt-flavour`` where a command has it, else ``NANOSAM2_TRT_FLAVOUR``,
else the first that imports: ``tensorrt``, then TensorRT-RTX.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nanosam2.errors import MissingDependencyError, NanoSam2Error

TENSORRT, RTX = "tensorrt", "rtx"
FLAVOURS = (TENSORRT, RTX)
ENV_VAR = "NANOSAM2_TRT_FLAVOUR"
# flavour -> the modules that provide it, in the order tried
MODULES = {TENSORRT: ("tensorrt",), RTX: ("tensorrt_rtx", "tensorrt_rtx_bindings")}
EXTRAS = {TENSORRT: "trt", RTX: "rtx"}
LABELS = {TENSORRT: "TensorRT", RTX: "TensorRT-RTX"}
# TensorRT-RTX's API is TensorRT 11's (strongly typed networks only, no precision flags, no calibrator)
RTX_API_MAJOR = 11


@dataclass(frozen=True)
class TensorRT:
    """An imported TensorRT: the module, its flavour and version."""

    module: ModuleType
    flavour: str

    @property
    def version(self) -> str:
        return str(self.module.__version__)

    @property
    def api_major(self) -> int:
        """The TensorRT API generation: 10 or 11 (TensorRT-RTX speaks 11)."""
        return api_major(self.flavour, self.version)

    @property
    def label(self) -> str:
        return f"{LABELS[self.flavour]} {self.version}"


def api_major(flavour: str, version: str) -> int:
    if flavour == RTX:
        return RTX_API_MAJOR
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise NanoSam2Error(f"cannot read the TensorRT version {version!r}") from None


def check_flavour(flavour: str | None) -> str | None:
    """``flavour`` (or the environment's) validated; None means "whichever is installed"."""
    chosen = flavour or os.environ.get(ENV_VAR) or None
    if chosen is not None and chosen not in FLAVOURS:
        source = "--trt-flavour" if flavour else ENV_VAR
        raise NanoSam2Error(f"{source}: unknown TensorRT flavour {chosen!r}; choose {' or '.join(FLAVOURS)}")
    return chosen


def _import(flavour: str) -> ModuleType | None:
    for name in MODULES[flavour]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "__file__", None) is not None:  # tensorrt-stubs alone is a namespace package
            return module
    return None


def import_tensorrt(flavour: str | None = None, purpose: str = "") -> TensorRT:
    """The TensorRT to use, or :class:`MissingDependencyError` naming the extra to install."""
    chosen = check_flavour(flavour)
    for candidate in (chosen,) if chosen else FLAVOURS:
        module = _import(candidate)
        if module is not None:
            return TensorRT(module, candidate)
    why = f" (needed for {purpose})" if purpose else ""
    if chosen:
        raise MissingDependencyError(f"{LABELS[chosen]} is not installed{why}: pip install 'nanosam2[{EXTRAS[chosen]}]'")
    raise MissingDependencyError(f"tensorrt is not installed{why}: pip install 'nanosam2[trt]' (TensorRT 10/11, or "
                                 "JetPack's) or pip install 'nanosam2[rtx]' (TensorRT-RTX, desktop RTX GPUs)")


def installed_flavours() -> list[str]:
    return [flavour for flavour in FLAVOURS if _import(flavour) is not None]


def make_logger(trt: ModuleType, verbose: bool = False) -> Any:
    """TensorRT's own logger (``trt.Logger``, C++: it prints to stderr). Not a Python ``ILogger`` subclass:
    TensorRT calls its logger from its own threads too, and a Python one must take the GIL there, which
    deadlocked an engine build in this test suite. Errors we report ourselves (the parser's) are read from
    the API (``ParserError``), with the logger quietened meanwhile (:func:`quiet`)."""
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)


class quiet:
    """``with quiet(trt, logger):`` only internal errors are printed, e.g. while parsing, whose errors the
    caller reports itself in one line."""

    def __init__(self, trt: ModuleType, logger: Any) -> None:
        self.trt, self.logger = trt, logger

    def __enter__(self) -> None:
        self.saved = self.logger.min_severity
        self.logger.min_severity = self.trt.Logger.INTERNAL_ERROR

    def __exit__(self, *exc: object) -> None:
        self.logger.min_severity = self.saved
