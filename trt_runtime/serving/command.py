"""``python -m trt_runtime serve``, and the ``--server URL`` flag of the other commands.

    serve --model-dir DIR [graph and backend flags] [--host H] [--http-port N --grpc-port N --metrics-port N]
          [--max-sessions N] [--session-timeout S] [--max-batch N] [--max-requests N] [--max-seconds S]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import non_negative_float, non_negative_int, positive_float, positive_int

SERVED_GRAPHS = (*C.IMAGE_GRAPHS, *(g for g in C.TRACKER_GRAPHS if g not in C.IMAGE_GRAPHS))
OPTIONAL_IN_MODEL_DIR = (C.MEMORY_ATTENTION, C.MEMORY_ENCODER)  # without them: no track model


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {text}")
    return value


def add_server_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--server URL`` on a command: ``what`` runs on a nanosam2 server instead of here."""
    parser.add_argument("--server", metavar="URL",
                        help=f"send {what} to a running nanosam2 server (python -m trt_runtime serve): http://HOST:PORT "
                             "or grpc://HOST:PORT; the outputs and records are a local run's, the server's graphs "
                             "recorded; the graph and backend flags are then the server's business")


def add_commands(sub: argparse._SubParsersAction) -> None:
    from nanosam2.inference.factory import add_backend_arguments, add_graph_arguments

    serve = sub.add_parser("serve", help="serve image, everything and tracking requests on Triton Inference Server "
                                         "(PyTriton): many clients, many cameras")
    serve.add_argument("--model-dir", help="an export folder or a folder of engines built from it: the image graphs, "
                                           "and the tracker's where present (graph flags override one)")
    add_graph_arguments(serve, SERVED_GRAPHS)
    add_backend_arguments(serve)
    net = serve.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    net.add_argument("--http-port", type=port, default=8000, help="default 8000")
    net.add_argument("--grpc-port", type=port, default=8001, help="default 8001")
    net.add_argument("--metrics-port", type=port, default=8002, help="Prometheus metrics (default 8002)")
    net.add_argument("--max-sessions", type=positive_int, default=16,
                     help="tracking sessions at once (default 16); more are refused with the limit named")
    net.add_argument("--session-timeout", type=positive_float, default=60.0,
                     help="seconds without a request after which a tracking session is evicted, its memory freed "
                          "(default 60)")
    net.add_argument("--max-batch", type=positive_int, default=8,
                     help="images of concurrent image requests per encoder call (Triton's dynamic batching; "
                          "default 8, 1: off)")
    net.add_argument("--batch-delay-us", type=non_negative_int, default=2000,
                     help="how long an image request waits for others to batch with (default 2000 us)")
    net.add_argument("--drain-seconds", type=non_negative_float, default=10.0,
                     help="on SIGTERM/SIGINT: new requests are refused at once and running ones get this long to "
                          "finish, then fail on their clients' side (Triton's --exit-timeout-secs; default 10)")
    net.add_argument("--max-requests", type=positive_int, help="stop after N requests (tests, benchmarks)")
    net.add_argument("--max-seconds", type=positive_float, help="stop after S seconds")
    serve.set_defaults(run=run_serve)


def served_paths(args: argparse.Namespace) -> dict[str, Any]:
    from nanosam2.inference.factory import find_graphs, graph_paths

    given = graph_paths(args, SERVED_GRAPHS)
    paths: dict[str, Any] = {}
    if args.model_dir:
        if Path(args.model_dir).is_file():
            paths = {g: args.model_dir for g in (C.ENCODER, C.DECODER, *OPTIONAL_IN_MODEL_DIR)}  # a checkpoint
        else:
            paths = dict(find_graphs(args.model_dir, (C.ENCODER, C.DECODER)))
            for graph in OPTIONAL_IN_MODEL_DIR:
                try:
                    paths.update(find_graphs(args.model_dir, (graph,)))
                except NanoSam2Error:
                    pass
    paths.update(given)
    missing = [C.GRAPH_SPECS[g].flag for g in (C.ENCODER, C.DECODER) if g not in paths]
    if missing:
        raise NanoSam2Error(f"give --model-dir, or {' and '.join(missing)}")
    if (C.MEMORY_ATTENTION in paths) != (C.MEMORY_ENCODER in paths):
        raise NanoSam2Error("the tracker needs both the memory_attention and the memory_encoder graphs")
    return paths


def settings_from_args(args: argparse.Namespace) -> Any:
    from trt_runtime.serving.server import ServeSettings

    return ServeSettings(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                         metrics_port=args.metrics_port, max_sessions=args.max_sessions,
                         session_timeout=args.session_timeout, max_batch=args.max_batch,
                         batch_delay_us=args.batch_delay_us, max_requests=args.max_requests,
                         max_seconds=args.max_seconds, drain_seconds=args.drain_seconds)


def open_models(paths: dict[str, Any], options: Any, settings: Any) -> Any:
    """The serving logic over the graphs (one runner per file: a graph the image and the video predictors share
    is opened once)."""
    from nanosam2.inference.factory import open_pipeline
    from trt_runtime.serving.server import NanoSam2Models

    return open_pipeline(paths, options, lambda runners: NanoSam2Models(runners, settings))


def run_serve(args: argparse.Namespace) -> int:
    from nanosam2.inference.factory import options_from_args
    from nanosam2.utils.lazy_import import require

    require("pytriton.triton", "serve")
    return serve_export(served_paths(args), options_from_args(args), settings_from_args(args))


def serve_export(paths: dict[str, Any], options: Any, settings: Any) -> int:
    """Serve the graphs ``paths`` until stopped (the ``serve`` command; a child process of ``ServerProcess``)."""
    from trt_runtime.serving.server import serve

    models = open_models(paths, options, settings)

    def ready(names: list[str]) -> None:
        graphs = ", ".join(f"{g}={Path(p).name}" for g, p in paths.items())
        print(f"serving {', '.join(names)} ({graphs}) on http://{settings.host}:{settings.http_port} and "
              f"grpc://{settings.host}:{settings.grpc_port}; metrics on :{settings.metrics_port}/metrics", flush=True)

    code = serve(models, settings, ready)
    if models.in_flight:  # a request the drain gave up on: its thread must not hold the exit
        import logging
        import os
        import sys

        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def model_dir_paths(model_dir: str | Path) -> dict[str, Any]:
    """The graphs ``serve --model-dir`` takes from a folder (or a checkpoint)."""
    return served_paths(argparse.Namespace(model_dir=str(model_dir), **{g: None for g in SERVED_GRAPHS}))
