"""Serving benchmark: nanosam2 on Triton (``python -m trt_runtime serve``) against 1, 2, 4 and 8 concurrent clients,
with the in-process figures of the same graphs in the same run.

    python -m benchmarks.serve [--model-dir DIR | --backbone resnet18 --image-size 1024] [--clients 1,2,4,8]
                               [--requests 6] [--frames 8] [--output-dir benchmarks/results]
    benchmarks/run_all.sh --serve ...      (the same)

Image requests (one image and a box per request; every client its own images), dynamic batching on (--max-batch 8)
and off (--max-batch 1): images/s, p50/p99 latency. Tracking (one session per client, one object, frames in
order): tracked frames/s and p50/p99 per frame. Memory: the serving process's RSS for each added tracking session
(bank full) against one session's bank as the tracker counts it. In-process: the same graphs in this process,
the same requests one after another. Writes serve-HOST-DATE.{json,md,png}; the targets of issue 34 are checked
in the table (ratios of one run, never absolute numbers against a constant).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nanosam2 import contract as C
from nanosam2.utils.cli import ArgumentParser, positive_int, setup_logging


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    values = np.asarray(latencies_ms, np.float64)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "mean_ms": float(values.mean())}


def _images(count: int, height: int, width: int) -> list[np.ndarray]:
    from nanosam2.samples import make_frames

    frames = make_frames(count, height, width)
    return [np.ascontiguousarray(np.roll(np.asarray(f), 13 * k, axis=1)) for k, f in enumerate(frames)]


BOX = np.array([[40.0, 30.0, 220.0, 200.0]])


def in_process_images(model_dir: Path, images: list[np.ndarray], runs: int) -> dict[str, Any]:
    from nanosam2.inference.factory import find_graphs, load_image_predictor

    with load_image_predictor(find_graphs(model_dir, (C.ENCODER, C.DECODER))) as predictor:
        predictor.set_image(images[0])
        predictor.predict_prompts(predictor.build_prompts(boxes=BOX), False)  # warm-up
        latencies = []
        start = time.perf_counter()
        for k in range(runs):
            began = time.perf_counter()
            predictor.set_image(images[k % len(images)])
            predictor.predict_prompts(predictor.build_prompts(boxes=BOX), False)
            latencies.append(1000 * (time.perf_counter() - began))
        seconds = time.perf_counter() - start
    return {"clients": 1, "requests": runs, "per_s": runs / seconds, **percentiles(latencies)}


def concurrent(clients: int, setup: Callable[[int], Any],
               work: Callable[[Any, int, list[float]], None]) -> tuple[list[float], float]:
    """In ``clients`` threads: ``setup(client)`` (its own connection: tritonclient's HTTP client belongs to the thread
    that made it), then, all threads together, ``work(state, client, latencies)``; every latency and the wall time."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def run(k: int) -> None:
        state = None
        try:
            state = setup(k)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        barrier.wait(300)
        try:
            if state is not None:
                work(state, k, latencies[k])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if state is not None:
                state.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait(300)
    start = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [x for part in latencies for x in part], time.perf_counter() - start


def served_images(url: str, images: list[np.ndarray], clients: int, requests: int) -> dict[str, Any]:
    from trt_runtime.serving.client import RemotePredictor

    def setup(k: int) -> Any:
        remote = RemotePredictor(url)
        remote.set_image(images[0])
        remote.predict_prompts(remote.build_prompts(boxes=BOX), False)  # warm-up
        return remote

    def work(remote: Any, k: int, latencies: list[float]) -> None:
        for r in range(requests):
            began = time.perf_counter()
            remote.set_image(images[(k * requests + r) % len(images)])
            remote.predict_prompts(remote.build_prompts(boxes=BOX), False)
            latencies.append(1000 * (time.perf_counter() - began))

    latencies, seconds = concurrent(clients, setup, work)
    return {"clients": clients, "requests": len(latencies), "per_s": len(latencies) / seconds, **percentiles(latencies)}


def _clip(frames: int, seed: int, height: int, width: int) -> list[np.ndarray]:
    return [np.roll(f, 11 * seed, axis=1) for f in _images(frames, height, width)]


PROMPT = {0: [{"obj_id": 1, "box": [40, 30, 220, 200]}]}


def in_process_tracking(model_dir: Path, frames: int, height: int, width: int) -> tuple[dict[str, Any], int]:
    """Per-frame latency of one stream here, and the bank bytes of one object once full."""
    from nanosam2.inference.factory import find_graphs, load_video_predictor

    with load_video_predictor(find_graphs(model_dir, C.TRACKER_GRAPHS)) as tracker:
        latencies = []
        began = time.perf_counter()
        for _ in tracker.track_stream(_clip(frames, 0, height, width), PROMPT, num_frames=frames):
            latencies.append(1000 * (time.perf_counter() - began))
            began = time.perf_counter()
        held = tracker.memory_size(tracker.stream_state)
        bank = max(held["bytes"], held["device_bytes"])  # the ring's rows are both where the ring is preallocated
    steady = latencies[1:] or latencies
    return {"clients": 1, "frames": len(steady), "per_s": 1000 / float(np.mean(steady)), **percentiles(steady)}, bank


