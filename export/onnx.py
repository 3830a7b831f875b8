"""Export a nanosam2 student or a SAM2.1 teacher to ONNX: image encoder + mask decoder.

    python -m export.onnx --backbone resnet18 [--checkpoint student.pth] [--output-dir DIR]
                          [--opset 18] [--precision fp32|fp16] [--no-simplify] [--no-verify]

Writes DIR/image_encoder.onnx and DIR/mask_decoder.onnx (``.fp16.onnx`` with --precision
fp16), each carrying its I/O contract in metadata_props, then checks them against PyTorch
in ONNX Runtime (non-zero exit if over tolerance). Students without --checkpoint get RANDOM
weights (loudly); teachers (hiera_t, hiera_s, hiera_b+, hiera_l) need Meta's checkpoint,
e.g. sam2.1_hiera_small.pt, unless --random-weights is given.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_writable_dir
from nanosam2.utils.cli import existing_file, run_cli, setup_logging

logger = logging.getLogger("export.onnx")

TEACHER_NAMES = ("hiera_t", "hiera_s", "hiera_b+", "hiera_l")


def build_parser() -> argparse.ArgumentParser:
    from nanosam2.modeling.backbones import list_backbones

    parser = argparse.ArgumentParser(prog="python -m export.onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True, metavar="NAME",
                        help=f"student ({', '.join(list_backbones())}) or SAM2.1 teacher ({', '.join(TEACHER_NAMES)})")
    parser.add_argument("--checkpoint", type=existing_file,
                        help="nanosam2 student checkpoint, or Meta's SAM2.1 checkpoint for a teacher")
    parser.add_argument("--random-weights", action="store_true",
                        help="allow a teacher without --checkpoint (random weights: for timing only)")
    parser.add_argument("--output-dir", help="where the .onnx files go (default: outputs/onnx/BACKBONE)")
    parser.add_argument("--opset", type=int, default=18,
                        help="ONNX opset (default 18: parsed by TensorRT 10.3 on JetPack 6 and by TensorRT 11)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: FP16 weights and compute with FP32 inputs/outputs; norms and point "
                             "Fourier features stay FP32 (default fp32)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim/onnxslim simplification")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def load_model(backbone: str, checkpoint: str | None, random_weights: bool):
    from nanosam2.build import TEACHERS, build_nanosam2, build_teacher

    if backbone in TEACHERS:
        if checkpoint is None and not random_weights:
            raise NanoSam2Error(f"teacher {backbone} needs --checkpoint (Meta's {TEACHERS[backbone][1]}), "
                                "or --random-weights for a timing-only export")
        return build_teacher(backbone, checkpoint, device="cpu")
    if checkpoint is None:
        print(f"*** export: {backbone} with RANDOM WEIGHTS (no --checkpoint): graphs are valid, masks meaningless ***")
    from nanosam2.build import student_config_name

    return build_nanosam2(student_config_name(backbone), checkpoint=checkpoint, device="cpu")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from nanosam2.modeling.backbones import list_backbones

    known = list_backbones() + list(TEACHER_NAMES)
    if args.backbone not in known:
        raise NanoSam2Error(f"unknown backbone {args.backbone!r}; known: {', '.join(known)}")
    if not 17 <= args.opset <= 20:
        raise NanoSam2Error(f"--opset {args.opset} is not supported: use 17..20 (TensorRT 10.3 parses up to 20)")
    output_dir = check_writable_dir(args.output_dir or os.path.join("outputs", "onnx", args.backbone))

    from export.exporter import export_model
    from export.verify import format_errors, verify_export

    model = load_model(args.backbone, args.checkpoint, args.random_weights)
    graphs = export_model(model, args.backbone, Path(output_dir), args.opset, args.precision, not args.no_simplify)
    for graph in graphs.values():
        print(f"{graph.path}: {graph.path.stat().st_size / 1e6:.1f} MB, exported in {graph.seconds:.1f} s "
              f"(simplifier: {graph.simplifier})")
    if args.no_verify:
        return 0
    rows = verify_export(model, {name: g.path for name, g in graphs.items()}, args.precision)
    print(format_errors(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        for graph in graphs.values():
            graph.path.unlink(missing_ok=True)
        worst = failed[0]
        if worst.min_cosine is not None:
            raise NanoSam2Error(f"verification failed: {worst.graph}/{worst.output} cosine {worst.cosine:.4f} "
                                f"< {worst.min_cosine:g}; the .onnx files were removed")
        worst = max(failed, key=lambda r: r.max_rel)
        raise NanoSam2Error(f"verification failed: {worst.graph}/{worst.output} relative error {worst.max_rel:.3g} "
                            f"> {worst.tolerance:g}; the .onnx files were removed")
    print("verified: ONNX Runtime matches PyTorch within tolerance")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
