"""Download SA-1B chunks from Meta's links file; resumable and size-checked.

    python -m nanosam2.data.download_sa1 links.txt -d data/sa1b -n 2 -e -r

``links.txt`` is the file Meta hands out after accepting the SA-1B licence
(https://ai.meta.com/datasets/segment-anything-downloads/): a header ``file_name<TAB>cdn_link``,
then one ``sa_000000.tar<TAB>https://...`` line per chunk. The flags are the seed's:
destination, number of chunks, extract, remove tars.

A download goes to ``NAME.partial`` and continues from there (HTTP Range) after a dropped
connection or an interrupted run; it is renamed only once its size equals the server's
Content-Length. A chunk extracted with ``-e`` is unpacked into a temporary folder and renamed to
``DEST/sa_000000/`` when complete; a marker file there makes reruns skip it. Uses only the
standard library.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import ArgumentParser, run_cli, setup_logging

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".nanosam2-complete"
BLOCK = 1 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class DownloadError(NanoSam2Error):
    """A chunk could not be fetched completely."""


@dataclass(frozen=True)
class Link:
    name: str
    url: str

    @property
    def stem(self) -> str:
        return self.name[: -len(".tar")] if self.name.endswith(".tar") else Path(self.name).stem


def read_links(path: str | os.PathLike[str]) -> list[Link]:
    """Parse Meta's links file; a malformed line is an error naming its number."""
    file = Path(path)
    if not file.is_file():
        raise NanoSam2Error(f"no such links file: {file}")
    links = []
    for number, raw in enumerate(file.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("file_name"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2 or not parts[1].startswith(("http://", "https://")):
            raise NanoSam2Error(f"{file} line {number}: expected 'file_name<TAB>url', got {line[:80]!r}")
        name, url = parts[0].strip(), parts[1].strip()
        if not _SAFE_NAME.match(name):
            raise NanoSam2Error(f"{file} line {number}: {name!r} is not a plain file name")
        links.append(Link(name, url))
    if not links:
        raise NanoSam2Error(f"{file} lists no chunks (expected 'file_name<TAB>url' lines)")
    return links


def _content_total(response) -> int | None:
    """Full size of the resource from Content-Range (206) or Content-Length (200)."""
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def fetch(url: str, dest: Path, retries: int = 5, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through ``dest.partial``, resuming after short reads."""
    partial = dest.with_name(dest.name + ".partial")
    expected: int | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.25 * 2.0 ** attempt, 30.0))
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        clean = False
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if have and response.status != 206:  # server ignored the range: start over
                    have = 0
                expected = _content_total(response) or expected
                _copy(response, partial, append=have > 0, done=have, total=expected, name=dest.name, progress=progress)
                clean = True
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # nothing left to send: the partial file may already be whole
                expected = _content_total(exc) or expected
                clean = expected is not None
            elif exc.code in (401, 403, 404, 410):
                raise DownloadError(f"{dest.name}: HTTP {exc.code} {exc.reason} (Meta's links expire; "
                                    "get a fresh links file)") from None
            else:
                logger.warning("%s: HTTP %s, retrying (%d/%d)", dest.name, exc.code, attempt + 1, retries)
        except (urllib.error.URLError, OSError, ValueError) as exc:  # reset, timeout, short read
            logger.warning("%s: %s, resuming (%d/%d)", dest.name, getattr(exc, "reason", exc), attempt + 1, retries)
        size = partial.stat().st_size if partial.exists() else 0
        if expected is None and clean and not archive_is_complete(partial, dest.name):
            # No size to check against: the bytes must at least make a whole archive.
            logger.warning("%s: the server sent no size and the archive ends early (%d bytes); resuming (%d/%d)",
                           dest.name, size, attempt + 1, retries)
            clean = False
        if expected is not None and size > expected:
            partial.unlink()
            raise DownloadError(f"{dest.name}: got {size} bytes, more than the {expected} announced; removed it")
        if (expected is not None and size == expected) or (expected is None and clean):
            break
    else:
        raise DownloadError(f"{dest.name}: incomplete after {retries} retries "
                            f"({partial.stat().st_size if partial.exists() else 0} of {expected} bytes kept in "
                            f"{partial.name}; run again to resume)")
    os.replace(partial, dest)
    return dest


def _copy(response, partial: Path, append: bool, done: int, total: int | None, name: str, progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=name, leave=False)
    try:
        with open(partial, "ab" if append else "wb") as out:
            while block := response.read(BLOCK):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    if total is not None and partial.stat().st_size < total:
        raise ValueError(f"connection closed at {partial.stat().st_size} of {total} bytes")


def archive_is_complete(path: Path, name: str | None = None) -> bool:
    """True unless ``path`` is a tar archive cut short (a file that is no tar is taken as it is).

    A tar ends with two zero blocks after its last member's data; tarfile alone takes a file cut
    anywhere (even between members) for a normal end of archive, so the marker is checked too.
    """
    if not tarfile.is_tarfile(path):
        return not (name or path.name).endswith(".tar")  # a .tar whose headers cannot be read is incomplete
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError):
        return False
    block = tarfile.BLOCKSIZE
    end = max((m.offset_data + -(-m.size // block) * block for m in members), default=0)
    with open(path, "rb") as handle:
        handle.seek(end)
        marker = handle.read(2 * block)
    return len(marker) == 2 * block and not any(marker)


def extract(archive: Path, folder: Path) -> int:
    """Unpack ``archive`` into ``folder`` (atomically: temporary folder, then rename)."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            for member in members:  # no absolute paths, no '..', no links (tarfile's "data" filter)
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise DownloadError(f"{archive.name}: unsafe path {member.name!r} in the archive")
            tar.extractall(staging, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive.name} is not a complete tar archive ({exc}); delete it and download again") from None
    (staging / COMPLETE_MARKER).write_text(archive.name + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return sum(1 for m in members if m.isfile())


def download_chunks(links: list[Link], destination: Path, count: int | None = None, do_extract: bool = False,
                    remove: bool = False, retries: int = 5, timeout: float = 60.0, progress: bool = True) -> list[str]:
    """Fetch (and unpack) the first ``count`` chunks; returns the names that failed."""
    destination.mkdir(parents=True, exist_ok=True)
    failed = []
    for link in links[:count] if count is not None else links:
        archive, folder = destination / link.name, destination / link.stem
        if (folder / COMPLETE_MARKER).is_file() or (not do_extract and archive.is_file()):
            logger.info("%s: already complete, skipped", link.name)
            continue
        try:
            if not archive.is_file():
                fetch(link.url, archive, retries, timeout, progress)
            if do_extract:
                files = extract(archive, folder)
                logger.info("%s: %d files in %s", link.name, files, folder)
                if remove:
                    archive.unlink()
        except DownloadError as exc:
            logger.error("%s", exc)
            failed.append(link.name)
    return failed


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m nanosam2.data.download_sa1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("links", help="Meta's SA-1B links file (file_name<TAB>cdn_link per line)")
    parser.add_argument("-d", "--destination", default=".", help="where chunks go (default: current directory)")
    parser.add_argument("-n", "--num-chunks", type=int, help="download only the first N chunks (default: all)")
    parser.add_argument("-e", "--extract", action="store_true", help="unpack each tar into DEST/sa_XXXXXX/")
    parser.add_argument("-r", "--remove", action="store_true", help="delete each tar once it is unpacked (needs -e)")
    parser.add_argument("--retries", type=int, default=5, help="resume attempts per chunk (default 5)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.remove and not args.extract:
        raise NanoSam2Error("-r/--remove deletes tars after extraction: use it with -e/--extract")
    if args.num_chunks is not None and args.num_chunks < 1:
        raise NanoSam2Error(f"-n must be at least 1, got {args.num_chunks}")
    links = read_links(args.links)
    failed = download_chunks(links, Path(args.destination), args.num_chunks, args.extract, args.remove,
                             args.retries, args.timeout, progress=not args.no_progress and sys.stderr.isatty())
    wanted = len(links) if args.num_chunks is None else min(args.num_chunks, len(links))
    print(f"{wanted - len(failed)} of {wanted} chunks complete in {args.destination}")
    if failed:
        raise DownloadError(f"{len(failed)} chunk(s) failed: {', '.join(failed)}; run the same command again to resume")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
