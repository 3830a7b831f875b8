"""Command line of the runtime: ``python -m trt_runtime COMMAND`` (``--help`` of each says more).

    python -m trt_runtime predict --encoder E --decoder D --image IMG [--point X,Y[,LABEL] ...]
                                  [--box X0,Y0,X1,Y1 ...] [--multimask] --output OUT_DIR
    python -m trt_runtime eval-coco --coco-root DIR --coco-ann FILE --encoder E --decoder D
                                    [--limit N] --output results.json
    python -m trt_runtime coco-metric results.json [--size all|small|medium|large] [--category-id N]
    python -m trt_runtime everything --encoder E --decoder D --image IMG [--points-per-side N] ... --output OUT_DIR
    python -m trt_runtime track --model-dir DIR --video PATH (--prompts prompts.json | --point X,Y[,L] | --box ...)
                                [--fill-hole-area N] [--max-memory-frames N] --output OUT_DIR
    python -m trt_runtime eval-vos --model-dir DIR --images JPEGImages --annotations Annotations
                                   [--later-objects] [--sequences A,B] [--limit N] --output PRED_DIR
    python -m trt_runtime vos-metric GT_DIR PRED_DIR [--csv FILE]     (J&F, J, F with vos-benchmark)
    python -m trt_runtime serve --model-dir DIR [--http-port 8000] [--max-sessions N] [--session-timeout S]
                                (Triton Inference Server; every command above takes --server URL to use it)

The image commands live in ``trt_runtime.image_commands``, the video ones in ``trt_runtime.video_commands``;
each owns its parser. Runs on a Jetson with numpy, pillow, tensorrt and cuda-python only (TensorRT engines).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from nanosam2.utils.cli import ArgumentParser, setup_logging
from trt_runtime import image_commands, video_commands
from trt_runtime.serving import command as serve_command


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m trt_runtime", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    image_commands.add_commands(sub)
    video_commands.add_commands(sub)
    serve_command.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return args.run(args)
