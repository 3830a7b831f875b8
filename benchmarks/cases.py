"""The benchmark cases, one set for every benchmark (``run_all.py``, ``gpu_check.py``): a case is one backbone
on one backend at one precision — how to open its runners — and one measuring routine times every case the
same way (warm-up, synchronised clock, median and p90, recorded as ``Measurement`` rows): the image encoder,
the decoder at 1, 16 and 64 box prompts, the predict pipeline (and the part of it outside the two graphs),
with the backend's pre/post-processing graphs when it has them, and segment everything.

    cases = torch_cases("resnet18", model, "cuda", ("fp32", "bf16"))     # or onnxruntime_cases / tensorrt_cases
    run_cases(report, cases, settings, stages=("pipeline",))
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.report import EVERYTHING, Measurement, Report
from benchmarks.tracking import MEMORY_FRAMES, VIDEO_SIZE
from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.utils.timing import time_call

logger = logging.getLogger("benchmarks.cases")
STAGES = ("encoder", "decoder", "pipeline", "everything")  # what run_cases measures, unless told fewer


@dataclass
class Settings:
    encoder_runs: int
    decoder_runs: int
    warmup: int
    work_dir: Path
    everything_points: int = 32  # points per side of the segment-everything grid (0: skip it)
    track_frames: int = 0  # frames of the synthetic tracking video (0: skip tracking)
    track_objects: tuple[int, ...] = (1, 3)
    track_size: tuple[int, int] = VIDEO_SIZE  # height, width of the tracking video
    memory_frames: tuple[int, ...] = MEMORY_FRAMES  # max_memory_frames values of the trade-off
    vos_dataset: Path | None = None  # a DAVIS-layout set: the trade-off reports J&F on it
    vos_protocol: str = "first-frame"  # eval-vos's protocol on it (later-objects: MOSE, SA-V)


def everything_params(settings: Settings) -> dict:
    """The segment-everything settings every generator (ours, Meta's) is timed with."""
    return {"points_per_side": settings.everything_points, "points_per_batch": 64, "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0, "output_mode": "uncompressed_rle"}


@functools.lru_cache(maxsize=1)
def sample_image() -> np.ndarray:
    """The bundled image, read once (callers must not modify it)."""
    from nanosam2.samples import sample_image_path
    from nanosam2.images import read_rgb

    return read_rgb(sample_image_path())


def box_prompts(count: int, hw: tuple[int, int], image_size: int = T.IMAGE_SIZE) -> T.DecoderPrompts:
    rng = np.random.default_rng(count)
    h, w = hw
    x0, y0 = rng.uniform(0, w / 2, count), rng.uniform(0, h / 2, count)
    boxes = np.stack([x0, y0, x0 + rng.uniform(20, w / 2, count), y0 + rng.uniform(20, h / 2, count)], axis=1)
    return T.build_prompts(hw, boxes=boxes.astype(np.float32), image_size=image_size)


def row_label(backbone: str, image_size: int) -> str:
    """The table's backbone column: ``resnet18`` at SAM2.1's 1024 px, ``resnet18@512`` at another size."""
    return backbone if image_size == T.IMAGE_SIZE else f"{backbone}@{image_size}"


@dataclass
class Case:
    """One backbone on one backend at one precision: ``open()`` gives its (encoder, decoder) runners and,
    where the backend has them, its (preprocess, postprocess) runners (else None); ``sync`` waits for the
    device before the clock is read (None: the runners return host arrays)."""

    backbone: str
    backend: str
    precision: str
    open: Callable[[], tuple[Any, Any, tuple[Any, Any] | None]]
    sync: Callable[[], None] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> tuple[str, str, str]:
        return self.backbone, self.backend, self.precision


def run_cases(report: Report, cases: Sequence[Case], settings: Settings, stages: Sequence[str] = STAGES) -> None:
    """Open, warm up, time and record every case, the same way for every backend."""
    from nanosam2.inference.predictor import Predictor

    for case in cases:
        encoder, decoder, pre_post = case.open()
        if "encoder" in stages or "decoder" in stages:
            measure_graphs(report, case.label, encoder, decoder, settings, case.sync, stages)
        if "pipeline" in stages:
            measure_pipeline(report, case.label, Predictor(encoder, decoder), settings, case.sync)
        if "everything" in stages:
            measure_everything(report, case.label, Predictor(encoder, decoder), settings, case.sync)
        if pre_post is not None and "pipeline" in stages:
            backbone, backend, precision = case.label
            measure_pipeline(report, (backbone, backend, f"{precision}+graphs"), Predictor(encoder, decoder, *pre_post),
                             settings, case.sync)


def measure_graphs(report: Report, label: tuple[str, str, str], encoder, decoder, settings: Settings,
                   sync: Callable[[], None] | None = None, stages: Sequence[str] = STAGES) -> None:
    """The image encoder, and the decoder with 1, 16 and 64 box prompts, of one runner pair."""
    image = sample_image()
    size = encoder.contract.image_size
    tensor = T.preprocess_image(image, size)
    if "encoder" in stages:
        enc = time_call(lambda: encoder.infer({C.IMAGE: tensor}), settings.encoder_runs, settings.warmup, sync)
        report.measurements.append(Measurement(*label, "encoder", enc.median_ms, enc.p90_ms, enc.runs))
    if "decoder" not in stages:
        return
    features = encoder.infer({C.IMAGE: tensor})
    for count in (1, 16, 64):
        prompts = box_prompts(count, image.shape[:2], size)
        feed = {**features, **C.prompt_feed(prompts)}
        runs = settings.decoder_runs if count < 64 else settings.encoder_runs  # 64 prompts cost an encoder's time
        dec = time_call(lambda feed=feed: decoder.infer(feed), runs, settings.warmup, sync)
        report.measurements.append(Measurement(*label, f"decoder_{count}", dec.median_ms, dec.p90_ms, dec.runs))


def measure_pair(report: Report, label: tuple[str, str, str], encoder, decoder, settings: Settings,
                 sync: Callable[[], None] | None = None, pre_post: tuple | None = None) -> None:
    """Every stage of one runner pair (a case opened by hand): :func:`run_cases` on it."""
    run_cases(report, [Case(*label, lambda: (encoder, decoder, pre_post), sync)], settings)


def measure_pipeline(report: Report, label: tuple[str, str, str], predictor, settings: Settings,
                     sync: Callable[[], None] | None = None) -> None:
    """set_image + one box prediction: its time, and the part outside the encoder and decoder calls."""
    image = sample_image()
    one_box = box_prompts(1, image.shape[:2], predictor.contract.image_size)
    host: list[float] = []  # per run: the pipeline's wall time minus its two graph calls

    def pipeline() -> None:
        start = time.perf_counter()
        predictor.set_image(image)
        graphs = predictor.timings["encoder_ms"]
        predictor.predict_prompts(one_box, multimask_output=False)
        if sync is not None:
            sync()
        host.append(1000 * (time.perf_counter() - start) - graphs - predictor.timings["decoder_ms"])

    pipe = time_call(pipeline, settings.encoder_runs, settings.warmup, sync)
    report.measurements.append(Measurement(*label, "pipeline", pipe.median_ms, pipe.p90_ms, pipe.runs))
    timed = sorted(host[settings.warmup:])
    p90 = timed[min(len(timed) - 1, int(round(0.9 * (len(timed) - 1))))]
    report.measurements.append(Measurement(*label, "host", float(np.median(timed)), p90, len(timed)))
    logger.info("%s: pipeline %.1f ms (%.1f ms outside the encoder and decoder)", "/".join(label), pipe.median_ms,
                float(np.median(timed)))


def measure_everything(report: Report, label: tuple[str, str, str], predictor, settings: Settings,
                       sync: Callable[[], None] | None = None) -> None:
    """Segment everything on the sample image, once (it runs the decoder points**2 / 64 times)."""
    from nanosam2.inference.automatic import AutomaticMaskGenerator

    if settings.everything_points <= 0:
        return
    generator = AutomaticMaskGenerator(predictor, **everything_params(settings))
    image = sample_image()
    found: list[int] = []
    timing = time_call(lambda: found.append(len(generator.generate(image))), 1, 0, sync)
    report.measurements.append(Measurement(*label, EVERYTHING, timing.median_ms, timing.p90_ms, timing.runs))
    logger.info("%s: segment everything %.2f s, %d masks (%s)", "/".join(label), timing.median_ms / 1000, found[-1],
                ", ".join(f"{k[:-3]} {v / 1000:.2f} s" for k, v in generator.timings.items()))


def skip(report: Report, backbone: str, backend: str, precision: str, reason: str) -> None:
    report.measurements.append(Measurement(backbone, backend, precision, "pipeline", skipped=reason))
    logger.info("%s/%s/%s skipped: %s", backbone, backend, precision, reason)


def torch_cases(backbone: str, model: Any, device: str, dtypes: Sequence[str], compiled: bool = False) -> list[Case]:
    """PyTorch eager (or ``torch.compile``) at each of ``dtypes`` (autocast), with its pre/post-processing graphs."""
    import torch

    from nanosam2.inference.torch_runner import TorchRunner

    backend = "torch-compile" if compiled else "torch-eager"
    sync = torch.cuda.synchronize if device == "cuda" else None

    def opener(dtype: str) -> Callable[[], tuple[Any, Any, tuple[Any, Any]]]:
        def open_() -> tuple[Any, Any, tuple[Any, Any]]:
            enc, dec, pre, post = (TorchRunner(graph=g, model=model, device=device, dtype=dtype, compile=compiled)
                                   for g in C.IMAGE_GRAPHS)
            return enc, dec, (pre, post)
        return open_

    return [Case(backbone, backend, dtype, opener(dtype), sync) for dtype in dtypes]


def onnxruntime_cases(backbone: str, graphs: dict[str, Path], int8_encoder: Path | None, provider: str) -> list[Case]:
    """ONNX Runtime FP32 (with its pre/post-processing graphs) and, on the CPU provider, the INT8 encoder."""
    from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner

    backend = f"onnxruntime-{provider}"

    def fp32() -> tuple[Any, Any, tuple[Any, Any]]:
        return (OnnxRuntimeRunner(graphs[C.ENCODER], provider=provider), OnnxRuntimeRunner(graphs[C.DECODER], provider=provider),
                tuple(OnnxRuntimeRunner(graphs[g], provider=provider) for g in (C.PREPROCESS, C.POSTPROCESS)))  # type: ignore[return-value]

    cases = [Case(backbone, backend, "fp32", fp32)]
    if int8_encoder is not None and provider == "cpu":
        cases.append(Case(backbone, backend, "int8", lambda: (OnnxRuntimeRunner(int8_encoder, provider=provider),
                                                              OnnxRuntimeRunner(graphs[C.DECODER], provider=provider),
                                                              None)))
    return cases


def tensorrt_cases(backbone: str, engines: dict[str, tuple[Path, Path]], pre_post: tuple[Path, Path] | None = None,
                   backend: str = "tensorrt", options: Any = None) -> list[Case]:
    """TensorRT engines at each precision ({precision: (encoder, decoder)}), sharing one stream, with the FP32
    pre/post-processing engines when given; ``options``: the runtime's ``BackendOptions`` (flavour, cache)."""
    from nanosam2.inference.factory import BackendOptions, open_pipeline

    options = options or BackendOptions()

    def opener(pair: tuple[Path, Path]) -> Callable[[], tuple[Any, Any, tuple[Any, Any] | None]]:
        def open_() -> tuple[Any, Any, tuple[Any, Any] | None]:
            paths = {C.ENCODER: pair[0], C.DECODER: pair[1]}
            if pre_post is not None:
                paths.update({C.PREPROCESS: pre_post[0], C.POSTPROCESS: pre_post[1]})
            runners = open_pipeline(paths, options, lambda r: r)
            extra = (runners[C.PREPROCESS], runners[C.POSTPROCESS]) if pre_post is not None else None
            return runners[C.ENCODER], runners[C.DECODER], extra
        return open_

    return [Case(backbone, backend, precision, opener(pair)) for precision, pair in engines.items()]


