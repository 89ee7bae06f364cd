"""`textgen repl` (also plain `textgen`): the interactive session.

This module also holds the rules for the generation settings a user types (temperature, length, top-k, top-p,
seed). The flags here and the slash commands in `commands` both parse with them, so a value is judged the same
way in both places. It stays light (no rich, no prompt_toolkit) because every `textgen` command imports it
to register its parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from textgen_core.errors import TextgenError

from . import argtypes
from .safe import shown

NAME = "repl"
SUMMARY = "interactive session: type a seed, watch it continue, coloured by the model's probabilities"
EXAMPLE = "textgen repl -c runs/book --temp 0.5"

DEFAULT_TEMPERATURE = 0.8
#: The book's sample length.
DEFAULT_LENGTH = 400
MAX_TEMPERATURE = 10.0
#: Longest run one Enter may ask for: about half a minute for a 2×512 model, and Ctrl-C stops it anyway.
MAX_LENGTH = 100_000
MAX_TOP_K = 100_000
MAX_SEED = 2**32 - 1


def number(text: str, kind: type, allowed: str, lo: float, hi: float) -> float:
    """Parse an int or float in [lo, hi]; otherwise raise `TextgenError("<allowed>, not '<text>'")`."""
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        raise TextgenError(f"{allowed}, not {shown(text)}") from None
    if not lo <= value <= hi:  # also refuses NaN and ±inf (every comparison with NaN is false)
        raise TextgenError(f"{allowed}, not {shown(text)}")
    return value


def is_off(text: str) -> bool:
    return text.lower() in ("off", "none")


def parse_temperature(text: str) -> float:
    allowed = f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} (0 = greedy)"
    return number(text, float, allowed, 0, MAX_TEMPERATURE)


def parse_length(text: str) -> int:
    return int(number(text, int, f"length must be a whole number from 1 to {MAX_LENGTH:,}", 1, MAX_LENGTH))


def parse_top_k(text: str) -> int | None:
    if is_off(text):
        return None
    return int(number(text, int, f"top-k must be a whole number from 1 to {MAX_TOP_K:,}, or off", 1, MAX_TOP_K))


def parse_top_p(text: str) -> float | None:
    if is_off(text):
        return None
    allowed = "top-p must be a number above 0 and at most 1, or off"
    value = number(text, float, allowed, 0, 1)
    if value == 0:
        raise TextgenError(f"{allowed}, not {shown(text)}")
    return value


def parse_seed(text: str) -> int | None:
    if is_off(text):
        return None
    return int(number(text, int, f"seed must be a whole number from 0 to {MAX_SEED}, or off", 0, MAX_SEED))


T = TypeVar("T")


def _flag(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Adapt a `parse_*` rule to argparse, which reports `ArgumentTypeError` as a one-line usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except TextgenError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=SUMMARY, description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}. Example: {EXAMPLE}")
    argtypes.add_checkpoint(p)
    p.add_argument(
        "--temp",
        type=_flag(parse_temperature),
        default=DEFAULT_TEMPERATURE,
        metavar="T",
        help=f"temperature, 0 = greedy (default {DEFAULT_TEMPERATURE})",
    )
    p.add_argument(
        "--len",
        type=_flag(parse_length),
        default=DEFAULT_LENGTH,
        metavar="N",
        help=f"characters per run (default {DEFAULT_LENGTH})",
    )
    p.add_argument("--top-k", type=_flag(parse_top_k), metavar="K", help="sample among the K likeliest (default off)")
    p.add_argument("--top-p", type=_flag(parse_top_p), metavar="P", help="nucleus sampling mass (default off)")
    p.add_argument("--seed", type=_flag(parse_seed), metavar="N", help="random seed: reproducible runs (default off)")
    p.add_argument("--no-color", action="store_true", help="plain text, no escape codes (also NO_COLOR=1)")
    p.add_argument(
        "--history",
        metavar="FILE",
        help="input history file (default: history in the user's state folder, e.g. ~/.local/state/textgen)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .app import main as run_app

    return run_app(args)
