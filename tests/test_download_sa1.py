"""download_sa1 against a local HTTP server: resume after a dropped connection, size checks."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from nanosam2.data.download_sa1 import COMPLETE_MARKER, main, read_links
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import run_cli


def make_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ChunkServer(http.server.ThreadingHTTPServer):
    """Serves ``blobs`` with Range support; the first ``truncate[name]`` requests of a blob
    announce its full length but stop half-way (a dropped connection)."""

    def __init__(self, blobs: dict[str, bytes], truncate: dict[str, int], no_length: bool = False) -> None:
        self.blobs, self.truncate, self.requests, self.no_length = blobs, dict(truncate), [], no_length
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: ChunkServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        data = self.server.blobs.get(name)
        rng = self.headers.get("Range")
        self.server.requests.append((name, rng))
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng and not self.server.no_length:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if not self.server.no_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.truncate.get(name, 0) > 0:
            self.server.truncate[name] -= 1
            body = body[: len(body) // 2]
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture
def chunks():
    payloads = {
        f"sa_{i:06d}.tar": make_tar({f"sa_{10 * i + j}.jpg": bytes([i, j]) * 40_000 for j in range(3)}
                                    | {f"sa_{10 * i}.json": b'{"annotations": []}'})
        for i in range(3)
    }
    server = ChunkServer(payloads, truncate={"sa_000000.tar": 1, "sa_000001.tar": 2})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, payloads
    server.shutdown()
    server.server_close()


def write_links(path: Path, server: ChunkServer, names) -> Path:
    path.write_text("file_name\tcdn_link\n" + "".join(f"{n}\t{server.url}/{n}\n" for n in names))
    return path


def test_truncated_download_is_detected_and_resumed(chunks, tmp_path):
    server, payloads = chunks
    links = write_links(tmp_path / "links.txt", server, payloads)
    dest = tmp_path / "data"
    assert main([str(links), "-d", str(dest), "-n", "2", "-e", "-r", "--no-progress"]) == 0
    for index in (0, 1):
        folder = dest / f"sa_{index:06d}"
        assert (folder / COMPLETE_MARKER).is_file()
        assert sorted(p.name for p in folder.glob("sa_*.jpg")) == [f"sa_{10 * index + j}.jpg" for j in range(3)]
        assert (folder / f"sa_{10 * index + 1}.jpg").read_bytes() == bytes([index, 1]) * 40_000
        assert not (dest / f"sa_{index:06d}.tar").exists()  # -r
    assert not (dest / "sa_000002").exists()  # -n 2
    assert not list(dest.glob("*.partial"))
    # The dropped connections were resumed with Range requests, not restarted.
    ranges = [r for n, r in server.requests if n == "sa_000001.tar"]
    assert ranges[0] is None and len(ranges) == 3 and all(r.startswith("bytes=") for r in ranges[1:])
    # A rerun skips complete chunks without touching the network.
    before = len(server.requests)
    assert main([str(links), "-d", str(dest), "-n", "2", "-e", "--no-progress"]) == 0
    assert len(server.requests) == before


def test_interrupted_run_resumes_from_partial_file(chunks, tmp_path):
    server, payloads = chunks
    links = write_links(tmp_path / "links.txt", server, ["sa_000002.tar"])
    dest = tmp_path / "data"
    dest.mkdir()
    data = payloads["sa_000002.tar"]
    (dest / "sa_000002.tar.partial").write_bytes(data[:1000])  # left by a killed run
    assert main([str(links), "-d", str(dest), "--no-progress"]) == 0
    assert (dest / "sa_000002.tar").read_bytes() == data
    assert server.requests == [("sa_000002.tar", "bytes=1000-")]


def test_oversized_partial_and_missing_chunk_fail_cleanly(chunks, tmp_path, capsys):
    server, payloads = chunks
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "sa_000002.tar.partial").write_bytes(payloads["sa_000002.tar"] + b"junk")
    links = write_links(tmp_path / "links.txt", server, ["sa_000002.tar", "sa_000099.tar"])
    assert run_cli(main, [str(links), "-d", str(dest), "--no-progress", "--retries", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: 2 chunk(s) failed: sa_000002.tar, sa_000099.tar")
    assert not (dest / "sa_000002.tar").exists() and not (dest / "sa_000002.tar.partial").exists()


def test_bad_links_file(tmp_path, capsys):
    bad = tmp_path / "links.txt"
    bad.write_text("file_name\tcdn_link\nsa_000000.tar\n")
    with pytest.raises(NanoSam2Error, match="line 2: expected 'file_name<TAB>url'"):
        read_links(bad)
    bad.write_text("../evil.tar\thttp://x/y\n")
    with pytest.raises(NanoSam2Error, match="not a plain file name"):
        read_links(bad)
    assert run_cli(main, [str(tmp_path / "missing.txt")]) == 2
    assert "no such links file" in capsys.readouterr().err
    assert run_cli(main, [str(bad), "-r"]) == 2


def test_truncated_download_without_a_size_header_is_resumed_not_kept(tmp_path):
    """A server that sends no Content-Length cannot be size-checked: a tar cut short must still not
    be kept as complete (it was, before: the first short read was renamed to the final name)."""
    payload = make_tar({f"sa_{j}.jpg": bytes([j]) * 40_000 for j in range(3)})
    server = ChunkServer({"sa_000000.tar": payload}, truncate={"sa_000000.tar": 1}, no_length=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        links = write_links(tmp_path / "links.txt", server, ["sa_000000.tar"])
        assert main([str(links), "-d", str(tmp_path / "data"), "--no-progress"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "data" / "sa_000000.tar").read_bytes() == payload
    assert len(server.requests) == 2 and server.requests[1][1].startswith("bytes=")
