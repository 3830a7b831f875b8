"""Explicit INT8 (Q/DQ) ONNX graphs with ONNX Runtime's static quantization.

    python -m calib.qdq --onnx image_encoder.onnx --calib calib/sa1_512.npy
                        --out image_encoder.int8.onnx [--method entropy|minmax|percentile]
                        [--target tensorrt|cpu]

``--target tensorrt`` (default) writes what TensorRT's explicit quantization consumes (and what
TensorRT 11 requires for INT8): QDQ format, signed INT8 activations and weights, symmetric
(zero point 0), per-channel weights, float biases, opset >= 13. ``--target cpu`` writes the form ONNX Runtime
runs fastest on CPUs without VNNI: unsigned asymmetric activations (u8 x s8). Conv, MatMul,
Gemm and ConvTranspose are quantized; LayerNorm, Softmax and the rest stay in float, and
``--keep-float`` names the nodes to keep in float (default: the first convolution and the
encoder's last layers, the FPN lateral convolutions and conv_s0/conv_s1). ORT's
quantization pre-processing (shape inference, graph optimisation) runs first.

The last --holdout calibration images are not used for calibration: on them the report gives
the cosine similarity of every output and the mask IoU (through the FP32 decoder next to the
encoder) of INT8 against FP32.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.metrics import cosine, mask_iou
from nanosam2.utils.atomic import atomic_path, check_output_file, staged
from nanosam2.utils.outputs import check_replaceable_file, record_has
from nanosam2.utils.cli import ArgumentParser, existing_file, positive_int, run_cli, setup_logging
from nanosam2.utils.lazy_import import require
from nanosam2.utils.ort_session import first_line, open_session
from calib.prepare import decoder_path

logger = logging.getLogger("calib.qdq")

# Op types quantized per graph. In the decoder, INT8 Gemm (token MLPs, projections) dropped the
# mask IoU vs FP32 to 0.79 on our checks while convolutions alone kept 0.991 (cosine 0.9999).
QUANTIZED_OPS = {C.ENCODER: ["Conv", "MatMul", "Gemm", "ConvTranspose"], C.DECODER: ["Conv", "ConvTranspose"]}
METHODS = ("entropy", "minmax", "percentile")
TARGETS = ("tensorrt", "cpu")


@dataclass
class QuantReport:
    path: Path
    target: str
    method: str
    calibration_samples: int
    holdout_samples: int
    cosine: dict[str, float] = field(default_factory=dict)
    mask_iou: float = float("nan")

    def record(self, source: str | Path, calib: str | Path) -> dict:
        return {"graph": str(self.path), "source": str(source), "calibration_data": str(calib), "target": self.target,
                "method": self.method, "calibration_samples": self.calibration_samples,
                "holdout_samples": self.holdout_samples, "cosine_vs_fp32": self.cosine,
                "mask_iou_vs_fp32": None if np.isnan(self.mask_iou) else self.mask_iou}

    def table(self) -> str:
        rows = [f"| {name} | {value:.5f} |" for name, value in self.cosine.items()]
        return "\n".join(["| output | cosine vs FP32 |", "| --- | --- |", *rows,
                          f"| mask IoU vs FP32 (held-out) | {self.mask_iou:.4f} |"])


def _load_array(path: Path, what: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NanoSam2Error(f"{path} is not a .npy array of {what} ({first_line(exc)}); make one with calib.prepare") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise NanoSam2Error(f"{path} does not hold a float array of {what}; make one with calib.prepare")
    return array


def _check_finite(name: str, index: int, array: np.ndarray, path: Path) -> None:
    if not np.isfinite(array).all():
        raise NanoSam2Error(f"{path}: sample {index} of {name} contains NaN or Inf; calibration data must be finite")


def load_feeds(graph: str, calib: str | Path, image_size: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per calibration sample: encoder images from the .npy, decoder samples from the .npz.

    Anything else (a pickle, a text file, the wrong shape, NaN or Inf values) is a one-line error.
    """
    path = Path(calib)
    if graph == C.ENCODER:
        if not path.is_file():
            raise NanoSam2Error(f"no such calibration file: {path}")
        images = _load_array(path, "encoder inputs [n,3,S,S]")
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3] or images.shape[0] < 1:
            raise NanoSam2Error(f"{path} does not hold encoder inputs [n,3,S,S] (shape {images.shape})")
        if image_size is not None and images.shape[2] != image_size:
            raise NanoSam2Error(f"{path} holds {images.shape[2]}px images; the graph takes {image_size}px")
        feeds: list[dict[str, np.ndarray]] = []
        for index in range(images.shape[0]):
            sample = np.ascontiguousarray(images[index : index + 1], dtype=np.float32)
            _check_finite(C.IMAGE, index, sample, path)
            feeds.append({C.IMAGE: sample})
        return feeds
    samples = path if path.suffix == ".npz" else decoder_path(path)
    if not samples.is_file():
        raise NanoSam2Error(f"no decoder calibration samples at {samples}: run calib.prepare with --encoder")
    try:
        data = np.load(samples, allow_pickle=False)
        arrays = {name: data[name] for name in C.DECODER_INPUTS}
    except KeyError as exc:
        raise NanoSam2Error(f"{samples} lacks decoder input {exc}; make it with calib.prepare --encoder") from None
    except (ValueError, OSError, EOFError) as exc:
        raise NanoSam2Error(f"{samples} is not a decoder calibration file ({first_line(exc)})") from None
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise NanoSam2Error(f"{samples}: decoder inputs hold different numbers of samples ({sorted(counts)})")
    made_at = arrays[C.MASK_INPUT].shape[-1] * 4  # [n, P, 1, S/4, S/4]
    if image_size is not None and made_at != image_size:
        raise NanoSam2Error(f"{samples} holds samples of a {made_at} px model; the graph takes {image_size} px (run "
                            "calib.prepare with this model's --encoder)")
    feeds = []
    for index in range(counts.pop()):
        feed: dict[str, np.ndarray] = {name: np.ascontiguousarray(arrays[name][index], dtype=np.float32)
                                       for name in C.DECODER_INPUTS}
        for name, value in feed.items():
            _check_finite(name, index, value, samples)
        feeds.append(feed)
    return feeds


