"""A server in a child process on 127.0.0.1 (free ports, bounded in requests and seconds): what the tests and the
serving benchmark start, stop and read (Triton's Prometheus metrics, the process's memory and CPU time). The child
runs the ``serve`` command's library function, not its command line."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 180.0  # tritonserver's start and the models' load on a loaded 2-core machine


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _child(model_dir: str, settings: Any, options: Any, log: str) -> None:
    """The server process: its output (tritonserver's too, which inherits it) into ``log``."""
    import logging

    from nanosam2.utils.cli import setup_logging
    from trt_runtime.serving.command import model_dir_paths, serve_export

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    setup_logging(False)
    logging.getLogger("trt_runtime").info("server process %d", os.getpid())
    sys.exit(serve_export(model_dir_paths(model_dir), options, settings))


class ServerProcess:
    """The ``serve`` command's work (``serve_export``) in a child process on loopback, until :meth:`stop`
    (SIGTERM); ``changes`` are ``ServeSettings`` fields (``max_batch=1``, ``session_timeout=4``, ...)."""

    def __init__(self, model_dir: str | os.PathLike[str], log: str | os.PathLike[str], options: Any = None,
                 timeout_s: float = START_TIMEOUT_S, **changes: Any) -> None:
        import dataclasses
        import multiprocessing

        from nanosam2.inference.factory import BackendOptions
        from trt_runtime.serving.server import ServeSettings

        self.http, self.grpc, self.metrics = free_ports(3)
        self.log = Path(log)
        self.log.write_text("")
        settings = dataclasses.replace(ServeSettings(host="127.0.0.1", http_port=self.http, grpc_port=self.grpc,
                                                     metrics_port=self.metrics, max_seconds=900, max_requests=100_000),
                                       **changes)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or sessions of this one
        self.process = context.Process(target=_child, args=(str(model_dir), settings, options or BackendOptions(),
                                                            str(self.log)), daemon=False)
        self.process.start()
        self.pid = self.process.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.is_alive():
                raise RuntimeError(f"the server exited ({self.process.exitcode}):\n{self.tail()}")
            if "serving nanosam2_image" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.5)
        self.process.kill()
        raise RuntimeError(f"the server did not start in {timeout_s:g} s:\n{self.tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc}"

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if not line.startswith(("I1", "W1"))][-lines:])

    def metric(self, name: str, model: str) -> float:
        """A Prometheus counter of Triton's for one model (e.g. nv_inference_count, nv_inference_exec_count)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") and f'model="{model}"' in line)

    def rss_bytes(self) -> int:
        """Resident memory of the serving process (the models, the sessions; tritonserver itself apart)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def gpu_bytes(self) -> int | None:
        """GPU memory the serving process holds (nvidia-smi's per-process figure), None without a GPU."""
        import shutil
        import subprocess

        if shutil.which("nvidia-smi") is None:
            return None
        done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=30)
        rows = [line.split(",") for line in done.stdout.splitlines() if "," in line]
        used = [int(mib) for pid, mib in rows if pid.strip().isdigit() and int(pid) == self.pid]
        return used[0] << 20 if used else (0 if done.returncode == 0 else None)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then the exit code (SIGKILL after ``timeout_s``)."""
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGTERM)
            self.process.join(timeout_s)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        return int(self.process.exitcode or 0)
