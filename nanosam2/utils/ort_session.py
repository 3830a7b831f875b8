"""The one place an ONNX Runtime session is created (runtime runner, export check, calibration).

Docs: onnxruntime.ai/docs/api/python/api_summary.html (``InferenceSession``, ``SessionOptions``,
``get_available_providers``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.lazy_import import require

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_session(path: str | os.PathLike[str], provider: str = "cpu", threads: int | None = None,
                 purpose: str = "ONNX Runtime") -> Any:
    """An ``InferenceSession`` on ``provider`` (cpu, cuda or tensorrt) with quiet logging and full
    graph optimisation; a missing provider or an unloadable file is a one-line error."""
    ort = require("onnxruntime", purpose)
    if provider not in PROVIDERS:
        raise NanoSam2Error(f"unknown ONNX Runtime provider {provider!r}; choose from {', '.join(PROVIDERS)}")
    available: Sequence[str] = ort.get_available_providers()
    if PROVIDERS[provider][0] not in available:
        raise NanoSam2Error(f"onnxruntime has no {PROVIDERS[provider][0]} (available: {', '.join(available)}); "
                            "install onnxruntime-gpu for cuda/tensorrt")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No spin-waiting after a run: a predictor alternates sessions (encoder, decoder, numpy work), and
    # a pool spinning for its next run steals the cores they need (measured on 2 cores: the decoder
    # after the encoder 77-93 ms spinning, 43-45 ms not; whole predict 10 % faster).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=PROVIDERS[provider])
    except Exception as exc:
        raise NanoSam2Error(f"{path} is not a loadable ONNX model: {first_line(exc)}") from None
    running = session.get_providers()
    if not running or running[0] != PROVIDERS[provider][0]:  # its CUDA/TensorRT libraries did not load: a fallback
        raise NanoSam2Error(f"{path}: ONNX Runtime runs it on {running[0] if running else 'nothing'}, not on the "
                            f"{PROVIDERS[provider][0]} asked for (its libraries did not load; ONNX Runtime's log says "
                            "why); fix that, or pass --provider cpu")
    return session
