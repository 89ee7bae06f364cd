"""argparse value types that turn bad numbers into one clear line (shared by every subcommand)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from .safe import shown

#: The largest whole number any option takes: numpy and torch hold seeds, counts and sizes in 64-bit integers,
#: and a larger value would overflow there (a traceback, or a misleading message) instead of being refused here.
MAX_INT = 2**63 - 1


def _number(text: str, kind: type) -> float:
    """Parse `text` as `kind`; the value is quoted shortened, since someone may paste a megabyte."""
    try:
        value = kind(text)
    except ValueError:
        if text.strip().lstrip("+-").isdigit():  # int() refuses more than 4300 digits
            raise argparse.ArgumentTypeError(f"{shown(text)} is too large (at most {MAX_INT})") from None
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a{'n integer' if kind is int else ' number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a finite number")
    if kind is int and abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"{shown(text)} is too large (at most {MAX_INT})")
    return value


def positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number ≥ 1")
    return value


def nonneg_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number ≥ 0")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number > 0")
    return value


def nonneg_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number ≥ 0")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (validation fraction, dropout is [0, 1) and checked separately)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive)")
    return value


def below_one(text: str) -> float:
    """A number in [0, 1): a dropout probability, or a moving average's decay (1 would never move)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def top_p(text: str) -> float:
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1]")
    return value


def unit_interval(text: str) -> float:
    """A number from 0 to 1 inclusive (a ratio such as the final learning rate over the peak)."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be from 0 to 1")
    return value


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number from `lo` to `hi`, for options where a huge value would hang rather than fail."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} must be a whole number from {lo} to {hi:,}")
        return value

    parse.__name__ = f"int_range({lo}, {hi})"
    return parse


def float_range(lo: float, hi: float, *, above: bool = False) -> Callable[[str], float]:
    """A number from `lo` (strictly above it when `above`) to `hi`, for rates whose huge values overflow torch's
    float32 arithmetic (a traceback) long before they make sense."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if not (lo < value if above else lo <= value) or value > hi:
            bounds = f"above {lo:g} and at most {hi:g}" if above else f"from {lo:g} to {hi:g}"
            raise argparse.ArgumentTypeError(f"{text} must be a number {bounds}")
        return value

    parse.__name__ = f"float_range({lo}, {hi})"
    return parse


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """The `-c` option every command that reads a model takes (one definition, one help text)."""
    parser.add_argument(
        "-c", "--checkpoint", metavar="CKPT", help="a .safetensors file or a run folder (default: the bundled model)"
    )
