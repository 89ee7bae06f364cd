"""Colouring generated text by what the model thought of each character, and printing it fast.

Every style lives in `THEME`, one rich Theme, so the palette can be changed in one place. The scale has seven
steps from "surprising" to "certain". Its colours share one perceptual lightness (OKLCH L≈0.62, hue running
red → orange → amber → olive → green → teal → blue), so no step vanishes on a dark or a light background:
each has a contrast of at least 3.2:1 against white and 5.3:1 against black. The most surprising step is also
bold, a cue that survives colour blindness.

A cell view (`/cell L:N`) colours by one LSTM cell's value tanh(c) in [-1, 1] on a second, diverging scale,
`CELL_SCALE`: blue for negative, grey near zero, red for positive, the strong ends bold (Karpathy's pictures use
the same blue-red convention). Its steps keep a middle lightness too, so both ends read on either background.

Printing is batched: one rich `Text` per chunk of about 32 characters (or every 20 ms, whichever comes
first) instead of a `console.print` per character, which measured 55 µs against 6 µs per character.
Every character passes through `visible()` here, so nothing from a checkpoint reaches the terminal raw.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import IO, Protocol

from rich.console import Console
from rich.text import Text
from rich.theme import Theme

from .safe import visible

#: The scale, index 0 = surprising … 6 = certain (see the module docstring for how it was chosen).
SCALE = ("bold #d55753", "#cf630d", "#bd7400", "#8d8d00", "#20a04e", "#00a0ac", "#2389e2")
_LEVELS = tuple(f"tg.level{i}" for i in range(len(SCALE)))

#: Probability thresholds between the steps: below .05 is the most surprising step, .90 and above certain.
PROB_EDGES = (0.05, 0.15, 0.30, 0.50, 0.70, 0.90)
#: Entropy thresholds in bits, rising: below .25 bit the model was certain what came next, 3 bits or more it
#: hesitated between about eight or more characters.
ENTROPY_EDGES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)

#: A cell's value, index 0 = most negative … 3 = near zero … 6 = most positive (see the module docstring).
CELL_SCALE = ("bold #2c6fd1", "#4f8bdb", "#7c9cc4", "#8c8c8c", "#cc8b7c", "#df6a50", "bold #d3302a")
_CELL_LEVELS = tuple(f"tg.cell{i}" for i in range(len(CELL_SCALE)))
_MARKABLE = frozenset(_LEVELS + _CELL_LEVELS)
#: Value thresholds between the cell steps: |tanh(c)| under .15 counts as off.
CELL_EDGES = (-0.75, -0.45, -0.15, 0.15, 0.45, 0.75)

#: The copy meter's mark: underlined, which leaves the colour to say what it says (each coloured style has an
#: underlined twin, `NAME+copy`).
COPY_MARK = "underline"

THEME = Theme(
    {
        **{name: colour for name, colour in zip(_LEVELS, SCALE, strict=True)},
        **{name: colour for name, colour in zip(_CELL_LEVELS, CELL_SCALE, strict=True)},
        **{
            f"{name}+copy": f"{c} {COPY_MARK}"
            for name, c in zip(_LEVELS + _CELL_LEVELS, SCALE + CELL_SCALE, strict=True)
        },
        "tg.copy": COPY_MARK,
        "tg.seed": "bold",
        "tg.dim": "dim",
        "tg.note": "dim italic",
        "tg.error": "bold red",
        "tg.ok": "green",
        "tg.label": "bold cyan",
        "tg.key": "bold",
    }
)

_MEANING = {
    "prob": "the probability the model gave each character (at temperature 1)",
    "sampled": "the probability of each character under the distribution it was drawn from",
    "entropy": "how unsure the model was before each character (entropy of its distribution, bits)",
}


class Scored(Protocol):
    """What colouring needs from a generated token (`textgen_core.generate.Token` fits)."""

    char: str
    prob: float
    sampled_prob: float
    entropy: float


def prob_style(p: float) -> str:
    """Style for a character the model gave probability `p`."""
    return _LEVELS[bisect_right(PROB_EDGES, p)]


def cell_style(value: float) -> str:
    """Style for a cell value in [-1, 1] on the diverging scale."""
    return _CELL_LEVELS[bisect_right(CELL_EDGES, value)]


def token_style(token: Scored, mode: str) -> str | None:
    """Style of one generated character in colour mode `mode` (None: uncoloured)."""
    if mode == "prob":
        return prob_style(token.prob)
    if mode == "sampled":
        return prob_style(token.sampled_prob)
    if mode == "entropy":
        return _LEVELS[len(ENTROPY_EDGES) - bisect_right(ENTROPY_EDGES, token.entropy)]
    return None


def copy_style(style: str | None) -> str:
    """`style` with the copy meter's mark added: its underlined twin (plain underline for uncoloured text)."""
    return "tg.copy" if style is None or style not in _MARKABLE else f"{style}+copy"


def copy_legend(min_length: int, source: str) -> Text:
    """The copy meter's legend: what the underline means, and what is said after each run."""
    text = Text()
    text.append("underlined", style="tg.copy")
    text.append(f" = copied: the {min_length} characters up to there are word for word in {source}", style="tg.note")
    return text


def styled(pieces: Iterable[tuple[str, str | None]]) -> Text:
    """One Text from (characters, style) pieces, merging runs of equal style so rich emits few spans."""
    text = Text()
    run: list[str] = []
    current: str | None = None
    for chars, style in pieces:
        if style != current and run:
            text.append(visible("".join(run)), style=current)
            run = []
        current = style
        run.append(chars)
    if run:
        text.append(visible("".join(run)), style=current)
    return text


