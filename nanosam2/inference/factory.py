"""Open runners and predictors from files; the backend follows the file type unless overridden."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.records import ENGINE_SUFFIXES
from nanosam2.inference.runner import Runner
from nanosam2.utils.tensorrt_flavour import FLAVOURS
from nanosam2.inference.predictor import Predictor

BACKEND_BY_SUFFIX = {**dict.fromkeys(ENGINE_SUFFIXES, "tensorrt"), ".onnx": "onnxruntime", ".pt": "torch",
                     ".pth": "torch"}
BACKENDS = ("tensorrt", "onnxruntime", "torch")
PROVIDERS = ("cpu", "cuda", "tensorrt")
DTYPES = ("fp32", "fp16", "bf16")


@dataclass
class BackendOptions:
    """Backend settings shared by every runtime command (each backend reads its own)."""

    backend: str | None = None  # override the backend the file suffix implies
    provider: str = "cpu"  # ONNX Runtime execution provider
    device: str | None = None  # PyTorch device (default: cuda if available, else cpu)
    dtype: str = "fp32"  # PyTorch autocast dtype
    compile: bool = False  # PyTorch: torch.compile
    config: str | None = None  # PyTorch: config of a Meta SAM2.1 checkpoint
    cuda_graph: bool = False  # TensorRT: replay set_image and predict from CUDA graphs
    trt_flavour: str | None = None  # TensorRT: "tensorrt" | "rtx" | None (whichever is installed)
    runtime_cache: str | None = None  # TensorRT-RTX: file of just-in-time compiled kernels, kept between runs

    def for_backend(self, kind: str) -> dict[str, Any]:
        """``open_runner``'s settings for a backend. TensorRT runners get none here: they share the
        pipeline's ``EngineStream`` (:func:`open_pipeline`), which carries ``cuda_graph``,
        ``trt_flavour`` and ``runtime_cache``."""
        if kind == "onnxruntime":
            return {"provider": self.provider}
        if kind == "torch":
            return {"device": self.device, "dtype": self.dtype, "compile": self.compile, "config": self.config}
        return {}


def backend_for(path: str | os.PathLike[str], backend: str | None = None) -> str:
    """The backend named by ``backend``, else the one the file's suffix implies."""
    if backend:
        if backend not in BACKENDS:
            raise NanoSam2Error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        return backend
    suffix = Path(path).suffix.lower()
    if suffix not in BACKEND_BY_SUFFIX:
        raise NanoSam2Error(f"cannot tell the backend of {path} from its suffix; pass --backend {'|'.join(BACKENDS)}")
    return BACKEND_BY_SUFFIX[suffix]


def open_runner(path: str | os.PathLike[str], backend: str | None = None, graph: str | None = None,
                **options: Any) -> Runner:
    """Open ``path`` with the right runner (imports only that backend).

    ``graph`` (``image_encoder`` / ``mask_decoder``) tells the PyTorch backend which graph of a
    checkpoint to run; the other backends read it from the file and check it.
    """
    kind = backend_for(path, backend)
    if kind == "onnxruntime":
        from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, **options)
    if kind == "tensorrt":
        from nanosam2.inference.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, **options)
    from nanosam2.inference.torch_runner import TorchRunner

    if graph is None:
        raise NanoSam2Error("the PyTorch backend needs to know which graph to run (image_encoder or mask_decoder)")
    return TorchRunner(path, graph=graph, **options)


def load_image_predictor(paths: dict[str, str | os.PathLike[str]], options: BackendOptions | None = None) -> Predictor:
    """:func:`load_predictor` over {graph: file} (the image graphs of the table; pre/post-processing optional)."""
    return load_predictor(paths[C.ENCODER], paths[C.DECODER], options, paths.get(C.PREPROCESS), paths.get(C.POSTPROCESS))


