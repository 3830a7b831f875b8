"""Built-in check of an export: ONNX Runtime vs PyTorch on the same random inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.examples import encoder_example, graph_inputs
from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.metrics import cosine
from nanosam2.modeling.predictor_graphs import QAT_PRECISION, build_graph_module, graph_contract, is_quantized
from nanosam2.utils.ort_session import open_session

logger = logging.getLogger(__name__)


def tolerance(graph: str, precision: str) -> float:
    """Max abs error allowed, relative to max(1, max |reference|) of each output: the graph's spec."""
    spec = C.GRAPH_SPECS[graph]
    return spec.tolerance.get(spec.precision(precision), 0.0)


# A QAT encoder is checked by cosine similarity instead: ONNX Runtime rounds exact .5 ties of
# a QuantizeLinear to even and modelopt's kernel does not always, and each such one-step flip
# moves the next layers' inputs across other rounding boundaries, so element-wise maxima grow
# with depth while the features stay the same (measured: cosine > 0.99 on resnet18).
MIN_COSINE = {QAT_PRECISION: 0.98}


@dataclass
class OutputError:
    graph: str
    output: str
    max_abs: float
    max_rel: float  # max abs error / max(1, max |reference|)
    tolerance: float
    cosine: float = 1.0
    min_cosine: float | None = None  # when set, ``cosine`` decides instead of ``max_rel``

    @property
    def ok(self) -> bool:
        if self.min_cosine is not None:
            return self.cosine >= self.min_cosine
        return self.max_rel <= self.tolerance


def compare(graph: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], tolerance: float,
            min_cosine: float | None = None) -> list[OutputError]:
    rows = []
    spec = C.GRAPH_SPECS.get(graph)
    for name, ref in reference.items():
        err = float(np.abs(ref.astype(np.float64) - actual[name].astype(np.float64)).max())
        allowed = spec.output_tolerance(name, tolerance) if spec is not None else tolerance
        rows.append(OutputError(graph, name, err, err / max(1.0, float(np.abs(ref).max())), allowed,
                                cosine(ref, actual[name]), min_cosine))
    return rows


def verify_export(model: nn.Module, paths: dict[str, Path], precision: str, seed: int = 123) -> list[OutputError]:
    """Run both graphs in ONNX Runtime (CPU) and PyTorch; one row per output."""
    torch.manual_seed(seed)
    model = model.eval().cpu().float()
    encoder, decoder = build_graph_module(C.ENCODER, model).eval(), build_graph_module(C.DECODER, model).eval()
    (image,) = encoder_example(batch=1, image_size=int(model.image_size))
    with torch.no_grad():
        features = encoder(image)
        dec_args = graph_inputs(C.DECODER, model, features, seed, prompts=2, points=3)
        dec_ref = decoder(*dec_args)
    enc_out = open_session(paths[C.ENCODER]).run(list(C.ENCODER_OUTPUTS), {C.IMAGE: image.numpy()})
    dec_out = open_session(paths[C.DECODER]).run(
        list(C.DECODER_OUTPUTS), {n: a.numpy() for n, a in zip(C.DECODER_INPUTS, dec_args)})
    quantized = is_quantized(model.image_encoder)
    rows = compare(C.ENCODER, {n: t.numpy() for n, t in zip(C.ENCODER_OUTPUTS, features)},
                   dict(zip(C.ENCODER_OUTPUTS, enc_out)), 0.0 if quantized else tolerance(C.ENCODER, precision),
                   MIN_COSINE[QAT_PRECISION] if quantized else None)
    rows += compare(C.DECODER, {n: t.numpy() for n, t in zip(C.DECODER_OUTPUTS, dec_ref)},
                    dict(zip(C.DECODER_OUTPUTS, dec_out)), tolerance(C.DECODER, precision))
    if C.PREPROCESS in paths and C.POSTPROCESS in paths:
        contract = graph_contract(C.DECODER, model, "", weights_sha256="")
        rows += verify_pipeline_graphs(paths[C.PREPROCESS], paths[C.POSTPROCESS], contract, seed)
    if C.MEMORY_ATTENTION in paths and C.MEMORY_ENCODER in paths:
        rows += verify_video_graphs(model, paths, precision, features[0][:1], seed)
    return rows


# (memories, pointers) checked: a full bank, the first tracked frame, a bank with no pointer yet.
VIDEO_CASES = ((7, 16), (2, 1), (1, 0))


