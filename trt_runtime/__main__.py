"""``python -m trt_runtime {predict, eval-coco, coco-metric}``."""

from nanosam2.utils.cli import run_cli
from trt_runtime.cli import main

raise SystemExit(run_cli(main))
