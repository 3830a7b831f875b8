"""Outputs are checked before the work, written under temporary names, and published when complete.

- :func:`check_output_file` / :func:`check_output_dir` validate a destination up front without
  creating anything: not a folder where a file goes, writable, and never one of the command's
  own inputs (a user's earlier work is not overwritten by accident).
- :func:`atomic_path` writes one file under a temporary name and renames it on success.
- :func:`staged` does the same for files that belong together (an export's two graphs, masks and
  their overlay, data and its manifest): all are written, then all are renamed, so a crash or a
  failed check never leaves half of one result beside half of another. Folders it had to create
  are removed again when the block fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from nanosam2.errors import NanoSam2Error

PathLike = str | os.PathLike[str]


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_not_an_input(path: Path, inputs: Iterable[PathLike | None], what: str) -> None:
    for item in inputs:
        if item is None:
            continue
        source = Path(item)
        if _same_file(path, source) or path.absolute() == source.absolute():
            raise NanoSam2Error(f"{what} {path} is also an input of this command; choose another output path")


def _check_creatable(path: Path, what: str) -> None:
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise NanoSam2Error(f"{what} {path} is not writable: {anchor} is a file, not a folder")
    try:  # os.access answers yes to root everywhere; only a real file says whether writing works
        with tempfile.NamedTemporaryFile(dir=anchor, prefix=".nanosam2-write-test-"):
            pass
    except OSError as exc:
        raise NanoSam2Error(f"{what} {path} is not writable: {exc.strerror or exc} in {anchor}") from None


def check_output_file(path: PathLike, inputs: Iterable[PathLike | None] = (), what: str = "output") -> Path:
    """Validate the destination of a file before any work; creates nothing."""
    out = Path(path)
    if out.is_dir():
        raise NanoSam2Error(f"{what} {out} is a folder; give a file path")
    _check_not_an_input(out, inputs, what)
    _check_creatable(out, what)
    return out


def check_output_dir(path: PathLike, inputs: Iterable[PathLike | None] = (), what: str = "output folder") -> Path:
    """Validate an output folder before any work; creates nothing (it appears when results do)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NanoSam2Error(f"{what} {out} exists and is not a folder")
    for item in inputs:
        if item is not None and Path(item).is_dir() and _same_file(out, Path(item)):
            raise NanoSam2Error(f"{what} {out} is also an input folder of this command; choose another")
    _check_creatable(out / "x", what)
    return out


def check_writable_dir(path: PathLike) -> Path:
    """Create ``path`` if needed and make sure files can be written there (for long-running jobs
    that write as they go, such as training)."""
    out = Path(path)
    check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise NanoSam2Error(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    return out


def make_parents(folder: Path, created: list[Path]) -> None:
    missing = []
    current = folder.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for item in reversed(missing):
        item.mkdir()
        created.append(item)


def remove_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _temporary(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp creates 0600; the result should look like any other file
    return Path(name)


def _publish(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except IsADirectoryError:
        raise NanoSam2Error(f"cannot write {final}: it is a folder") from None
    except OSError as exc:
        raise NanoSam2Error(f"cannot write {final}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def staged(paths: Sequence[PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path per final path (same folders); rename them all if the block succeeds.

    On any exception every temporary file is removed, and so is every folder this call created.
    """
    finals = [Path(p) for p in paths]
    created: list[Path] = []
    temps: list[Path] = []
    published = False
    try:
        for final in finals:
            make_parents(final.parent, created)
            try:
                temps.append(_temporary(final))
            except OSError as exc:
                raise NanoSam2Error(f"cannot write {final}: {exc.strerror or exc}") from None
        yield temps
        for tmp, final in zip(temps, finals):
            _publish(tmp, final)
        published = True
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()
        if not published:
            remove_empty(created)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the destination folder so the final rename is atomic on POSIX
    file systems. On any exception the temporary file is removed.
    """
    with staged([path]) as (tmp,):
        yield tmp