def verify_video_graphs(model: nn.Module, paths: dict[str, Path], precision: str, image_embed: torch.Tensor,
                        seed: int = 123) -> list[OutputError]:
    """The memory-attention graph on banks of several lengths and the memory encoder on a predicted
    (low-res) mask, binarised or not, and on a mask prompt at full size: ONNX Runtime vs PyTorch."""
    rows: list[OutputError] = []
    attention = build_graph_module(C.MEMORY_ATTENTION, model).eval()
    session = open_session(paths[C.MEMORY_ATTENTION])
    for memories, pointers in VIDEO_CASES:
        args = graph_inputs(C.MEMORY_ATTENTION, model, (image_embed,), seed, memories=memories, pointers=pointers)
        with torch.no_grad():
            reference = attention(*args).numpy()
        (actual,) = session.run(None, {n: a.numpy() for n, a in zip(C.MEMORY_ATTENTION_INPUTS, args)})
        rows += compare(C.MEMORY_ATTENTION, {C.CONDITIONED_IMAGE_EMBED: reference}, {C.CONDITIONED_IMAGE_EMBED: actual},
                        tolerance(C.MEMORY_ATTENTION, precision))
    encoder = build_graph_module(C.MEMORY_ENCODER, model).eval()
    session = open_session(paths[C.MEMORY_ENCODER])
    size = int(model.image_size)
    prompt = (torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(seed)) > 0.5).float() * 20 - 10
    low_res = graph_inputs(C.MEMORY_ENCODER, model, (image_embed,), seed)
    for args in (low_res, (*low_res[:2], torch.tensor([0.0]), torch.tensor([[-3.0]])),
                 (image_embed, prompt, torch.tensor([0.0]), torch.tensor([[10.0]]))):
        with torch.no_grad():
            reference = [t.numpy() for t in encoder(*args)]
        actual = session.run(None, {n: a.numpy() for n, a in zip(C.MEMORY_ENCODER_INPUTS, args)})
        rows += compare(C.MEMORY_ENCODER, dict(zip(C.MEMORY_ENCODER_OUTPUTS, reference)),
                        dict(zip(C.MEMORY_ENCODER_OUTPUTS, actual)), tolerance(C.MEMORY_ENCODER, precision))
    return rows


# The pre/post-processing graphs against the numpy reference (nanosam2.transforms): the encoder
# input within ~1e-4 (relative to its range of ~2.6; the specs' tolerance), masks by cosine of the
# 0/1 planes (>= IoU).
MIN_MASK_COSINE = 0.999


def verify_pipeline_graphs(preprocess: Path, postprocess: Path, contract, seed: int = 123,
                           sizes: tuple[tuple[int, int], ...] = ((97, 131), (1201, 37))) -> list[OutputError]:
    """Run ``preprocess.onnx`` / ``postprocess.onnx`` in ONNX Runtime next to ``nanosam2.transforms``
    on odd image sizes (one upscaled, one partly downscaled); one row per output and size."""
    from nanosam2 import transforms as T

    rng = np.random.default_rng(seed)
    pre, post = open_session(preprocess), open_session(postprocess)
    rows: list[OutputError] = []
    tokens = contract.num_mask_tokens
    for height, width in sizes:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        reference = T.preprocess_image(pixels, contract.image_size, tuple(contract.pixel_mean), tuple(contract.pixel_std))
        (actual,) = pre.run([C.IMAGE], {C.PIXELS: pixels})
        rows += compare(C.PREPROCESS, {C.IMAGE: reference}, {C.IMAGE: actual}, tolerance(C.PREPROCESS, "fp32"))
        low = (rng.standard_normal((3, tokens, contract.low_res_size, contract.low_res_size)) * 8).astype(np.float32)
        iou = rng.random((3, tokens)).astype(np.float32)
        for multimask, planes in ((False, [C.PLANE_SINGLE]), (True, list(C.PLANES_MULTI))):
            chosen, scores = T.select_masks(low, iou, multimask, contract.mask_selection)
            masks, clamped = T.postprocess_masks(chosen, (height, width), contract.mask_threshold)
            outputs = post.run(list(C.POSTPROCESS_OUTPUTS), {C.LOW_RES_MASKS: low, C.IOU_PREDICTIONS: iou,
                                                             C.PIXELS: pixels, C.MASK_PLANES: np.array(planes, np.int64)})
            got = dict(zip(C.POSTPROCESS_OUTPUTS, outputs))
            rows += compare(C.POSTPROCESS, {C.MASKS: masks.astype(np.float32)}, {C.MASKS: got[C.MASKS].astype(np.float32)},
                            1.0, MIN_MASK_COSINE)
            rows += compare(C.POSTPROCESS, {C.SCORES: scores, C.LOW_RES_LOGITS: clamped},
                            {C.SCORES: got[C.SCORES], C.LOW_RES_LOGITS: got[C.LOW_RES_LOGITS]},
                            tolerance(C.POSTPROCESS, "fp32"))
    return rows


def format_errors(rows: list[OutputError]) -> str:
    lines = ["| graph | output | max abs err | max rel err | cosine | criterion | ok |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.graph} | {r.output} | {r.max_abs:.3g} | {r.max_rel:.3g} | {r.cosine:.6f} | "
              + (f"cosine >= {r.min_cosine:g}" if r.min_cosine is not None else f"rel <= {r.tolerance:g}")
              + f" | {'yes' if r.ok else 'NO'} |" for r in rows]
    return "\n".join(lines)


def check_rows(rows: list[OutputError]) -> None:
    """Raise a one-line :class:`NanoSam2Error` naming the worst output when any row fails."""
    failed = [r for r in rows if not r.ok]
    if not failed:
        return
    by_cosine = [r for r in failed if r.min_cosine is not None]
    if by_cosine:
        worst = min(by_cosine, key=lambda r: r.cosine)
        raise NanoSam2Error(f"verification failed: {worst.graph}/{worst.output} cosine {worst.cosine:.4f} "
                            f"< {worst.min_cosine:g}; nothing was written")
    worst = max(failed, key=lambda r: r.max_rel)
    raise NanoSam2Error(f"verification failed: {worst.graph}/{worst.output} relative error {worst.max_rel:.3g} "
                        f"> {worst.tolerance:g}; nothing was written")