def load_predictor(encoder: str | os.PathLike[str], decoder: str | os.PathLike[str],
                   options: BackendOptions | None = None, preprocess: str | os.PathLike[str] | None = None,
                   postprocess: str | os.PathLike[str] | None = None) -> Predictor:
    """Open the graphs (refusing any that come from another model). ``preprocess`` / ``postprocess``
    are the optional pre/post-processing graphs of the same export (or engines built from them):
    with them, resizing and mask upsampling run on the backend instead of in numpy."""
    paths = {C.ENCODER: encoder, C.DECODER: decoder, C.PREPROCESS: preprocess, C.POSTPROCESS: postprocess}
    return open_pipeline({g: p for g, p in paths.items() if p is not None}, options or BackendOptions(),
                         lambda r: Predictor(r[C.ENCODER], r[C.DECODER], r.get(C.PREPROCESS), r.get(C.POSTPROCESS)))


def open_pipeline(paths: dict[str, Any], options: BackendOptions, make: Any) -> Any:
    """Open each graph's runner (TensorRT engines share one stream, so their CUDA graphs span engines)
    and ``make(runners)``; on any failure every runner opened so far is closed."""
    runners: dict[str, Runner] = {}
    stream: Any = None
    check_options(options, {backend_for(path, options.backend) for path in paths.values()})
    try:
        for graph, path in paths.items():
            kind = backend_for(path, options.backend)
            settings = options.for_backend(kind)
            if kind == "tensorrt":
                from nanosam2.inference.tensorrt_runner import open_engine_stream

                stream = stream or open_engine_stream(options.cuda_graph, options.trt_flavour, options.runtime_cache)
                settings["stream"] = stream
            runners[graph] = open_runner(path, kind, graph=graph, **settings)
        return make(runners)
    except BaseException:
        for runner in runners.values():
            runner.close()
        if stream is not None and not stream.users:
            stream.close()
        raise


def check_options(options: BackendOptions, kinds: set[str]) -> None:
    """Refuse, in one line, every option that no chosen backend reads (it was accepted and ignored)."""
    unused = {
        "tensorrt": [flag for flag, given in (("--cuda-graph", options.cuda_graph), ("--trt-flavour", options.trt_flavour),
                                              ("--runtime-cache", options.runtime_cache)) if given],
        "onnxruntime": ["--provider"] if options.provider != "cpu" else [],
        "torch": [flag for flag, given in (("--dtype", options.dtype != "fp32"), ("--compile", options.compile),
                                           ("--device", options.device), ("--config", options.config)) if given],
    }
    names = {"tensorrt": "TensorRT engine", "onnxruntime": "ONNX graph", "torch": "PyTorch checkpoint"}
    for kind, flags in unused.items():
        if flags and kind not in kinds:
            raise NanoSam2Error(f"{' and '.join(flags)}: {'an option' if len(flags) == 1 else 'options'} of the "
                                f"{kind} backend, and no graph given is a {names[kind]}; leave "
                                f"{'it' if len(flags) == 1 else 'them'} out")


