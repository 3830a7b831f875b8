"""The Python that Triton's Python backend runs PyTriton's proxy in, and how numpy < 2 gets there.

PyTriton (``nvidia-pytriton`` 0.7.0) runs each model's proxy inside ``triton_python_backend_stub``, a
program built against numpy 1's C layout: with numpy 2 in its environment every output arrives empty
("output tensor shape does not match size of output"; triton-inference-server/server#8019), which is why the
wheel declares ``numpy<2``. nanosam2 keeps numpy 2 for itself and gives the stub its own environment instead:
a venv of the same interpreter, without pip, holding numpy 1.26 and reading every other package (pyzmq,
PyTriton itself) from this environment. The stub exchanges raw buffers with this process, never numpy
objects, so the two numpy versions never meet. Made once by ``scripts/setup_env.sh`` (``python -m
trt_runtime.serving.stub_env``) or by the first ``serve``; where numpy < 2 is installed already (a JetPack
venv), this environment is used as PyTriton intends.

The stub also loads ``libpython`` by name: an interpreter built with its own shared library (pyenv, conda)
must be found before the system's, or the stub mixes two patch releases of Python (``_thread.RLock`` has no
``_recursion_count``); :func:`server_environment` puts that library first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from nanosam2.errors import NanoSam2Error

STUB_NUMPY = "numpy==1.26.4"  # the last numpy 1 with wheels for CPython 3.10 to 3.12, x86-64 and aarch64
STUB_ENV_VARIABLE = "NANOSAM2_TRITON_STUB_ENV"


def numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def default_location() -> Path:
    return Path(os.environ.get(STUB_ENV_VARIABLE) or Path(sys.prefix) / "triton-stub-env")


def _site_packages(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _ready(env: Path) -> bool:
    return (env / "bin" / "python").exists() and (_site_packages(env) / "nanosam2-stub.pth").is_file()


def stub_environment(create: bool = True) -> Path:
    """The environment Triton's Python-backend stub runs in (made here if missing and ``create``)."""
    if numpy_major() < 2:
        return Path(sys.exec_prefix)
    env = default_location()
    if _ready(env):
        return env
    if not create:
        raise NanoSam2Error(f"no environment for Triton's Python backend at {env}: run python -m trt_runtime.serving.stub_env")
    base = Path(getattr(sys, "_base_executable", sys.executable))
    staging = env.with_name(env.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(staging)], check=True, capture_output=True)
        site = _site_packages(staging)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                               STUB_NUMPY], capture_output=True, text=True)
        if done.returncode:
            raise NanoSam2Error(f"could not install {STUB_NUMPY} for Triton's Python backend into {site}: "
                                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        here = sysconfig.get_paths()["purelib"]
        # after its own numpy: this environment's packages (pyzmq, pytriton, nanosam2's editable path)
        (site / "nanosam2-stub.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    except subprocess.CalledProcessError as exc:
        raise NanoSam2Error(f"could not create {staging}: {exc}") from None
    shutil.rmtree(env, ignore_errors=True)
    staging.rename(env)
    return env


def server_environment() -> dict[str, str]:
    """Variables ``tritonserver`` needs besides PyTriton's own: this interpreter's ``libpython`` found first."""
    libdir, library = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not library or not (Path(libdir) / library).exists() or libdir in ("/usr/lib", "/lib"):
        return {}
    current = os.environ.get("LD_LIBRARY_PATH", "")
    return {"LD_LIBRARY_PATH": ":".join(p for p in (libdir, current) if p)}


def main() -> int:
    env = stub_environment()
    print(f"Triton's Python backend runs in {env}" + (" (this environment: numpy < 2)" if env == Path(sys.exec_prefix)
                                                       else f" ({STUB_NUMPY}; everything else from this environment)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
