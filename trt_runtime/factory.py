"""Build a ``Predictor`` from two files; the backend follows the file type unless overridden."""

from __future__ import annotations

import argparse
import os
from typing import Any

from nanosam2 import contract as C
from trt_runtime.predictor import Predictor
from trt_runtime.runners.base import BACKENDS, backend_for, open_runner


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every runtime command shares."""
    group = parser.add_argument_group("backend")
    group.add_argument("--encoder", required=True, help="image encoder: .engine/.plan (TensorRT), .onnx (ONNX Runtime) "
                                                        "or .pt/.pth (PyTorch, nanosam2 checkpoint)")
    group.add_argument("--decoder", required=True, help="prompt encoder + mask decoder, same file types as --encoder")
    group.add_argument("--backend", choices=BACKENDS, help="override the backend implied by the file suffixes")
    group.add_argument("--provider", default="cpu", choices=("cpu", "cuda", "tensorrt"),
                       help="ONNX Runtime execution provider (default cpu)")
    group.add_argument("--device", help="PyTorch device (default: cuda if available, else cpu)")
    group.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="PyTorch autocast dtype (default fp32)")
    group.add_argument("--compile", action="store_true", help="PyTorch: torch.compile both graphs")
    group.add_argument("--config", help="PyTorch: config of a Meta SAM2.1 checkpoint, e.g. sam2.1_hiera_s "
                                        "(nanosam2 checkpoints carry their own)")
    group.add_argument("--cuda-graph", action="store_true", help="TensorRT: capture the encoder in a CUDA graph")


def runner_options(kind: str, args: Any) -> dict[str, Any]:
    if kind == "onnxruntime":
        return {"provider": args.provider}
    if kind == "torch":
        return {"device": args.device, "dtype": args.dtype, "compile": args.compile, "config": args.config}
    return {}


def load_predictor(encoder: str | os.PathLike[str], decoder: str | os.PathLike[str], backend: str | None = None,
                   args: Any = None, **options: Any) -> Predictor:
    """Open both graphs; ``args`` (from :func:`add_backend_arguments`) or ``options`` set backend flags."""
    runners = []
    for path, graph in ((encoder, C.ENCODER), (decoder, C.DECODER)):
        kind = backend_for(path, backend)
        opts = runner_options(kind, args) if args is not None else dict(options)
        if kind == "tensorrt" and args is not None and graph == C.ENCODER:
            opts["cuda_graph"] = args.cuda_graph
        runners.append(open_runner(path, kind, graph=graph, **opts))
    return Predictor(runners[0], runners[1])
