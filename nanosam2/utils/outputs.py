"""The one output policy of every command that writes results (torch-free).

A command replaces only what a record it wrote says it wrote:

- **Folders** (``predict``, ``everything``, ``track``, the demo): :class:`OutputFolder`. The command
  names the files and sub-folders it writes and its record (``predict.json``, ...). Before any work,
  every existing file in its way must be listed in that record, written by the same command;
  anything else (a user's own ``masks/…``, a ``track.json`` another tool wrote) is refused in one
  line. Results are written into a hidden staging folder inside OUT and published when complete:
  the record is first rewritten to own old and new files (``"complete": false``, so a crash in
  between leaves nothing that the next run would refuse to clean), then the files are renamed in,
  the earlier run's files this run did not write again are removed, and the final record is
  written last. Other files in OUT are left alone. Publishing is journalled: the staging folder holds
  what the publication will do (``.publish.json``) before anything in OUT changes, so a run stopped inside
  it (Ctrl-C: finished on the spot; kill -9, power loss: at the next start of any command on that
  folder) is rolled forward, and a staging folder without a journal (a run stopped before publishing)
  is removed at that next start, said in one log line each.
- **Files** (graphs, engines, calibration data, results JSON): :func:`check_replaceable_file`: an
  existing file is replaced only when its own record (the graph's metadata, the engine's
  ``.json`` sidecar, the calibration manifest, the results' run keys) says this command wrote it.
- **Inputs are never inside what a command replaces**: an input file at a path the command would
  write or remove, or an input folder inside one of its output folders, is refused before any work.
- **One writer per output folder**: an :class:`OutputFolder` holds an advisory lock on its folder from its
  first check to its last record (and until it is dropped); a second run on the same folder, in another
  process, is refused in one line naming the folder. The lock lives in the system's temporary folder
  (keyed by the folder's resolved path), so nothing is created in OUT before results are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import make_parents, remove_empty, atomic_path, check_output_dir

PathLike = str | os.PathLike[str]
OUTPUT_KEY = "outputs"  # in a record: {"command": ..., "files": [...], "complete": bool}
JOURNAL = ".publish.json"  # in a staging folder: what its publication does (present once publishing began)
STAGING = re.compile(r"^\.[a-z0-9-]+-[0-9a-f]{8}\.partial$")  # OutputFolder.staging's folders

logger = logging.getLogger(__name__)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _resolved(path: PathLike) -> Path:
    return Path(path).expanduser().resolve()


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


_HELD: dict[str, list[Any]] = {}  # resolved folder -> [lock file descriptor, holders in this process]


def lock_folder(path: Path, command: str) -> Callable[[], None]:
    """Take the folder's advisory lock (shared by this process's holders); returns its release."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (nanosam2's targets are Linux)
        return lambda: None
    key = str(_resolved(path))
    if key not in _HELD:
        folder = Path(tempfile.gettempdir()) / "nanosam2-output-locks"
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NanoSam2Error(f"{path} is being written by another run right now (it holds the folder's lock); wait "
                                f"for it to finish or choose another --output") from None
        _HELD[key] = [fd, 0]
    _HELD[key][1] += 1
    released = []

    def release() -> None:
        if released or key not in _HELD:
            return
        released.append(True)
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            os.close(_HELD.pop(key)[0])  # closing the descriptor releases the lock

    return release


