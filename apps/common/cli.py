"""What every entry script shares: the error wrapper and argparse value types.

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        return run_command(COMMANDS[args.command], args)

``run_command`` prints a documented error (``apps.common.errors.USER_ERRORS``) as one line,
``error: <what and where>``, and returns 2, the exit code argparse uses for bad arguments;
Ctrl-C outside a training loop returns 130 without a traceback. No entry script keeps its own
list of exception types.
"""
from __future__ import annotations

import argparse
import math
import sys

from .errors import USER_ERRORS, describe


def run_command(fn, *args, **kwargs) -> int:
    """Call ``fn``; map its result to an exit code (None -> 0) and user errors to 2."""
    try:
        rc = fn(*args, **kwargs)
    except USER_ERRORS as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


# ----------------------------------------------------------------------------------------------
# argparse types: a bad value is refused by argparse itself ("error: argument --n: ...", exit 2)
# ----------------------------------------------------------------------------------------------
def _number(kind, text: str, ok, what: str):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v > 0, "a whole number >= 1")


def nonnegative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0, "a finite number > 0")


def nonnegative_float(text: str) -> float:
    return _number(float, text, lambda v: v >= 0, "a finite number >= 0")


def finite_float(text: str) -> float:
    return _number(float, text, lambda v: True, "a finite number")


def unit_interval(text: str) -> float:
    """A probability-like value in [0, 1)."""
    return _number(float, text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def fraction(text: str) -> float:
    """A share in (0, 1)."""
    return _number(float, text, lambda v: 0 < v < 1, "a number strictly between 0 and 1")


def layer_sizes(text: str) -> list[int]:
    """Comma-separated whole numbers >= 1: '256,256' -> [256, 256] (hidden layer sizes)."""
    try:
        sizes = [int(h) for h in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return sizes
