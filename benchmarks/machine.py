"""Facts about the machine a benchmark ran on, and its theoretical FP32 peak (torch-free)."""

from __future__ import annotations

import os
import platform
import re
import socket
from datetime import datetime, timezone


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_ghz() -> float | None:
    """Nominal clock from the model name (``@ 2.50GHz``), else the current MHz of core 0."""
    match = re.search(r"@\s*([\d.]+)\s*GHz", cpu_model())
    if match:
        return float(match.group(1))
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def cpu_flags() -> set[str]:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fp32_peak_gflops(cores: int | None = None) -> float | None:
    """NOMINAL, not measured: cores x FP32 lanes (8 with AVX2, 16 with AVX-512) x 2 FMA units x 2
    flops x GHz. Wrong on CPUs that run AVX-512 on 256-bit units (Zen 4: half of this) or whose
    virtual machine reports a base clock below the real one; benchmarks compare with
    :func:`gemm_gflops` instead and print this only as a label."""
    ghz = cpu_ghz()
    if ghz is None:
        return None
    lanes = 16 if "avx512f" in cpu_flags() else 8 if "avx2" in cpu_flags() else 4
    return (cores or os.cpu_count() or 1) * lanes * 2 * 2 * ghz


def _best_seconds(run, runs: int) -> float:
    import time

    run()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(size: int = 2048, runs: int = 5) -> float:
    """FP32 GEMM rate: the best of numpy's BLAS and ONNX Runtime's MatMul (MLAS) on this machine.

    BLAS builds differ in which vector units they use (one measured here ran numpy at 101 and
    torch at 137 GFLOP/s while ONNX Runtime's kernels reached 196), so the fastest measured GEMM is
    the reference. A virtual machine may report a base clock below the one its cores run at, and
    AVX-512 may run on 256-bit units, which make the nominal peak wrong either way.
    """
    import numpy as np

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    b = np.ascontiguousarray(a.T)
    seconds = [_best_seconds(lambda: a @ b, runs)]
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        seconds.append(_best_seconds(lambda: session.run(None, {"a": a, "b": b}), runs))
    except ImportError:
        pass
    return 2 * size**3 / min(seconds) / 1e9


def machine_info() -> dict:
    nominal = fp32_peak_gflops()
    measured = gemm_gflops()
    return {
        "host": socket.gethostname(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "cpu_ghz": cpu_ghz(),
        "nominal_fp32_peak_gflops": nominal, "gemm_fp32_gflops": round(measured, 1),
        "fp32_peak_gflops": round(measured, 1),  # the reference: measured here, in this run
        "python": platform.python_version(),
    }


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc; elsewhere the peak so far from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory of this process while a block runs, sampled by a thread every
    ``interval`` seconds: ``peak_mb`` and ``added_mb`` (peak minus the resident memory at entry)."""

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> "PeakMemory":
        self.start = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def added_mb(self) -> float:
        return (self.peak - self.start) / 2**20
