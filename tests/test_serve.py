"""Serving on Triton Inference Server: a real ``tritonserver`` (PyTriton's) started by the tests on 127.0.0.1, free
ports, bounded in requests and seconds, over a 256-px export of a random-weight student with trained-like logits.

Image requests through the server equal the local predictor to the bit (HTTP and gRPC), and concurrent ones
batch through the encoder (Triton's own metrics say so); four interleaved tracking sessions equal four local
runs; an abandoned session is evicted after its timeout while the others go on; bad requests get one line and
the server keeps serving; sessions beyond --max-sessions are refused with the limit named; SIGTERM fails the
request in flight cleanly and the client publishes nothing; every command with --server writes a local run's
outputs and records."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from tests.conftest import export_once, with_present_objects, with_trained_logit_scale

pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (scripts/setup_env.sh installs it)")
pytest.importorskip("tritonclient.http", reason="tritonclient is not installed: pip install 'nanosam2[serve]'")

pytestmark = pytest.mark.xdist_group("serve")

SIZE = 256  # the model's image size: the encoder costs 1/16 of 1024 px
SESSION_TIMEOUT, MAX_SESSIONS = 4.0, 6


def Server(model_dir: Path, log: Path, **changes):
    from trt_runtime.serving.process import ServerProcess

    return ServerProcess(model_dir, log, **{"max_seconds": 900, "max_requests": 5000, **changes})


@pytest.fixture(scope="module")
def served_model(tmp_path_factory) -> Path:
    """A 256-px resnet18 export (every graph) with trained-like mask logits and objects present."""
    import torch

    from export.exporter import export_model
    from nanosam2.build import build_video_predictor

    def export(folder: Path):
        torch.manual_seed(0)
        model = with_present_objects(with_trained_logit_scale(build_video_predictor("resnet18", device="cpu",
                                                                                    image_size=SIZE)))
        model.fill_hole_area = 0
        return export_model(model, "resnet18", folder)

    return export_once(tmp_path_factory, "onnx-serve-256", export)[C.ENCODER].parent


@pytest.fixture(scope="module")
def server(served_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = Server(served_model, log, max_sessions=MAX_SESSIONS, session_timeout=SESSION_TIMEOUT,
                     batch_delay_us=200_000)
    yield running
    assert running.stop() == 0, running.tail()


@pytest.fixture(scope="module")
def local_predictor(served_model):
    from nanosam2.inference.factory import find_graphs, load_image_predictor

    with load_image_predictor(find_graphs(served_model, (C.ENCODER, C.DECODER))) as predictor:
        yield predictor


def image(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    from tests.conftest import make_test_image

    return make_test_image(height, width, seed)


PROMPTS = [dict(points=np.array([[60.0, 50.0]]), labels=np.array([1])),
           dict(boxes=np.array([[20.0, 15.0, 120.0, 100.0], [70.0, 40.0, 150.0, 110.0]])),
           dict(points=np.array([[30.0, 30.0], [90.0, 70.0]]), labels=np.array([1, 0]), boxes=np.array([10, 10, 100, 90.0]))]


def test_image_requests_equal_the_local_predictor_to_the_bit(server, local_predictor):
    from trt_runtime.serving.client import RemotePredictor

    picture = image()
    local_predictor.set_image(picture)
    for url in (server.url, server.grpc_url):
        with RemotePredictor(url) as remote:
            remote.set_image(picture)
            for prompt in PROMPTS:
                for multimask in (False, True):
                    want = local_predictor.predict_prompts(local_predictor.build_prompts(**prompt), multimask)
                    got = remote.predict_prompts(remote.build_prompts(**prompt), multimask)
                    assert want.masks.any() and np.array_equal(want.masks, got.masks), (url, prompt, multimask)
                    assert np.array_equal(want.scores, got.scores)
                    assert np.array_equal(want.low_res_logits, got.low_res_logits)
                want_best = local_predictor.predict_best(local_predictor.build_prompts(**prompt))
                got_best = remote.predict_best(remote.build_prompts(**prompt))
                assert np.array_equal(want_best[0], got_best[0]) and np.array_equal(want_best[1], got_best[1])
            assert remote.identity() == local_predictor.identity()


def test_concurrent_image_requests_share_encoder_calls(server, local_predictor):
    """Eight clients at once: Triton's dynamic batcher hands their requests to one call (its metrics count fewer
    executions than requests), the images go through the encoder together, and each client gets its own answer."""
    from trt_runtime.serving.client import RemotePredictor

    before_requests = server.metric("nv_inference_count", "nanosam2_image")
    before_calls = server.metric("nv_inference_exec_count", "nanosam2_image")
    pictures = [image(seed=k) for k in range(8)]
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(pictures))

    def client(k: int) -> None:
        try:
            with RemotePredictor(server.url) as remote:
                remote.set_image(pictures[k])
                barrier.wait(30)
                answers[k] = remote.predict_prompts(remote.build_prompts(**PROMPTS[1]), False).masks
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(pictures))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    requests = server.metric("nv_inference_count", "nanosam2_image") - before_requests
    calls = server.metric("nv_inference_exec_count", "nanosam2_image") - before_calls
    assert requests == len(pictures) and calls < requests, (requests, calls)
    for k, picture in enumerate(pictures):  # batched encoder calls: the same masks, within float summation order
        local_predictor.set_image(picture)
        want = local_predictor.predict_prompts(local_predictor.build_prompts(**PROMPTS[1]), False).masks
        agree = np.logical_and(want, answers[k]).sum() / max(np.logical_or(want, answers[k]).sum(), 1)
        assert agree >= 0.999, (k, agree)


def video_frames(count: int, seed: int) -> list[np.ndarray]:
    from nanosam2.samples import make_frames

    frames = make_frames(count, 96, 128)
    return [np.roll(np.asarray(f), 7 * seed, axis=1) for f in frames]


SESSION_PROMPTS = [
    {0: [{"obj_id": 1, "points": [[40, 40]], "labels": [1]}]},
    {0: [{"obj_id": 1, "box": [10, 10, 70, 60]}], 2: [{"obj_id": 2, "points": [[90, 50]], "labels": [1]}]},
    {1: [{"obj_id": 5, "box": [30, 20, 100, 80]}]},
    {0: [{"obj_id": 1, "points": [[40, 40], [60, 60]], "labels": [1, 0]}, {"obj_id": 2, "box": [60, 30, 120, 90]}]},
]


def test_interleaved_tracking_sessions_equal_local_runs(server, served_model):
    """Four sessions advanced frame by frame in turn (four cameras) give what four local streams give."""
    from nanosam2.inference.factory import find_graphs, load_video_predictor
    from trt_runtime.serving.client import RemoteTracker

    count = 5
    clips = [video_frames(count, k) for k in range(4)]
    with load_video_predictor(find_graphs(served_model, C.TRACKER_GRAPHS)) as local:
        expected = [list(local.track_stream(clips[k], SESSION_PROMPTS[k], num_frames=count)) for k in range(4)]
        config = local.config
    trackers = [RemoteTracker(server.url if k % 2 else server.grpc_url, config) for k in range(4)]
    streams = [trackers[k].track_stream(clips[k], SESSION_PROMPTS[k], num_frames=count) for k in range(4)]
    got: list[list] = [[] for _ in range(4)]
    for _ in range(count):
        for k in range(4):
            got[k].append(next(streams[k]))
    for k in range(4):
        assert next(streams[k], None) is None  # ends the session
        trackers[k].close()
        assert len(got[k]) == count
        for (f0, ids0, logits0), (f1, ids1, logits1) in zip(expected[k], got[k]):
            assert (f0, list(ids0)) == (f1, ids1)
            assert np.array_equal(logits0, logits1), (k, f0)
    assert any(len(ids) == 2 for _, ids, _ in got[1])


def _session(connection, sequence_id: int, frame: np.ndarray, start: bool = False, end: bool = False,
             prompts: list | None = None):
    from trt_runtime.serving import protocol as P

    inputs = {"SEQUENCE_ID": np.array([sequence_id], np.uint64), "SEQUENCE_START": np.array([start]),
              "SEQUENCE_END": np.array([end]), "FRAME": frame}
    if prompts:
        inputs["PROMPTS"] = P.to_json_tensor(prompts)
    return connection.infer(P.TRACK, inputs)


ABANDON = """
import sys, time, numpy as np
from trt_runtime.serving.client import Connection
from tests.test_serve import _session
c = Connection(sys.argv[1])
frame = np.zeros((96, 128, 3), np.uint8)
_session(c, int(sys.argv[2]), frame, start=True, prompts=[{"obj_id": 1, "points": [[40, 40]], "labels": [1]}])
_session(c, int(sys.argv[2]), frame)
print("tracking", flush=True)
time.sleep(600)
"""


def test_a_killed_clients_session_is_reclaimed_after_the_timeout(server):
    from trt_runtime.serving.client import Connection

    client = subprocess.Popen([sys.executable, "-c", ABANDON, server.url, "77"], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    assert client.stdout.readline().strip() == "tracking"
    client.kill()  # mid-session: no SEQUENCE_END will come
    client.wait()
    connection = Connection(server.url)
    frame = video_frames(1, 0)[0]
    started = time.monotonic()
    _session(connection, 78, frame, start=True, prompts=[{"obj_id": 1, "points": [[40, 40]], "labels": [1]}])
    while time.monotonic() - started < SESSION_TIMEOUT + 1.5:  # another camera goes on meanwhile
        answer = _session(connection, 78, frame)
        assert list(answer["OBJ_IDS"]) == [1]
        time.sleep(0.5)
    time.sleep(1.5)  # the abandoned session's timeout (counted from its last request) is over, plus the reaper's tick
    with pytest.raises(NanoSam2Error, match=f"no tracking session 77: it was evicted after {SESSION_TIMEOUT:g} s"):
        _session(connection, 77, frame)
    assert list(_session(connection, 78, frame, end=True)["OBJ_IDS"]) == [1]
    with pytest.raises(NanoSam2Error, match="no tracking session 78: it was ended by its client"):
        _session(connection, 78, frame)
    connection.close()


def test_bad_requests_get_one_line_and_the_server_keeps_serving(server, local_predictor):
    from trt_runtime.serving import protocol as P
    from trt_runtime.serving.client import Connection, RemotePredictor

    connection = Connection(server.url)
    picture = image()
    cases = [
        ({"IMAGE": picture, "PROMPTS": P.to_json_tensor({"points": [[500, 20]], "labels": [1]})},
         "point \\(500, 20\\) is outside the 160x120 image"),
        ({"IMAGE": picture, "PROMPTS": P.to_json_tensor({"boxes": [[1, 2, 3]]})}, "boxes must be lists of 4 numbers"),
        ({"IMAGE": picture, "PROMPTS": np.array([b"{not json"], dtype=np.object_)}, "PROMPTS is not JSON"),
        ({"IMAGE": picture, "PROMPTS": P.to_json_tensor({"point": [[5, 5]]})}, "unknown keys \\['point'\\]"),
        ({"IMAGE": picture, "PROMPTS": P.to_json_tensor({})}, "give points \\(with labels\\), boxes or a MASK_INPUT"),
        ({"IMAGE": picture[:1], "PROMPTS": P.to_json_tensor({"points": [[0, 0]], "labels": [1]})}, "at least 2x2"),
        ({"IMAGE": picture[..., :2], "PROMPTS": P.to_json_tensor({})}, "unexpected shape for input 'IMAGE'"),
        ({"IMAGE": picture.astype(np.float32), "PROMPTS": P.to_json_tensor({})}, "FP32.*UINT8|UINT8.*FP32"),
    ]
    for inputs, message in cases:
        with pytest.raises(NanoSam2Error, match=message) as caught:
            if inputs["IMAGE"].dtype != np.uint8:  # the client checks the type against the table: send it raw
                _raw_float_image(connection, inputs)
            else:
                connection.infer(P.IMAGE, inputs)
        assert "\n" not in str(caught.value)
    track_cases = [
        ({"SEQUENCE_ID": np.array([0], np.uint64), "FRAME": picture}, "SEQUENCE_ID must be one non-zero id"),
        ({"SEQUENCE_ID": np.array([999], np.uint64), "FRAME": picture}, "no tracking session 999: it was never started"),
        ({"SEQUENCE_ID": np.array([998], np.uint64), "SEQUENCE_START": np.array([True]), "FRAME": picture,
          "PROMPTS": P.to_json_tensor([{"obj_id": 1, "box": [5, 5, 2, 2]}])}, "box \\(5, 5, 2, 2\\) needs x0 < x1"),
        ({"SEQUENCE_ID": np.array([997], np.uint64), "SEQUENCE_START": np.array([True]), "FRAME": picture,
          "SETTINGS": P.to_json_tensor({"preset": "fast"})}, "unknown tracker preset 'fast'"),
    ]
    for inputs, message in track_cases:
        with pytest.raises(NanoSam2Error, match=message):
            connection.infer(P.TRACK, inputs)
    with pytest.raises(NanoSam2Error, match="no tracking session 998"):  # a session that failed its first frame is gone
        connection.infer(P.TRACK, {"SEQUENCE_ID": np.array([998], np.uint64), "FRAME": picture})
    with RemotePredictor(server.url) as remote:  # and the server still answers
        remote.set_image(picture)
        local_predictor.set_image(picture)
        got = remote.predict_prompts(remote.build_prompts(**PROMPTS[0]), False)
        want = local_predictor.predict_prompts(local_predictor.build_prompts(**PROMPTS[0]), False)
        assert np.array_equal(got.masks, want.masks)
    with pytest.raises(NanoSam2Error, match="no nanosam2 server at http://127.0.0.1:1 "):
        RemotePredictor("http://127.0.0.1:1")
    connection.close()


def _raw_float_image(connection, inputs) -> None:
    """A request whose IMAGE is FP32 (which Triton refuses against the model's UINT8)."""
    lib = connection.lib
    array = inputs["IMAGE"][None]
    item = lib.InferInput("IMAGE", list(array.shape), "FP32")
    item.set_data_from_numpy(array)
    prompts = lib.InferInput("PROMPTS", [1, 1], "BYTES")
    prompts.set_data_from_numpy(inputs["PROMPTS"][None])
    try:
        connection.client.infer("nanosam2_image", [item, prompts])
    except Exception as exc:  # noqa: BLE001
        raise NanoSam2Error(exc.message().splitlines()[0]) from None


def test_sessions_beyond_the_limit_are_refused_with_the_limit_named(server):
    from trt_runtime.serving.client import Connection

    connection = Connection(server.grpc_url)
    frame = video_frames(1, 0)[0]
    ids = list(range(500, 500 + MAX_SESSIONS))
    for sid in ids:
        _session(connection, sid, frame, start=True)
    try:
        with pytest.raises(NanoSam2Error, match=f"holds {MAX_SESSIONS} tracking sessions, its limit \\(--max-sessions "
                                                f"{MAX_SESSIONS}\\)"):
            _session(connection, 900, frame, start=True)
        with pytest.raises(NanoSam2Error, match="sequence 500 is already running"):
            _session(connection, 500, frame, start=True)
    finally:
        for sid in ids:
            _session(connection, sid, frame, end=True)
    _session(connection, 900, frame, start=True, end=True)  # room again
    connection.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trt_runtime", *args], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])


def test_commands_with_server_write_a_local_runs_outputs(server, served_model, tmp_path_factory):
    """predict, everything, eval-coco, track --stream and eval-vos with --server: the same files and records as
    the same commands run here (the records' model is the server's graphs, equal to the local ones)."""
    from PIL import Image

    from nanosam2.samples import write_jpeg_folder
    from tests.coco_synthetic import make_coco
    from tests.vos_synthetic import write_crossing_set

    root = tmp_path_factory.mktemp("commands")
    picture = root / "image.png"
    Image.fromarray(image()).save(picture)
    frames = write_jpeg_folder(root / "frames", 5, 96, 128) or root / "frames"
    coco_images, coco_ann = make_coco(root / "coco", num_images=2)
    vos = write_crossing_set(root / "vos", num_frames=5, height=96, width=128)
    graphs = ["--encoder", str(served_model / "image_encoder.onnx"), "--decoder", str(served_model / "mask_decoder.onnx")]
    runs = {
        "predict": (["predict", "--image", str(picture), "--point", "60,50", "--box", "20,15,120,100"], graphs,
                    "predict.json"),
        "everything": (["everything", "--image", str(picture), "--points-per-side", "4", "--pred-iou-thresh", "0",
                        "--stability-score-thresh", "0"], graphs, "everything.json"),
        "eval-coco": (["eval-coco", "--coco-root", str(coco_images), "--coco-ann", str(coco_ann)], graphs, None),
        "track": (["track", "--video", str(frames), "--point", "40,40", "--box", "60,30,120,90", "--stream",
                   "--no-overlay"], ["--model-dir", str(served_model)], "track.json"),
        "eval-vos": (["eval-vos", "--dataset", str(vos)], ["--model-dir", str(served_model)], "eval-vos.json"),
    }
    for name, (args, local_flags, record) in runs.items():
        outputs = {}
        for where, flags in (("local", local_flags), ("server", ["--server", server.url])):
            out = root / f"{name}-{where}" / ("results.json" if name == "eval-coco" else "")
            done = cli(*args, *flags, "--output", str(out))
            assert done.returncode == 0, (name, where, done.stderr[-2000:])
            outputs[where] = out
        local, remote = outputs["local"], outputs["server"]
        if name == "eval-coco":
            a, b = json.loads(local.read_text()), json.loads(remote.read_text())
            assert a == b and a  # every record, and its run id (the model's identity and the annotations)
            continue
        files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file() and p.name != record)
        assert files == sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file() and p.name != record)
        for path in files:
            if path.suffix in (".png", ".json") and path.name != "overlay.png":
                assert (local / path).read_bytes() == (remote / path).read_bytes(), (name, path)
        a, b = json.loads((local / record).read_text()), json.loads((remote / record).read_text())
        assert a.get("model") == b.get("model"), name
        if name == "track":
            assert a["tracker"] == b["tracker"] and a["frames"] == b["frames"] == 5
    bad = cli("predict", "--server", server.url, *graphs, "--image", str(picture), "--point", "1,1",
              "--output", str(root / "bad"))
    assert bad.returncode != 0 and "--server runs the server's graphs" in bad.stderr
    offline = cli("track", "--server", server.url, "--video", str(frames), "--point", "40,40", "--output", str(root / "bad"))
    assert offline.returncode != 0 and "add --stream" in offline.stderr
    assert not (root / "bad").exists()