# Weights of the encoder's last layers: the FPN's lateral 1x1 convolutions and the decoder's
# conv_s0/conv_s1 projections. Measured on resnet18 (random weights, 2 held-out images): INT8
# everywhere gives feature cosine 0.986 and mask IoU 0.84; these six small convolutions in float
# give 0.999 and 0.958, whatever the calibration method.
LAST_LAYER_WEIGHTS = (".neck.", "conv_s0.", "conv_s1.")


def sensitive_nodes(model) -> list[str]:
    """Kept in float by default: the convolution reading the graph input, and the last layers."""
    inputs = {i.name for i in model.graph.input}
    first = [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] in inputs][:1]
    last = [n.name for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1
            and any(part in n.input[1] for part in LAST_LAYER_WEIGHTS)]
    return first + last


def quantize(onnx_path: str | Path, feeds: list[dict[str, np.ndarray]], out: str | Path, method: str = "entropy",
             target: str = "tensorrt", keep_float: list[str] | None = None, ops: list[str] | None = None) -> Path:
    """Calibrate on ``feeds`` and write the Q/DQ graph atomically to ``out``, with its contract."""
    import onnx

    quant = require("onnxruntime.quantization", "INT8 quantization")
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from nanosam2.utils.onnx_passes import read_metadata, save_checked, set_metadata

    contract = read_metadata(onnx_path)
    if contract.precision != "fp32":
        raise NanoSam2Error(f"{onnx_path} is a {contract.precision} graph; quantize the FP32 export")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

        def rewind(self) -> None:
            self.items = iter(feeds)

    symmetric = target == "tensorrt"
    with tempfile.TemporaryDirectory() as work, atomic_path(out) as tmp:
        pre = Path(work) / "preprocessed.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        excluded = sensitive_nodes(model) if keep_float is None else keep_float
        unknown = sorted(set(excluded) - {n.name for n in model.graph.node})
        if unknown:
            raise NanoSam2Error(f"--keep-float: no node named {', '.join(unknown)} in {Path(onnx_path).name} "
                                f"(after ONNX Runtime's pre-processing); e.g. {', '.join(sensitive_nodes(model)[:3])}")
        quant.quantize_static(
            str(pre), str(tmp), Reader(),
            quant_format=quant.QuantFormat.QDQ,
            op_types_to_quantize=ops or QUANTIZED_OPS[contract.graph],
            per_channel=True,
            activation_type=quant.QuantType.QInt8 if symmetric else quant.QuantType.QUInt8,
            weight_type=quant.QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method={"entropy": quant.CalibrationMethod.Entropy, "minmax": quant.CalibrationMethod.MinMax,
                              "percentile": quant.CalibrationMethod.Percentile}[method],
            # TensorRT's explicit quantization takes INT8 Q/DQ only; biases stay float for it.
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": not symmetric},
        )
        quantized = onnx.load(str(tmp))
        contract.precision = f"int8-{target}"
        set_metadata(quantized, contract)
        save_checked(quantized, tmp)
    logger.info("wrote %s (%s, %s calibration, %d samples, float: %s)", out, target, method, len(feeds), excluded)
    return Path(out)