def colour_tokens(tokens: Iterable[Scored], mode: str, cells: Iterable[float] | None = None) -> Text:
    """Tokens coloured by `mode`, or by a cell's value after each of them when `cells` is given."""
    if cells is not None:
        return styled((t.char, cell_style(v)) for t, v in zip(tokens, cells, strict=True))
    return styled((t.char, token_style(t, mode)) for t in tokens)


def cell_legend(label: str, value: str = "tanh(c)") -> Text:
    """The cell view's legend: `colour = the value of cell 1:605, tanh(c): −1 ≤-.75 … ≥.75 +1`; `value` says what
    the cell's value is (`NumpyLSTM.value_name`: tanh(c) for an LSTM, h for a cell without a cell state)."""
    fmt = "{:+.2f}".format
    labels = [f"<{fmt(CELL_EDGES[0])}"]
    labels += [f"{fmt(a)}…{fmt(b)}" for a, b in pairwise(CELL_EDGES)]
    labels.append(f"≥{fmt(CELL_EDGES[-1])}")
    text = Text()
    text.append(f"colour = the value of cell {label}, {value}: ", style="tg.note")
    text.append("negative ", style="tg.dim")
    for style, label_ in zip(_CELL_LEVELS, labels, strict=True):
        text.append(f" {label_} ", style=style)
    text.append(" positive", style="tg.dim")
    return text


def legend(mode: str) -> Text:
    """One line explaining the current colours, e.g. `colour: probability … surprising <.05 … ≥.90 certain`."""
    if mode == "off":
        return Text("colour off: output is plain text", style="tg.note")
    edges = ENTROPY_EDGES if mode == "entropy" else PROB_EDGES
    fmt = (lambda x: f"{x:g}") if mode == "entropy" else (lambda x: f"{x:.2f}".lstrip("0"))
    labels = [f"<{fmt(edges[0])}"]
    labels += [f"{fmt(a)}–{fmt(b)}" for a, b in pairwise(edges)]
    labels.append(f"≥{fmt(edges[-1])}")
    if mode == "entropy":  # high entropy is the surprising end
        labels.reverse()
    text = Text()
    text.append(f"colour = {_MEANING[mode]}: ", style="tg.note")
    text.append("surprising ", style="tg.dim")
    for i, label in enumerate(labels):
        text.append(f" {label} ", style=_LEVELS[i])
    text.append(" certain", style="tg.dim")
    return text


def stats_line(chars: int, seconds: float, bits_per_char: float, settings: str) -> Text:
    """The dim line after each run: how much, how fast, how surprising overall, with which settings."""
    rate = chars / seconds if seconds > 0 else math.inf
    bpc = f"{bits_per_char:.2f}" if math.isfinite(bits_per_char) else "—"
    return Text(f"{chars:,} chars · {rate:,.0f} chars/s · {bpc} bits/char · {settings}", style="tg.dim")


def make_console(file: IO[str] | None = None, *, color: bool) -> Console:
    """The console every REPL output goes through. Without colour, rich writes no escape code at all
    (`color_system=None` also drops bold and dim); markup is off so that user text is never parsed."""
    return Console(
        file=file,
        theme=THEME,
        color_system="auto" if color else None,
        force_terminal=True if color else None,
        highlight=False,
        markup=False,
        emoji=False,
    )


class StreamWriter:
    """Prints a stream of tokens in small batches: the first character at once, then every `chunk` characters
    or `interval` seconds. Batching keeps printing far below generation time; the interval keeps a slow model
    visibly streaming."""

    def __init__(
        self,
        console: Console,
        mode: str,
        *,
        mark: Callable[[str], bool] | None = None,
        chunk: int = 32,
        interval: float = 0.02,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.console = console
        self.mode = mode
        #: The copy meter's test of each token in turn (True: underline it), when it is on.
        self.mark = mark
        self.chunk = chunk
        self.interval = interval
        self.clock = clock
        self._pending: list[tuple[str, str | None]] = []
        self._last_flush = -math.inf
        self.at_line_start = True

    def add(self, token: Scored, cell: float | None = None) -> bool:
        """Queue one token, coloured by `cell` (a cell's value after it) when given, else by the mode, and
        underlined when `mark` says so (the copy meter); returns True when this call printed (a good moment to poll
        the keyboard)."""
        style = cell_style(cell) if cell is not None else token_style(token, self.mode)
        if self.mark is not None and self.mark(token.char):
            style = copy_style(style)
        self._pending.append((token.char, style))
        if len(self._pending) >= self.chunk or self.clock() - self._last_flush >= self.interval:
            self.flush()
            return True
        return False

    def insert(self, text: str, style: str = "tg.note") -> None:
        """Print text that is not a generated token: the seed, or `‹T 0.6›` where the temperature changed."""
        self._pending.append((text, style))
        self.flush()
        self._last_flush = -math.inf  # the next character shows at once too

    def flush(self) -> None:
        if self._pending:
            self.console.print(styled(self._pending), end="", soft_wrap=True)
            self.at_line_start = self._pending[-1][0].endswith("\n")
            self._pending.clear()
        self._last_flush = self.clock()

    def end_line(self) -> None:
        """Flush and make sure the next output starts on a fresh line."""
        self.flush()
        if not self.at_line_start:
            self.console.print()
            self.at_line_start = True
