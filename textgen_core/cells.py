"""Looking inside the model: which cells (recurrent units) follow a feature of the text (inside quotes, bracket
depth, position in the line), and the values of one cell, character by character.

An LSTM cell's value is ``tanh(c)``, in [-1, 1], as Karpathy, Johnson & Fei-Fei ("Visualizing and Understanding
Recurrent Networks", 2015) colour text by it. A GRU or a plain RNN has no cell state apart from its output: its
units' values are the hidden state h, already in [-1, 1] (`NumpyLSTM.readout`). Cells are named ``L:N``: layer L
(from 0, as the checkpoint's ``*_l0`` names count) and index N within the layer (from 0).

Alignment: value t is the cell state *after* the model has read character t of the text (the state in which it
predicts character t + 1), and every feature describes the same moment, "having read text[:t+1]": an opening quote
is inside the quotation, its closing quote is not. Before the first character the model reads the start character
of `generate.start_id` (a newline where the vocabulary has one), the convention `scoring.score` uses.

How a text is run (`trace_cells`): in `streams` parallel streams, one batched step for all of them at a time,
because a batch of B columns costs far less than B single steps. The text is cut into B consecutive parts; the
first stream reads its part from the true start, each other stream starts `burn_in` characters before its part
(from a fresh state; `scoring.parallel_steps` runs them) and its values over those burn-in characters are
thrown away. So every kept value has seen at least `burn_in` characters of context (the first stream: all of
it). A cell that carries information over longer spans than the burn-in (a quotation that opened earlier) can be
wrong for a while at the start of a part; `bench/bench_cells.py` measures the difference from one stream. Texts
shorter than a few burn-ins run as one stream, exactly.

The correlation (`rank_cells`) is Pearson's r between each cell's values and the feature over every character the
trace kept (all of the text, burn-in values excluded as above), computed for all cells at once. A regex feature is
the match mask (1 on characters inside a match, 0 elsewhere), so its ranking is the correlation with that mask.

Memory is bounded: a trace stores ``4 * layers * hidden`` bytes per character (float32), and texts beyond
`max_chars` (default `MAX_CHARS`) are cut to their first `max_chars` characters, which the trace reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import TextgenError
from .generate import encode_seed, feed, start_id
from .inference import LSTMState, NumpyLSTM
from .scoring import parallel_steps
from .vocab import Vocabulary

#: Characters a trace keeps at most: 50,000 × 6 KB = 300 MB for the bundled 2×768 model.
MAX_CHARS = 50_000
#: A correlation over fewer characters than this says nothing.
MIN_CHARS = 20
#: Parallel streams, and the characters each stream after the first reads (and discards) before its part.
STREAMS = 16
BURN_IN = 500
#: Rows per float64 block when correlating: bounds the extra memory to a few tens of MB.
_CORR_BLOCK = 4096

F32 = np.float32


@dataclass(frozen=True)
class CellTrace:
    """Every cell's value after each character of `text`: `values` is (chars, layers * hidden) float32, column
    ``layer * hidden + index`` (the row order of `LSTMState.c`).

    `text` is what the model read (lower-cased for a lower-case model, unknown characters removed, cut to
    `max_chars`); `unknown` counts the characters skipped, `source_chars` the usable length before the cut.
    """

    text: str
    values: np.ndarray
    layers: int
    hidden: int
    unknown: dict[str, int] = field(default_factory=dict)
    source_chars: int = 0

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def truncated(self) -> bool:
        return self.source_chars > self.chars

    def cell(self, layer: int, index: int) -> np.ndarray:
        """One cell's values over the text, (chars,)."""
        return self.values[:, layer * self.hidden + index]


def _encode(model: NumpyLSTM, vocab: Vocabulary, text: str, lowercase: bool) -> tuple[np.ndarray, dict[str, int]]:
    if len(vocab) != model.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} characters, the model {model.vocab_size}")
    enc = vocab.encode(text.lower() if lowercase else text)
    return enc.ids, enc.unknown