QDQ_RECORD_KEYS = ("graph", "calibration_data", "cosine_vs_fp32")
DEFAULT_HOLDOUT = 4  # samples the report is computed on


def report_path(out: str | Path) -> Path:
    """``MODEL.int8.onnx`` -> ``MODEL.int8.onnx.json``: how the graph was made and how close it is to FP32."""
    return Path(f"{out}.json")


def evaluate(fp32: str | Path, int8: str | Path, holdout: list[dict[str, np.ndarray]], graph: str,
             decoder: str | Path | None, image_size: int = T.IMAGE_SIZE) -> tuple[dict[str, float], float]:
    """Cosine similarity per output and mask IoU of INT8 against FP32 on ``holdout``."""
    ref, test = open_session(fp32, purpose="INT8 evaluation"), open_session(int8, purpose="INT8 evaluation")
    names = [o.name for o in ref.get_outputs()]
    cos: dict[str, list[float]] = {n: [] for n in names}
    ious: list[float] = []
    dec = open_session(decoder, purpose="INT8 evaluation") if graph == C.ENCODER and decoder else None
    prompts = T.pad_prompts([  # placed in a 1024 px frame, scaled to the model's
        T.build_prompts((1024, 1024), boxes=np.array([[100, 100, 500, 600], [400, 200, 900, 900]], np.float32),
                        image_size=image_size),
        T.build_prompts((1024, 1024), points=np.array([[[300, 300]], [[700, 500]]], np.float32), labels=np.ones((2, 1)),
                        image_size=image_size),
    ])
    prompt_feed = C.prompt_feed(prompts)
    for feed in holdout:
        a = dict(zip(names, ref.run(names, feed)))
        b = dict(zip(names, test.run(names, feed)))
        for name in names:
            cos[name].append(cosine(a[name], b[name]))
        if graph == C.DECODER:
            ious.append(mask_iou(a[C.LOW_RES_MASKS], b[C.LOW_RES_MASKS]))
        elif dec is not None:
            masks = [dec.run([C.LOW_RES_MASKS], {**features, **prompt_feed})[0] for features in (a, b)]
            ious.append(mask_iou(*masks))
    return {n: float(np.mean(v)) for n, v in cos.items()}, float(np.mean(ious)) if ious else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m calib.qdq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, type=existing_file, help="FP32 graph exported by export.onnx")
    parser.add_argument("--calib", required=True, help="calibration .npy from calib.prepare (decoder: its .decoder.npz)")
    parser.add_argument("--out", required=True, help="output Q/DQ .onnx (its report goes to OUT.json)")
    parser.add_argument("--method", choices=METHODS, default="entropy", help="activation range calibration (default entropy)")
    parser.add_argument("--target", choices=TARGETS, default="tensorrt",
                        help="tensorrt: symmetric signed INT8 (TensorRT explicit quantization); "
                             "cpu: unsigned asymmetric activations, fast in ONNX Runtime on CPUs (default tensorrt)")
    parser.add_argument("--num-calib", type=positive_int, help="calibration samples to use (default: all but the held-out ones)")
    parser.add_argument("--holdout", type=positive_int,
                        help=f"samples kept out of calibration for the report (default {DEFAULT_HOLDOUT}, or all but "
                             "one when the data holds fewer)")
    parser.add_argument("--keep-float", nargs="*", help="node names to keep in float, replacing the default list "
                                                      "(first convolution, FPN lateral convs, conv_s0/s1)")
    parser.add_argument("--ops", nargs="*", help="op types to quantize (default: encoder Conv MatMul Gemm ConvTranspose, "
                                                 "decoder Conv ConvTranspose)")
    parser.add_argument("--decoder", help="FP32 mask_decoder.onnx for the encoder's mask IoU (default: next to --onnx)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from nanosam2.utils.onnx_passes import read_metadata

    contract = read_metadata(args.onnx)
    if contract.graph not in QUANTIZED_OPS:
        raise NanoSam2Error(f"{args.onnx} is the {contract.graph} graph; calib.qdq quantizes the "
                            f"{' and the '.join(QUANTIZED_OPS)} (the other graphs run in FP32 or FP16)")
    decoder = args.decoder or str(Path(args.onnx).with_name("mask_decoder.onnx"))
    if args.decoder or (contract.graph == C.ENCODER and Path(decoder).is_file()):
        C.check_pair(contract, read_metadata(decoder), args.onnx, decoder)
    use_decoder = contract.graph == C.ENCODER and Path(decoder).is_file()
    inputs = [args.onnx, args.calib, decoder if use_decoder else None]
    check_output_file(args.out, inputs=inputs, what="--out")
    check_output_file(report_path(args.out), inputs=inputs, what="report")
    report_file = report_path(args.out)  # replaced only when a calib.qdq report says it made them
    check_replaceable_file(args.out, "calib.qdq", lambda _: record_has(report_file, *QDQ_RECORD_KEYS), "--out")
    check_replaceable_file(report_file, "calib.qdq", lambda p: record_has(p, *QDQ_RECORD_KEYS), "report")
    feeds = load_feeds(contract.graph, args.calib, contract.image_size)
    if len(feeds) < 2:
        raise NanoSam2Error(f"need at least 2 calibration samples (1 held out), found {len(feeds)}")
    if args.holdout is not None and args.holdout >= len(feeds):
        raise NanoSam2Error(f"--holdout {args.holdout} leaves no calibration sample of the {len(feeds)} in {args.calib}; "
                            f"use --holdout {len(feeds) - 1} or fewer")
    holdout = args.holdout or min(DEFAULT_HOLDOUT, len(feeds) - 1)
    if args.holdout is None and holdout < DEFAULT_HOLDOUT:
        logger.info("holding out %d of the %d samples for the report (fewer than the default %d)", holdout, len(feeds),
                    DEFAULT_HOLDOUT)
    if args.num_calib is not None and args.num_calib > len(feeds) - holdout:
        raise NanoSam2Error(f"--num-calib {args.num_calib}: {args.calib} holds {len(feeds)} samples, "
                            f"{len(feeds) - holdout} after the {holdout} held out")
    calibration = feeds[: len(feeds) - holdout][: args.num_calib]
    with staged([args.out, report_path(args.out)]) as (graph_tmp, report_tmp):
        quantize(args.onnx, calibration, graph_tmp, args.method, args.target, args.keep_float, args.ops)
        cosines, iou = evaluate(args.onnx, graph_tmp, feeds[len(feeds) - holdout :], contract.graph,
                                decoder if use_decoder else None, contract.image_size)
        report = QuantReport(Path(args.out), args.target, args.method, len(calibration), holdout, cosines, iou)
        report_tmp.write_text(json.dumps(report.record(args.onnx, args.calib), indent=1))
    print(f"wrote {args.out} ({args.target}, {args.method}, {len(calibration)} calibration / {holdout} held-out samples) "
          f"and {report_path(args.out).name}")
    print(report.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
