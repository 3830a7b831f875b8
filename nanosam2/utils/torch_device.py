"""``--device`` for every PyTorch entry point: one parser, one-line errors."""

from __future__ import annotations

from typing import Any

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.lazy_import import require


def resolve_device(spec: str | None) -> Any:
    """``None`` -> cuda when torch sees a GPU, else cpu; ``cpu``, ``cuda``, ``cuda:N`` checked
    against what this machine has (a wrong name or a missing GPU is a one-line error)."""
    torch = require("torch", "the PyTorch backend")
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise NanoSam2Error(f"unknown device {spec!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NanoSam2Error(f"device {spec!r} asked for, but torch sees no CUDA GPU "
                                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NanoSam2Error(f"device {spec!r}: torch sees only {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise NanoSam2Error(f"device {spec!r} is not supported; use cpu, cuda or cuda:N")
    return device
