"""Shared command-line plumbing: logging set-up and one-line errors with a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, NoReturn, Sequence

from nanosam2.errors import NanoSam2Error

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: PROG: MESSAGE (see --help)`` and exit 2, instead of
    the usage block (every nanosam2 command line uses it, subcommands included)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def, override]
        """Also refuse a flag given an empty value (``--computeCapabilities=``): read as "not given", it would
        silently mean the default."""
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.option_strings and action.default != "" and getattr(namespace, action.dest, None) == "":
                raise NanoSam2Error(f"{action.option_strings[0]} is empty: give a value, or leave the flag out")
        return namespace, extras


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
    except ImportError as exc:  # an optional dependency imported at module level is missing
        from nanosam2.utils.lazy_import import missing_dependency_message

        print(f"error: {missing_dependency_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _number(convert: Callable[[str], float], minimum: float, inclusive: bool, what: str) -> Callable[[str], float]:
    """An argparse type: ``convert`` (int or float), finite, and >= (or >) ``minimum``."""
    import math

    bound = f"at least {minimum:g}" if inclusive else f"above {minimum:g}"

    def parse(value: str) -> float:
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if not math.isfinite(number) or (number < minimum if inclusive else number <= minimum):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return number

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = _number(int, 1, True, "a whole number")  # counts: runs, images, points ...
non_negative_int = _number(int, 0, True, "a whole number")
positive_float = _number(float, 0.0, False, "a number")  # a learning rate, a threshold ...
non_negative_float = _number(float, 0.0, True, "a number")


def existing_file(value: str) -> str:
    """argparse type: a path that must exist (checked before any heavy work starts)."""
    import os

    if not os.path.isfile(value):
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return value
