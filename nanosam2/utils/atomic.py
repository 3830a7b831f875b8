"""Write outputs under a temporary name and rename on success.

A crash, a Ctrl-C or a failed verification then never leaves a half-written file that
looks complete (an .onnx, an engine, a checkpoint, a results file).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the destination folder so the final rename is atomic on
    POSIX file systems. On any exception the temporary file is removed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result should look like any other file
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and make sure files can be written there."""
    from nanosam2.errors import NanoSam2Error

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise NanoSam2Error(f"output directory {out} is not writable: {exc.strerror or exc}") from None
    return out
