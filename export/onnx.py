"""Export a nanosam2 student or a SAM2.1 teacher to ONNX: image encoder + mask decoder.

    python -m export.onnx --backbone resnet18 [--checkpoint student.pth] [--output-dir DIR]
                          [--image-size 1024|512|...] [--opset 18] [--precision fp32|fp16] [--no-simplify] [--no-verify]

Writes DIR/image_encoder.onnx and DIR/mask_decoder.onnx (``.fp16.onnx`` with --precision
fp16), preprocess.onnx and postprocess.onnx, and the video graphs memory_attention.onnx and
memory_encoder.onnx (unless --no-video), each carrying its I/O contract and the model's
weights hash in metadata_props. Both are
checked against PyTorch in ONNX Runtime before they are published together; on a failed check
(or a crash) nothing is written and earlier files in DIR stay as they were. Students without
--checkpoint get RANDOM weights (loudly); teachers (hiera_t, hiera_s, hiera_b+, hiera_l) need
Meta's checkpoint, e.g. sam2.1_hiera_small.pt, unless --random-weights is given. --image-size sets
the model's input side S (SAM2.1's 1024; 512 for small devices: a quarter of the encoder's pixels and
1/16 of the memory attention's work per tracked frame); the weights do not depend on it, every graph
records it in its contract, and every command that reads the graphs follows it.
"""

from __future__ import annotations

import argparse
import logging
from typing import Sequence

from nanosam2 import contract as C
from nanosam2.utils.cli import ArgumentParser, existing_file, run_cli, setup_logging

logger = logging.getLogger("export.onnx")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m export.onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from nanosam2.build import TEACHERS
    from nanosam2.modeling.backbones import list_backbones

    parser.add_argument("--backbone", required=True, metavar="NAME",
                        help=f"student ({', '.join(list_backbones())}) or SAM2.1 teacher ({', '.join(TEACHERS)})")
    parser.add_argument("--checkpoint", type=existing_file,
                        help="nanosam2 student checkpoint, or Meta's SAM2.1 checkpoint for a teacher")
    parser.add_argument("--random-weights", action="store_true",
                        help="allow a teacher without --checkpoint (random weights: for timing only)")
    parser.add_argument("--output-dir", help="where the .onnx files go (default: outputs/onnx/BACKBONE, "
                                             "outputs/onnx/BACKBONE-S for another --image-size)")
    parser.add_argument("--image-size", type=int, default=C.IMAGE_SIZE, metavar="S",
                        help=f"model input side: a multiple of {C.IMAGE_SIZE_STEP} from {C.IMAGE_SIZE_RANGE[0]} to "
                             f"{C.IMAGE_SIZE_RANGE[1]} (default {C.IMAGE_SIZE}; 512 for small devices)")
    parser.add_argument("--opset", type=int, default=C.DEFAULT_OPSET,
                        help=f"ONNX opset (default {C.DEFAULT_OPSET}: parsed by TensorRT 10.3 on JetPack 6 and by 11)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: FP16 weights and compute with FP32 inputs/outputs; norms and point "
                             "Fourier features stay FP32 (default fp32)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim/onnxslim simplification")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    parser.add_argument("--no-video", action="store_true",
                        help="skip the video graphs (memory_attention, memory_encoder): image segmentation only")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from export.exporter import export_backbone
    from export.verify import format_errors

    graphs = export_backbone(args.backbone, args.output_dir, args.checkpoint, args.opset, args.precision,
                             not args.no_simplify, not args.no_verify, args.random_weights,
                             not args.no_video, args.image_size)
    for graph in graphs.values():
        print(f"{graph.path}: {graph.path.stat().st_size / 1e6:.1f} MB, exported in {graph.seconds:.1f} s "
              f"(simplifier: {graph.simplifier})")
    rows = [row for graph in graphs.values() for row in graph.errors]
    if rows:
        print(format_errors(rows))
        print("verified: ONNX Runtime matches PyTorch within tolerance")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
