"""The rules for every value a user types: command-line flags and slash commands parse with the same rules.

A rule is a callable that turns text into a value or raises `TextgenError` with one line saying what is
allowed (``temperature must be a number from 0 to 10 (0 = greedy), not '50'``). The REPL's slash commands
call the rules directly and print that line; `flag` adapts a rule to argparse, which prints the same line
after ``argument --temp:``. So `textgen sample --temp 50` and `/temp 50` answer alike, and a limit is
changed in one place.

This module stays light (no rich, no prompt_toolkit): every `textgen` command imports it to register its flags.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from textgen_core.config import BOOK_TEMPERATURES, MAX_BEAM_WIDTH
from textgen_core.errors import TextgenError

from .safe import shown

T = TypeVar("T")
C = TypeVar("C")

#: The largest whole number any option takes: numpy and torch hold seeds, counts and sizes in 64-bit integers,
#: and a larger value would overflow there (a traceback, or a misleading message) instead of being refused here.
MAX_INT = 2**63 - 1
MAX_TEMPERATURE = 10.0
#: Longest run one command may ask for: about half a minute for a 2×512 model (Ctrl-C stops the REPL's sooner).
MAX_LENGTH = 100_000
MAX_TOP_K = 100_000
#: numpy's legacy seeding and most tools take 32-bit seeds; a larger one is never needed to reproduce a run.
MAX_SEED = 2**32 - 1
#: /compare and `sample --temp` draw one stream per temperature in one batch; more would not fit a screen anyway.
MAX_COMPARE = 8
MAX_ALTS = 100
#: Colour modes: what the colour of a generated character means.
MODES = ("prob", "sampled", "entropy", "off")
#: Words that unset an optional setting (top-k, top-p, seed).
OFF = ("off", "none")


class Number(NamedTuple, Generic[T]):
    """A number of `kind` (int or float) in a range; `off=True` also takes "off" (or "none") for None.

    `what` names the setting in the message ("temperature"); generic rules leave it empty, and argparse names
    the option instead. `lo_open` / `hi_open` exclude a bound; `hi=None` means no upper bound (for whole
    numbers, `MAX_INT`). NaN and infinities are always refused.
    """

    kind: type[T]
    lo: float
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    what: str = ""
    note: str = ""
    off: bool = False

    def _fmt(self, x: float) -> str:
        return f"{int(x):,}" if self.kind is int else f"{x:g}"

    @property
    def allowed(self) -> str:
        """What the rule takes, as the message says it: "top-k must be a whole number from 1 to 100,000, or off"."""
        lo = self._fmt(self.lo)
        if self.hi is None:
            bounds = f"> {lo}" if self.lo_open else f"≥ {lo}"
        else:
            hi = self._fmt(self.hi)
            bounds = {
                (False, False): f"from {lo} to {hi}",
                (True, False): f"above {lo} and at most {hi}",
                (False, True): f"at least {lo} and below {hi}",
                (True, True): f"between {lo} and {hi} (exclusive)",
            }[self.lo_open, self.hi_open]
        noun = "a whole number" if self.kind is int else "a number"
        text = f"{self.what} must be {noun} {bounds}".lstrip()
        return text + (f" {self.note}" if self.note else "") + (", or off" if self.off else "")

    def __call__(self, text: str) -> T | None:
        if self.off and text.strip().lower() in OFF:
            return None
        try:
            value = self.kind(text)  # type: ignore[call-arg]
        except (ValueError, OverflowError):  # int() also refuses more than 4300 digits with ValueError
            value = None
        if value is None or not self._fits(value):
            raise TextgenError(f"{self.allowed}, not {shown(text)}")
        return value

    def _fits(self, value: float) -> bool:
        # Every comparison with NaN is false, so NaN fails the lower bound; infinities fail the upper one.
        hi = self.hi if self.hi is not None else (MAX_INT if self.kind is int else math.inf)
        above_lo = value > self.lo if self.lo_open else value >= self.lo
        below_hi = value < hi if self.hi_open or self.hi is None else value <= hi
        return above_lo and below_hi and (self.kind is int or math.isfinite(value))


def flag(rule: Callable[[str], T]) -> Callable[[str], T]:
    """`rule` as an argparse `type=`: its refusal becomes argparse's one-line usage error, message unchanged."""

    def convert(text: str) -> T:
        try:
            return rule(text)
        except TextgenError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


# ---- the generation settings: `textgen sample`, `textgen repl` and the REPL's slash commands ----------------------