GRAPH_SUFFIXES = (*ENGINE_SUFFIXES, ".onnx")
def find_graphs(model_dir: str | os.PathLike[str], graphs: tuple[str, ...]) -> dict[str, Path]:
    """The file of each of ``graphs`` in an export folder (``python -m export.onnx``) or a folder of
    engines built from one: ``<graph>.engine`` before ``<graph>.onnx``, then one other precision
    (``<graph>.fp16.onnx``) when it is the only one; two candidates are an error that names them."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise NanoSam2Error(f"--model-dir {folder} is not a folder (give an export folder or a folder of engines)")
    found: dict[str, Path] = {}
    for graph in graphs:
        exact = [folder / f"{graph}{suffix}" for suffix in GRAPH_SUFFIXES if (folder / f"{graph}{suffix}").is_file()]
        if exact:
            found[graph] = exact[0]
            continue
        others = sorted(p for p in folder.iterdir() if p.name.startswith(f"{graph}.") and p.suffix in GRAPH_SUFFIXES)
        if len(others) != 1:
            flag = C.GRAPH_SPECS[graph].flag
            if not others:
                raise NanoSam2Error(f"{folder}: no file of the {graph} graph; export the model again with "
                                    f"`python -m export.onnx` (it writes every graph) or pass {flag}")
            raise NanoSam2Error(f"{folder}: {len(others)} files of the {graph} graph "
                                f"({', '.join(p.name for p in others)}); choose one with {flag}")
        found[graph] = others[0]
    return found


def load_video_predictor(paths: dict[str, str | os.PathLike[str]], options: BackendOptions | None = None,
                         config: Any = None) -> Any:
    """A torch-free ``VideoPredictor`` over the four graphs of one export ({graph: file}), each on the
    backend its file implies (refusing graphs of different models); ``config``: its ``TrackerConfig``
    (default Meta's video predictor's)."""
    from nanosam2.inference.video import VideoPredictor

    graphs = C.TRACKER_GRAPHS
    missing = [g for g in graphs if g not in paths]
    if missing:
        raise NanoSam2Error(f"the tracker needs the {', '.join(missing)} graph(s) too")
    return open_pipeline({g: paths[g] for g in graphs}, options or BackendOptions(),
                         lambda r: VideoPredictor(*(r[g] for g in graphs), config))


def add_graph_arguments(parser: argparse.ArgumentParser, graphs: tuple[str, ...],
                        required: tuple[str, ...] = ()) -> None:
    """One flag per graph of ``graphs``, from the table (``GraphSpec.flag`` and ``help``); read back with
    :func:`graph_paths`. A new graph in the table is a new flag of every command that runs it."""
    group = parser.add_argument_group("graphs")
    for graph in graphs:
        spec = C.GRAPH_SPECS[graph]
        group.add_argument(spec.flag, dest=graph, required=graph in required, help=spec.help)


def graph_paths(args: argparse.Namespace, graphs: tuple[str, ...]) -> dict[str, str]:
    """{graph: file} of the graph flags given (:func:`add_graph_arguments`)."""
    return {graph: getattr(args, graph) for graph in graphs if getattr(args, graph, None)}


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The backend flags every runtime command shares (read back with :func:`options_from_args`)."""
    group = parser.add_argument_group("backend")
    group.add_argument("--backend", choices=BACKENDS, help="override the backend implied by the file suffixes")
    group.add_argument("--provider", default="cpu", choices=PROVIDERS, help="ONNX Runtime execution provider (default cpu)")
    group.add_argument("--device", help="PyTorch device (default: cuda if available, else cpu)")
    group.add_argument("--dtype", default="fp32", choices=DTYPES, help="PyTorch autocast dtype (default fp32)")
    group.add_argument("--compile", action="store_true", help="PyTorch: torch.compile both graphs")
    group.add_argument("--config", help="PyTorch: config of a Meta SAM2.1 checkpoint, e.g. sam2.1_hiera_s "
                                        "(nanosam2 checkpoints carry their own)")
    group.add_argument("--cuda-graph", action="store_true",
                       help="TensorRT: capture the engine launches between two host synchronisations as one CUDA "
                            "graph and replay it: set_image (preprocess + encoder) and predict (decoder + "
                            "postprocess); when tracking, encoder + memory attention + decoder, and the memory "
                            "encoder (captured again when a shape or a buffer changes: while the bank fills)")
    group.add_argument("--trt-flavour", choices=FLAVOURS,
                       help="TensorRT engines: tensorrt (TensorRT 10/11) or rtx (TensorRT-RTX); default: the one "
                            "installed, tensorrt first (or $NANOSAM2_TRT_FLAVOUR). An engine runs only on the flavour "
                            "and release that built it")
    group.add_argument("--runtime-cache", metavar="FILE",
                       help="TensorRT-RTX: keep the kernels it compiles on this GPU in FILE (read at start, written "
                            "atomically at the end), so that later runs start fast")


def options_from_args(args: argparse.Namespace) -> BackendOptions:
    return BackendOptions(backend=args.backend, provider=args.provider, device=args.device, dtype=args.dtype,
                          compile=args.compile, config=args.config, cuda_graph=args.cuda_graph,
                          trt_flavour=args.trt_flavour, runtime_cache=args.runtime_cache)