def served_tracking(url: str, clients: int, frames: int, height: int, width: int) -> dict[str, Any]:
    from trt_runtime.serving.client import RemoteTracker

    clips = [_clip(frames, k, height, width) for k in range(clients)]

    def work(tracker: Any, k: int, latencies: list[float]) -> None:
        began = time.perf_counter()
        for index, _ in enumerate(tracker.track_stream(clips[k], PROMPT, num_frames=frames)):
            if index:  # the first frame carries the prompt and the session's start
                latencies.append(1000 * (time.perf_counter() - began))
            began = time.perf_counter()

    latencies, seconds = concurrent(clients, lambda k: RemoteTracker(url), work)
    return {"clients": clients, "frames": len(latencies) + clients, "per_s": (len(latencies) + clients) / seconds,
            **percentiles(latencies)}


def session_memory(server: Any, sessions: int, frames: int, height: int, width: int) -> tuple[list[int], list[Any]]:
    """The serving process's RSS before and after one warm-up session, then with 0..``sessions`` sessions open, each
    with a full bank (``frames`` tracked); GPU memory (on a GPU) with 0..``sessions`` open."""
    from trt_runtime.serving.client import RemoteTracker

    warm = [server.rss_bytes()]
    for _ in RemoteTracker(server.url).track_stream(_clip(frames + 1, 99, height, width), PROMPT):
        pass  # one whole session first: the runtime's arenas and the worker threads' heaps grow once per server
    warm.append(server.rss_bytes())
    rss, gpu = [server.rss_bytes()], [server.gpu_bytes()]
    streams = []
    for k in range(sessions):
        stream = RemoteTracker(server.url).track_stream(_clip(frames + 1, k, height, width), PROMPT)
        for _ in range(frames):
            next(stream)
        streams.append(stream)
        rss.append(server.rss_bytes())
        gpu.append(server.gpu_bytes())
    for stream in streams:
        for _ in stream:  # the last frame and the session's end
            pass
    return warm + rss, gpu