def test_sigterm_fails_the_request_in_flight_cleanly(served_model, tmp_path):
    """A second server (--drain-seconds 1), SIGTERMed while it decodes a client's segment-everything grid (9216
    prompts, half a minute of work here: seen as the server's CPU time growing): the request is given a second,
    then fails on the client's side with one line and nothing published; the server exits 0, promptly."""
    from PIL import Image

    picture = tmp_path / "image.png"
    Image.fromarray(image()).save(picture)
    running = Server(served_model, tmp_path / "server.log", drain_seconds=1.0, max_seconds=300, max_requests=50)
    try:
        idle = running.cpu_seconds()
        client = subprocess.Popen([sys.executable, "-m", "trt_runtime", "everything", "--server", running.url, "--image",
                                   str(picture), "--points-per-side", "96", "--output", str(tmp_path / "out")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + 120
        while running.cpu_seconds() - idle < 1.5:  # decoding
            assert time.monotonic() < deadline and client.poll() is None, client.communicate()
            time.sleep(0.2)
        assert client.poll() is None  # still waiting for its answer
    finally:
        stopped_at = time.monotonic()
        code = running.stop()
    out, err = client.communicate(timeout=120)
    assert client.returncode != 0, out
    assert err.strip().count("\n") == 0 and "error:" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert code == 0, running.tail()
    assert time.monotonic() - stopped_at < 30


def test_sessions_are_bounded_and_evicted_without_a_server():
    """The session table alone, on a fake clock: the limit, idle eviction and the reasons a late request is told."""
    from trt_runtime.serving.server import Session, Sessions

    now = [0.0]
    released: list = []
    sessions = Sessions(2, 10.0, released.append, clock=lambda: now[0])
    make = lambda: Session(state=None, tracker=None, last_seen=now[0])  # noqa: E731
    sessions.start(1, make)
    sessions.start(2, make)
    with pytest.raises(NanoSam2Error, match="holds 2 tracking sessions"):
        sessions.start(3, make)
    now[0] = 6.0
    sessions.get(2)
    now[0] = 11.0
    assert sessions.evict_idle() == [1] and len(released) == 1
    with pytest.raises(NanoSam2Error, match="evicted after 10 s"):
        sessions.get(1)
    sessions.end(2, "was ended by its client")
    with pytest.raises(NanoSam2Error, match="ended by its client"):
        sessions.get(2)
    sessions.start(1, make)  # an id may be used again once it ended
    sessions.close()
    assert len(released) == 3 and not sessions.live


def test_the_readme_table_is_the_protocol():
    from trt_runtime.serving.protocol import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "trt_runtime" / "README.md").read_text()
    assert markdown_table() in readme


def test_the_readmes_tritonclient_example_runs(server, tmp_path):
    """The ten lines of the README, as written, against the server (its address and a real image swapped in)."""
    from PIL import Image

    readme = (Path(__file__).resolve().parents[1] / "trt_runtime" / "README.md").read_text()
    code = readme.split("Ten lines of tritonclient", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 12
    Image.fromarray(image(480, 640)).save(tmp_path / "photo.jpg")
    code = code.replace("gpu-box:8000", f"127.0.0.1:{server.http}").replace('"photo.jpg"', repr(str(tmp_path / "photo.jpg")))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented example itself
    assert scope["masks"].shape == (1, 1, 480, 640) and scope["masks"].dtype == bool and scope["masks"].any()


def _result(per_client_s: float = 2.0) -> dict:
    rows = [{"clients": n, "requests": 6 * n, "per_s": per_client_s, "p50_ms": 500.0 * n, "p99_ms": 600.0 * n,
             "mean_ms": 520.0 * n} for n in (1, 2, 4, 8)]
    return {"model_dir": "x", "image_hw": [480, 640], "clients": [1, 2, 4, 8], "requests_per_client": 6, "frames": 8,
            "in_process_image": {"clients": 1, "requests": 12, "per_s": 2.1, "p50_ms": 470.0, "p99_ms": 600.0},
            "in_process_track": {"clients": 1, "frames": 7, "per_s": 0.5, "p50_ms": 2200.0, "p99_ms": 2900.0},
            "bank_bytes_per_session": 8 << 20, "image": {"on": rows, "off": rows}, "track": rows,
            "session_rss_bytes": [1 << 30, 3 << 30, 3 << 30, (3 << 30) + (4 << 20), (3 << 30) + (9 << 20)]}


def test_serving_benchmark_table_states_the_targets_as_ratios(tmp_path):
    from benchmarks.serve import checks, markdown, plot

    result = _result()
    result["checks"] = checks(result)
    assert result["checks"]["overhead_one_client"] == pytest.approx(500 / 470 - 1)
    assert result["checks"]["throughput_most_clients_vs_one"] == pytest.approx(1.0)
    assert result["checks"]["rss_per_session_over_bank"] == pytest.approx(4.5 / 8)
    table = markdown(result)
    assert "| image, served | 8 | off |" in table and "+6.4 % of in-process p50 (target <= 10 %)" in table
    plot(result, tmp_path / "serve.png")
    assert (tmp_path / "serve.png").stat().st_size > 1000


@pytest.mark.slow
def test_serving_benchmark_runs_end_to_end(served_model, tmp_path):
    """benchmarks/serve.py against real servers (batching on and off), two clients, a few requests."""
    from benchmarks.serve import run

    result = run(served_model, tmp_path, [1, 2], requests=2, frames=3, height=240, width=320)
    assert [row["clients"] for row in result["image"]["off"]] == [1, 2]
    assert all(row["per_s"] > 0 for row in result["track"]) and len(result["session_rss_bytes"]) == 7
    assert len(list(tmp_path.glob("serve-*.md"))) == 1