def _run(model: NumpyLSTM, vocab: Vocabulary, ids: np.ndarray, rows: np.ndarray, streams: int, burn_in: int):
    """The `readout` (tanh(c) for an LSTM, h otherwise) of the state rows `rows` after each of `ids`,
    (len(ids), len(rows)) float32; see the module doc for how the text is split over streams."""
    n = len(ids)
    out = np.empty((n, len(rows)), F32)
    # Parts much shorter than the burn-in would spend most of the work on discarded characters.
    b = max(1, min(streams, n // (4 * burn_in) if burn_in else streams, n))
    seq = np.concatenate([[start_id(model, vocab)], ids])  # position p + 1 of seq is character p of the text
    for pos, cols, state in parallel_steps(model, seq, b, burn_in):
        read = pos >= 1
        out[pos[read] - 1] = model.readout(state, np.ix_(rows, cols[read])).T
    return out


def trace_cells(
    model: NumpyLSTM,
    vocab: Vocabulary,
    text: str,
    *,
    lowercase: bool = False,
    max_chars: int = MAX_CHARS,
    streams: int = STREAMS,
    burn_in: int = BURN_IN,
) -> CellTrace:
    """Run `text` through the model and keep every cell's value after each character (see the module doc: the
    alignment, the parallel streams and their burn-in, the cut at `max_chars`)."""
    ids, unknown = _encode(model, vocab, text, lowercase)
    usable = len(ids)
    ids = ids[:max_chars]
    if len(ids) < MIN_CHARS:
        raise TextgenError(
            f"the text is too short: {len(ids)} characters the model knows; cells need at least {MIN_CHARS}"
        )
    rows = np.arange(model.layers * model.hidden)
    values = _per_char(vocab, ids, _run(model, vocab, ids, rows, streams, burn_in))
    return CellTrace(vocab.decode(ids), values, model.layers, model.hidden, unknown, usable)


def _per_char(vocab: Vocabulary, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values per token as values per character: a word or word piece is read in one step, so each of its
    characters gets the value after the whole token (features, excerpts and colours stay per character)."""
    return values if vocab.is_chars else np.repeat(values, vocab.lengths[ids], axis=0)


def cell_values(
    model: NumpyLSTM,
    vocab: Vocabulary,
    text: str,
    layer: int,
    index: int,
    *,
    lowercase: bool = False,
    max_chars: int = MAX_CHARS,
) -> tuple[str, np.ndarray]:
    """One cell's value after each character of `text`, read in one stream (exact, whatever the length): returns
    the text the model read (lower-cased, unknown characters removed, cut to `max_chars`) and (chars,) float32."""
    check_cell(model, layer, index)
    ids, _ = _encode(model, vocab, text, lowercase)
    ids = ids[:max_chars]
    row = np.array([layer * model.hidden + index])
    return vocab.decode(ids), _per_char(vocab, ids, _run(model, vocab, ids, row, 1, 0)[:, 0])


def continuation_values(
    model: NumpyLSTM, vocab: Vocabulary, seed: str, text: str, layer: int, index: int, *, lowercase: bool = False
) -> np.ndarray:
    """One cell's value after each character of `text`, generated as a continuation of `seed`: the seed is fed as
    `Generator.prime` feeds it (`encode_seed`: its last characters, the start character for an empty seed), then
    `text` one step at a time. These are the values a `CellTracker` reads while `text` streams, for output whose
    states were not kept (the batched streams of `sample_many`). (chars of `text` the model knows,) float32."""
    check_cell(model, layer, index)
    state = model.initial_state(1)
    feed(model, encode_seed(model, vocab, seed, lowercase).ids, state)
    ids, _ = _encode(model, vocab, text, lowercase)
    row = layer * model.hidden + index
    out = np.empty(len(ids), F32)
    for t in range(len(ids)):
        model.step(ids[t : t + 1], state)
        out[t] = model.readout(state, (row, 0))
    return _per_char(vocab, ids, out)


class CellTracker:
    """The value of one chosen cell in a state the generator has just stepped: what a front end calls after each
    streamed character to colour it. One scalar tanh per call; nothing is copied."""

    def __init__(self, model: NumpyLSTM, layer: int, index: int):
        check_cell(model, layer, index)
        self.layer = layer
        self.index = index
        self._model = model
        self._row = layer * model.hidden + index

    @property
    def label(self) -> str:
        return f"{self.layer}:{self.index}"

    def value(self, state: LSTMState, stream: int = 0) -> float:
        return float(self._model.readout(state, (self._row, stream)))

    def values(self, state: LSTMState) -> np.ndarray:
        """The cell's value in every stream of a batched state, (batch,)."""
        return self._model.readout(state, self._row)


def check_cell(model: NumpyLSTM, layer: int, index: int) -> None:
    if not 0 <= layer < model.layers:
        raise TextgenError(f"no layer {layer}: the model's layers are 0 to {model.layers - 1}")
    if not 0 <= index < model.hidden:
        raise TextgenError(f"no cell {index} in layer {layer}: cells are 0 to {model.hidden - 1}")


def parse_cell(spec: str, model: NumpyLSTM) -> tuple[int, int]:
    """``"L:N"`` → (layer, index), checked against the model; TextgenError with what to type otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", spec)
    if m is None:
        raise TextgenError(f"{spec!r} is not a cell: write LAYER:INDEX, e.g. 0:42")
    layer, index = int(m.group(1)), int(m.group(2))
    check_cell(model, layer, index)
    return layer, index


# ----- features of the text --------------------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = set(_OPENERS.values())
#: A sentence's end: . ! or ? (repeated), closing quotes or brackets, then the space before the next sentence.
_SENTENCE_GAP = re.compile(r"[.!?]+[\"'”’)\]]*\s+")


def inside_quotes(text: str) -> np.ndarray:
    """1 inside double quotes: from an opening quote up to, not including, its closing one. A straight ``"``
    toggles; curly ones open (“) and close (”). A blank line closes an open quotation, so one unmatched quote
    does not flip the rest of a book."""
    out = np.zeros(len(text), F32)
    inside = False
    for i, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        elif ch == "“":
            inside = True
        elif ch == "”" or (ch == "\n" and i and text[i - 1] == "\n"):  # closed, or a blank line
            inside = False
        out[i] = inside
    return out


def bracket_depth(text: str) -> np.ndarray:
    """How many ( [ { are open after each character; a closer with nothing open is ignored."""
    out = np.zeros(len(text), F32)
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS and depth:
            depth -= 1
        out[i] = depth
    return out


def inside_brackets(text: str) -> np.ndarray:
    return (bracket_depth(text) > 0).astype(F32)


def line_position(text: str) -> np.ndarray:
    """Characters read since the last newline: 0 on the newline itself, 1 on a line's first character (the text
    starts as if after a newline, the start character)."""
    idx = np.arange(len(text))
    newlines = np.array([ch == "\n" for ch in text], bool)
    last = np.maximum.accumulate(np.where(newlines, idx, -1))
    return (idx - last).astype(F32)


def word_position(text: str) -> np.ndarray:
    """1, 2, 3 … over the letters and digits of a word (an apostrophe inside a word continues it), 0 between."""
    out = np.zeros(len(text), F32)
    run = 0
    for i, ch in enumerate(text):
        run = run + 1 if ch.isalnum() or (ch in "'’" and run) else 0
        out[i] = run
    return out


def sentence_start(text: str) -> np.ndarray:
    """1 between a sentence's end (. ! ? with any closing quotes or brackets, then white space) and the first
    character of the next sentence: where the model knows a new sentence, and so a capital, comes next."""
    return regex_mask(_SENTENCE_GAP, text)


def regex_mask(pattern: str | re.Pattern[str], text: str) -> np.ndarray:
    """1 on characters inside a match of `pattern`, 0 elsewhere (LSTMVis's marked spans, as a mask)."""
    if isinstance(pattern, str):
        try:
            pattern = re.compile(pattern)
        except re.error as e:
            raise TextgenError(f"bad regular expression {pattern!r}: {e}; fix it and try again") from None
    out = np.zeros(len(text), F32)
    for m in pattern.finditer(text):
        out[m.start() : m.end()] = 1
    return out


@dataclass(frozen=True)
class Feature:
    """A built-in feature: its name (what users type), a one-line description, and the function of the text."""

    name: str
    description: str
    compute: Callable[[str], np.ndarray]


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in [
        Feature("quote", "Inside double quotes (straight or curly).", inside_quotes),
        Feature("bracket", "Inside parentheses, square or curly brackets.", inside_brackets),
        Feature("depth", "How many brackets are open.", bracket_depth),
        Feature("line", "Characters since the last newline.", line_position),
        Feature("word", "Position in the word (0 between words).", word_position),
        Feature("sentence", "Between a sentence's end and the next sentence's first character.", sentence_start),
    ]
}
#: What `feature_values` takes for a custom feature: ``find REGEX``.
FIND = "find"


def feature_values(name: str, text: str) -> np.ndarray:
    """A built-in feature of `text` by name, per character (float32)."""
    feature = FEATURES.get(name)
    if feature is None:
        raise TextgenError(f"unknown feature {name!r}: choose one of {', '.join(FEATURES)}, or find REGEX")
    return feature.compute(text)


# ----- ranking ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellScore:
    """One cell and Pearson's r between its values and a feature."""

    layer: int
    index: int
    r: float

    @property
    def label(self) -> str:
        return f"{self.layer}:{self.index}"

    def to_dict(self) -> dict:
        return {"layer": self.layer, "index": self.index, "correlation": self.r}


@dataclass(frozen=True)
class Ranking:
    """The cells that follow `feature` best, by |r| over `chars` characters, strongest first."""

    feature: str
    cells: tuple[CellScore, ...]
    chars: int

    def to_dict(self) -> dict:
        """The shape `textgen cells --json` prints."""
        return {"feature": self.feature, "chars": self.chars, "cells": [c.to_dict() for c in self.cells]}


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson's r of each column of `values` (T, N) with `feature` (T,), (N,) float64; 0 for a constant column.

    Sums run in float64 over blocks of rows: float32 sums of squares over 50,000 values near ±1 lose the variance
    of a cell that barely moves, and a float64 copy of the whole trace would double its memory."""
    f = feature.astype(np.float64)
    f -= f.mean()
    total = np.zeros(values.shape[1])
    for a in range(0, len(values), _CORR_BLOCK):
        total += values[a : a + _CORR_BLOCK].sum(axis=0, dtype=np.float64)
    mean = total / len(values)
    cov = np.zeros(values.shape[1])
    var = np.zeros(values.shape[1])
    for a in range(0, len(values), _CORR_BLOCK):
        x = values[a : a + _CORR_BLOCK].astype(np.float64) - mean
        cov += f[a : a + _CORR_BLOCK] @ x
        var += np.einsum("ij,ij->j", x, x)
    denom = np.sqrt(var * (f @ f))
    return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)


def rank_cells(trace: CellTrace, feature: np.ndarray, *, name: str = "feature", top: int = 5) -> Ranking:
    """The `top` cells of every layer by |Pearson r| with `feature` (one value per character of `trace.text`).

    A feature that is the same on every character (no quotes in the text at all) correlates with nothing: that is
    a TextgenError saying so, not a table of zeros."""
    feature = np.asarray(feature)
    if feature.shape != (trace.chars,):
        raise ValueError(f"the feature has shape {feature.shape}, the trace {trace.chars} characters")
    if np.ptp(feature) == 0:
        raise TextgenError(
            f"the feature {name!r} never changes in this text ({trace.chars} characters); "
            "use a text where it occurs, or another feature"
        )
    r = correlations(trace.values, feature)
    best = np.argsort(-np.abs(r), kind="stable")[:top]
    cells = tuple(CellScore(int(i) // trace.hidden, int(i) % trace.hidden, float(r[i])) for i in best)
    return Ranking(name, cells, trace.chars)


def rank_feature(trace: CellTrace, spec: str, *, top: int = 5) -> Ranking:
    """Rank by a feature as users type it: a built-in name, or ``find REGEX`` (correlation with the match mask)."""
    head, _, pattern = spec.lstrip().partition(" ")
    if head == FIND:  # the pattern is kept as typed after one space: its own spaces may matter
        if not pattern:
            raise TextgenError("find needs a regular expression: find REGEX")
        return rank_cells(trace, regex_mask(pattern, trace.text), name=f"{FIND} {pattern}", top=top)
    name = spec.strip()
    return rank_cells(trace, feature_values(name, trace.text), name=name, top=top)
