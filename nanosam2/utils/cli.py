"""Shared command-line plumbing: logging set-up and one-line errors with a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from nanosam2.errors import NanoSam2Error

EXIT_USER_ERROR = 2


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``LEVEL name: message``: our loggers at INFO (DEBUG with --verbose),
    third-party ones (sam2 logs chatty INFO lines on the root logger) at WARNING."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for ours in ("nanosam2", "export", "engines", "calib", "trt_runtime", "benchmarks"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; a :class:`NanoSam2Error` (or a missing file) becomes ``error: ...`` and exit 2."""
    try:
        return main(argv)
    except NanoSam2Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # missing file, unwritable or not-a-directory output path, full disk ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def existing_file(value: str) -> str:
    """argparse type: a path that must exist (checked before any heavy work starts)."""
    import os

    if not os.path.isfile(value):
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return value