@dataclass
class OutputFolder:
    """What one run of ``command`` writes into ``path``: ``files`` (names) and ``folders`` (every file
    under them is the command's), described by ``record`` (a JSON file in ``path``)."""

    path: Path
    command: str
    record: str
    files: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    inputs: tuple[PathLike | None, ...] = ()
    owned: set[str] = field(default_factory=set, init=False)  # files the earlier run recorded

    def __post_init__(self) -> None:
        self.path = check_output_dir(self.path, inputs=self.inputs)
        release = lock_folder(self.path, self.command)  # held from here to the last record, until dropped
        self.release = weakref.finalize(self, release)
        recover(self.path)  # an interrupted run's staging folder: finished or removed, under the lock
        self.owned = self._earlier_files()
        self._check_inputs()
        self.check_in_the_way(self.existing())

    # -- before the work -------------------------------------------------------------------------
    def _earlier_files(self) -> set[str]:
        record_path = self.path / self.record
        if not record_path.exists():
            return set()
        data = read_record(record_path)
        outputs = data.get(OUTPUT_KEY) if data else None
        if not isinstance(outputs, dict) or outputs.get("command") != self.command or not isinstance(
                outputs.get("files"), list):
            raise NanoSam2Error(f"{record_path} exists and is not the record of a `{self.command}` run; "
                                "choose another --output or move it away")
        return {str(name) for name in outputs["files"] if isinstance(name, str) and _safe_name(name)}

    def _ours(self, name: str) -> bool:
        return name in self.files or name == self.record or any(
            name == folder or name.startswith(folder + "/") for folder in self.folders)

    def existing(self) -> list[str]:
        """Files now in the places this command writes (relative names)."""
        found = [name for name in (*self.files, self.record) if (self.path / name).exists()]
        for folder in self.folders:
            root = self.path / folder
            if root.is_file() or root.is_symlink():
                found.append(folder)
            elif root.is_dir():
                found += [str(p.relative_to(self.path)) for p in sorted(root.rglob("*")) if not p.is_dir()]
        return found

    def check_in_the_way(self, names: Iterable[str]) -> None:
        strangers = [name for name in names if name != self.record and name not in self.owned]
        if strangers:
            more = f" (and {len(strangers) - 1} more)" if len(strangers) > 1 else ""
            raise NanoSam2Error(f"{self.path / strangers[0]}{more} is in the way and no earlier `{self.command}` "
                                f"run recorded writing it in {self.record}; choose another --output or move it away")

    def _check_inputs(self) -> None:
        root = _resolved(self.path)
        replaced = [root / name for name in (*self.files, self.record, *self.owned)]
        folders = [root / name for name in self.folders]
        for item in self.inputs:
            if item is None or str(item).startswith("camera:"):
                continue
            source = _resolved(item)
            if any(source == target for target in replaced) or any(_inside(source, f) for f in folders):
                raise NanoSam2Error(f"input {item} lies inside what `{self.command}` would replace in {self.path}; "
                                    "choose another --output")

    # -- the work and its publication --------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A hidden folder inside OUT for this run's results; removed (with the folders it made)
        unless :meth:`publish` took them."""
        created: list[Path] = []
        make_parents(self.path, created)
        stage = self.path / f".{self.command}-{uuid.uuid4().hex[:8]}.partial"
        stage.mkdir()
        try:
            yield stage
        except BaseException:
            if (stage / JOURNAL).is_file():  # stopped while publishing (Ctrl-C): finish it, never half of it
                with contextlib.suppress(Exception):  # what is left is finished at the next start
                    _roll_forward(self.path, stage)
                raise
            shutil.rmtree(stage, ignore_errors=True)
            remove_empty(created)
            raise
        shutil.rmtree(stage, ignore_errors=True)

    def publish(self, stage: Path, record: dict[str, Any], replace: bool = True) -> list[str]:
        """Move the staged files into OUT, remove the earlier run's files not written again (``replace``;
        else they stay, a command that adds to its results a part at a time), and write ``record`` (with
        the list of files) last. Returns the files the record lists."""
        new = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if not p.is_dir())
        unexpected = [name for name in new if not self._ours(name) or name == self.record]
        if unexpected:
            raise NanoSam2Error(f"internal: `{self.command}` staged {unexpected[0]}, which it does not declare")
        self.check_in_the_way(self.existing())  # again: files may have appeared during the run
        folders = [name for name in new if (self.path / name).is_dir()]
        if folders:
            raise NanoSam2Error(f"cannot write {self.path / folders[0]}: it is a folder")
        files = [*new, self.record] if replace else sorted(self.owned | {*new, self.record})
        final = {**record, OUTPUT_KEY: {"command": self.command, "files": files, "complete": True}}
        journal = {"record": self.record, "new": new, "remove": sorted(self.owned - set(files)), "final": final}
        with atomic_path(stage / JOURNAL) as tmp:  # from here on the publication is finished, whatever happens
            tmp.write_text(json.dumps(journal, default=str))
        _write_record(self.path / self.record,
                      {**record, OUTPUT_KEY: {"command": self.command, "files": sorted(self.owned | set(files)),
                                              "complete": False}})
        _roll_forward(self.path, stage)
        self.owned = set(files)
        return files


def _write_record(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def _roll_forward(folder: Path, stage: Path) -> None:
    """Carry out a staging folder's journal (every step can be repeated): the staged files renamed in, the
    earlier run's files it does not keep removed, the final record written, the staging folder removed."""
    journal = json.loads((stage / JOURNAL).read_text())
    for name in journal["new"]:
        if not _safe_name(name):
            continue
        source, target = stage / name, folder / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    for name in journal["remove"]:  # the earlier run's, not written again
        if _safe_name(name):
            (folder / name).unlink(missing_ok=True)
            _prune(folder / name, folder)
    if _safe_name(journal["record"]):
        _write_record(folder / journal["record"], journal["final"])
        half_written = re.compile(re.escape(f".{Path(journal['record']).name}.") + r"[a-z0-9_]{8}\.partial$")
        for path in (folder / journal["record"]).parent.iterdir():  # a record write a kill -9 cut short
            if half_written.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
    shutil.rmtree(stage, ignore_errors=True)


def recover(folder: Path) -> None:
    """Staging folders an interrupted run left in ``folder`` (the caller holds its lock): one that began
    publishing is finished, one that did not is removed; each said in a log line."""
    if not folder.is_dir():
        return
    for stage in sorted(p for p in folder.iterdir() if STAGING.match(p.name) and p.is_dir() and not p.is_symlink()):
        if (stage / JOURNAL).is_file():
            try:
                _roll_forward(folder, stage)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise NanoSam2Error(f"{stage}: an interrupted run's results could not be published ({exc}); move "
                                    "the folder away") from None
            logger.warning("finished publishing an interrupted run's results in %s (from %s)", folder, stage.name)
        else:
            count = sum(1 for p in stage.rglob("*") if p.is_file())
            shutil.rmtree(stage, ignore_errors=True)
            logger.warning("removed %s: the staging folder of a run stopped before it published (%d files)",
                           stage, count)


def _safe_name(name: str) -> bool:
    """A record's file name stays inside its folder."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _prune(removed: Path, root: Path) -> None:
    """Remove the folders a removed file leaves empty, up to ``root``."""
    folder = removed.parent
    while folder != root and _inside(folder, root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def check_replaceable_file(path: PathLike, command: str, is_ours: Callable[[Path], bool],
                           what: str = "output") -> Path:
    """Refuse to replace an existing file unless ``is_ours`` finds the record that ``command`` wrote it."""
    target = Path(path)
    if target.is_file() and not is_ours(target):
        raise NanoSam2Error(f"{what} {target} exists and no record says `{command}` wrote it; "
                            "choose another path or move it away")
    return target


def record_has(path: Path, *keys: str) -> bool:
    """``path`` holds a JSON object with every one of ``keys`` (a command's record of its output)."""
    data = read_record(path)
    return data is not None and all(key in data for key in keys)