parse_temperature = Number(float, 0, MAX_TEMPERATURE, what="temperature", note="(0 = greedy)")
parse_length = Number(int, 1, MAX_LENGTH, what="length")
parse_top_k = Number(int, 1, MAX_TOP_K, what="top-k", off=True)
parse_top_p = Number(float, 0, 1, lo_open=True, what="top-p", off=True)
parse_seed = Number(int, 0, MAX_SEED, what="seed", off=True)
parse_count = Number(int, 1, MAX_ALTS, what="the count")


def parse_temperatures(text: str) -> tuple[float, ...]:
    """Several temperatures, separated by spaces or commas; none gives the book's."""
    return check_temperatures(tuple(parse_temperature(t) for t in text.replace(",", " ").split()))


def check_temperatures(temps: tuple[C, ...]) -> tuple[C, ...] | tuple[float, ...]:
    """At most `MAX_COMPARE` temperatures (they are drawn together; /compare's beams count among them); none
    gives the book's."""
    if len(temps) > MAX_COMPARE:
        raise TextgenError(f"give at most {MAX_COMPARE} temperatures")
    return temps or BOOK_TEMPERATURES


#: The beam width of `sample --beam W`, `/beam W` and /compare's `beamW` columns (the library checks the same bound).
parse_beam_width = Number(int, 1, MAX_BEAM_WIDTH, what="beam width")


class Beam(NamedTuple):
    """A /compare column that is a beam search of `width` rather than a temperature."""

    width: int

    @property
    def label(self) -> str:
        return f"beam{self.width}"


def parse_columns(text: str) -> tuple[float | Beam, ...]:
    """/compare's columns: temperatures and `beamW` beams, separated by spaces or commas; none gives the book's
    temperatures. At most `MAX_COMPARE` in all."""
    columns: list[float | Beam] = []
    for item in text.replace(",", " ").split():
        if item.lower().startswith("beam"):
            columns.append(Beam(parse_beam_width(item[4:])))
        else:
            columns.append(parse_temperature(item))
    return check_temperatures(tuple(columns))


#: A stretch this long found in the training text counts as copied, unless `--min-copy`/`/copies min` says
#: otherwise. Text nobody trained on matches the bundled model's training split by chance in stretches of at most
#: 29 characters (Nietzsche's own held-out tenth; tiny-shakespeare 24: docs/record/copies.md), so 32 characters
#: found word for word are a copy, not chance.
DEFAULT_MIN_COPY = 32
#: The shortest stretch the copy meter counts as copied (`/copies min N`, `--min-copy N`).
parse_min_copy = Number(int, 1, MAX_LENGTH, what="the shortest copied span")
#: The n-gram length a beam may not repeat (`/beam W norepeat N`).
parse_no_repeat = Number(int, 2, MAX_LENGTH, what="the repeated n-gram length")


def parse_beam(text: str) -> tuple[int, int | None]:
    """`/beam W [norepeat N]`: the width, and the n-gram length the beam may not repeat (None: any)."""
    parts = text.split()
    if len(parts) == 3 and parts[1].lower() == "norepeat":
        return parse_beam_width(parts[0]), parse_no_repeat(parts[2])
    if len(parts) != 1:
        raise TextgenError(f"give a width and optionally norepeat N (e.g. 4 norepeat 16), not {shown(text)}")
    return parse_beam_width(parts[0]), None


def switch(what: str = "") -> Callable[[str], bool]:
    """An on/off rule; `what` names the setting in the message ("window must be on or off"), as `Number` does."""

    def parse(text: str) -> bool:
        if text.lower() not in ("on", "off"):
            raise TextgenError(f"{f'{what} must be' if what else 'give'} on or off, not {shown(text)}")
        return text.lower() == "on"

    return parse


parse_switch = switch()
#: /window and --window: a model trained on fixed windows predicts the book's way (on) or statefully (off).
parse_window = switch("window")


def parse_color(text: str) -> str:
    if text.lower() not in MODES:
        raise TextgenError(f"colour mode must be one of {', '.join(MODES)}, not {shown(text)}")
    return text.lower()


def fmt_opt(value: float | None) -> str:
    """How a setting that `off` unsets is shown: `off`, else the number as typed."""
    return "off" if value is None else f"{value:g}"


# ---- argparse types of the options only the command line has (training, evaluation, benchmarks) --------------------

positive_int = flag(Number(int, 1))
nonneg_int = flag(Number(int, 0))
positive_float = flag(Number(float, 0, lo_open=True))
#: The validation fraction: some text must be held out and some trained on.
fraction = flag(Number(float, 0, 1, lo_open=True, hi_open=True))
#: A dropout probability, or a moving average's decay (1 would never move).
below_one = flag(Number(float, 0, 1, hi_open=True))
#: A ratio such as the final learning rate over the peak.
unit_interval = flag(Number(float, 0, 1))