def run(model_dir: Path, output_dir: Path, clients: Sequence[int], requests: int, frames: int,
        height: int = 480, width: int = 640) -> dict[str, Any]:
    from trt_runtime.serving.process import ServerProcess

    output_dir.mkdir(parents=True, exist_ok=True)
    images = _images(max(clients) * requests + 1, height, width)
    result: dict[str, Any] = {"model_dir": str(model_dir), "image_hw": [height, width], "clients": list(clients),
                              "requests_per_client": requests, "frames": frames}
    print("in-process image requests ...", flush=True)
    result["in_process_image"] = in_process_images(model_dir, images, requests * 2)
    tracking_here, bank = in_process_tracking(model_dir, frames, height, width)
    result["in_process_track"], result["bank_bytes_per_session"] = tracking_here, bank
    log = output_dir / "serve-server.log"
    for batching, most in (("on", 8), ("off", 1)):
        server = ServerProcess(model_dir, log, max_batch=most, max_sessions=max(clients) + 8, max_seconds=3600)
        try:
            if batching == "on":  # first, on a fresh server: later sessions reuse memory the earlier ones freed
                print("memory per tracking session ...", flush=True)
                result["session_rss_bytes"], result["session_gpu_bytes"] = session_memory(server, 4, 8, height, width)
            for n in clients:
                print(f"image requests, dynamic batching {batching}, {n} client(s) ...", flush=True)
                result.setdefault("image", {}).setdefault(batching, []).append(served_images(server.url, images, n,
                                                                                             requests))
            if batching == "on":
                for n in clients:
                    print(f"tracking, {n} session(s) ...", flush=True)
                    result.setdefault("track", []).append(served_tracking(server.url, n, frames, height, width))
        finally:
            server.stop()
    result["checks"] = checks(result)
    stem = f"serve-{_host()}-{date.today().isoformat()}"
    (output_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (output_dir / f"{stem}.md").write_text(markdown(result))
    plot(result, output_dir / f"{stem}.png")
    print(markdown(result))
    print(f"wrote {output_dir / stem}.{{json,md,png}}")
    return result


def _host() -> str:
    import socket

    return socket.gethostname().split(".")[0]


def checks(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 34's targets as ratios of this run."""
    one = result["image"]["on"][0]
    most = result["image"]["on"][-1]
    here = result["in_process_image"]
    rss = result["session_rss_bytes"][2:]  # after the warm-up session
    per_session = float(np.median(np.diff(rss))) if len(rss) > 1 else float("nan")
    return {
        "overhead_one_client": one["p50_ms"] / here["p50_ms"] - 1,  # target <= 0.10
        "throughput_most_clients_vs_one": most["per_s"] / one["per_s"],  # target >= 0.90
        "p99_over_p50_most_clients": most["p99_ms"] / most["p50_ms"],  # target <= 3
        "rss_per_session_over_bank": per_session / result["bank_bytes_per_session"],  # target <= 1
    }


def markdown(result: dict[str, Any]) -> str:
    here, track_here = result["in_process_image"], result["in_process_track"]
    lines = [f"Serving ({result['model_dir']}; {result['image_hw'][1]}x{result['image_hw'][0]} images, one box each; "
             f"{result['requests_per_client']} requests per client; tracking {result['frames']} frames, one object)", "",
             "| work | clients | dynamic batching | per s | p50 ms | p99 ms |", "| --- | ---: | --- | ---: | ---: | ---: |",
             f"| image, in-process | 1 | - | {here['per_s']:.2f} | {here['p50_ms']:.1f} | {here['p99_ms']:.1f} |"]
    for batching in ("on", "off"):
        for row in result["image"][batching]:
            lines.append(f"| image, served | {row['clients']} | {batching} | {row['per_s']:.2f} | {row['p50_ms']:.1f} | "
                         f"{row['p99_ms']:.1f} |")
    lines.append(f"| track, in-process (frames) | 1 | - | {track_here['per_s']:.2f} | {track_here['p50_ms']:.1f} | "
                 f"{track_here['p99_ms']:.1f} |")
    for row in result["track"]:
        lines.append(f"| track, served (frames) | {row['clients']} | - | {row['per_s']:.2f} | {row['p50_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} |")
    c = result["checks"]
    warm, rss = result["session_rss_bytes"][:2], result["session_rss_bytes"][2:]
    lines += ["", f"- serving overhead, one client: {100 * c['overhead_one_client']:+.1f} % of in-process p50 (target <= 10 %)",
              f"- {result['clients'][-1]} clients: {100 * c['throughput_most_clients_vs_one']:.0f} % of one client's "
              f"images/s (target >= 90 %), p99 = {c['p99_over_p50_most_clients']:.2f} x p50 (target <= 3)",
              f"- host RSS of the serving process: {warm[0] / 2**20:.0f} MiB idle, +{(warm[1] - warm[0]) / 2**20:.0f} MiB after "
              "its first tracking session (the runtime's arenas and worker heaps, once per server)",
              f"- host RSS per added tracking session (bank full): "
              f"{', '.join(f'+{d / 2**20:.0f}' for d in np.diff(rss))} MiB, median "
              f"{np.median(np.diff(rss)) / 2**20:.2f} MiB; one session's "
              f"bank {result['bank_bytes_per_session'] / 2**20:.2f} MiB: ratio {c['rss_per_session_over_bank']:.2f} "
              "(target <= 1)"]
    gpu = result.get("session_gpu_bytes") or []
    if gpu and all(v is not None for v in gpu):
        lines.append(f"- GPU memory per added tracking session: {np.median(np.diff(gpu)) / 2**20:.2f} MiB (nvidia-smi): "
                     "what bounds the cameras a box takes")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for batching, style in (("on", "-o"), ("off", "--s")):
        rows = result["image"][batching]
        axes[0].plot([r["clients"] for r in rows], [r["per_s"] for r in rows], style, label=f"images/s, batching {batching}")
        axes[1].plot([r["clients"] for r in rows], [r["p99_ms"] for r in rows], style, label=f"image p99, batching {batching}")
    axes[0].plot([r["clients"] for r in result["track"]], [r["per_s"] for r in result["track"]], "-^", label="tracked frames/s")
    axes[0].axhline(result["in_process_image"]["per_s"], color="grey", lw=0.8, label="images/s in-process")
    axes[1].plot([r["clients"] for r in result["track"]], [r["p99_ms"] for r in result["track"]], "-^", label="frame p99")
    for ax, label in ((axes[0], "per second"), (axes[1], "ms")):
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_for(backbone: str, image_size: int, folder: Path) -> Path:
    """An export of ``backbone`` (random weights, said loudly by the exporter) at ``image_size``, made once."""
    if (folder / "image_encoder.onnx").is_file() and (folder / "memory_encoder.onnx").is_file():
        return folder
    from export.exporter import export_backbone

    export_backbone(backbone, folder, None, verify=False, image_size=image_size)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, help="an export folder (default: export --backbone at --image-size)")
    parser.add_argument("--backbone", default="resnet18", help="default resnet18")
    parser.add_argument("--image-size", type=positive_int, default=1024, help="model input size (default 1024)")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrent clients (default 1,2,4,8)")
    parser.add_argument("--requests", type=positive_int, default=6, help="image requests per client (default 6)")
    parser.add_argument("--frames", type=positive_int, default=8, help="frames per tracking session (default 8)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.serve", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"), help="where results go")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return serve_benchmark(args)


def serve_benchmark(args: argparse.Namespace) -> int:
    clients = [int(c) for c in str(args.clients).split(",")]
    model_dir = args.model_dir or export_for(args.backbone, args.image_size,
                                             args.output_dir / "exports" / f"{args.backbone}-{args.image_size}")
    run(model_dir, args.output_dir, clients, args.requests, args.frames)
    return 0


if __name__ == "__main__":
    from nanosam2.utils.cli import run_cli

    raise SystemExit(run_cli(main))
