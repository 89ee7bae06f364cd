"""Scoring a text: the model's probability of each character given everything before it, and bits per character
(`textgen eval`, `/score`, validation on the numpy path).

Three strategies give the same numbers within a stated tolerance: `exact` feeds the text once in order;
the default cuts a long text into parts scored side by side as a batch (`parallel_steps`), each part starting
`SCORE_BURN_IN` characters early so that its state has forgotten the zero start; a windowed model (an imported
Keras one) predicts each character from its last window, many windows batched per step. Scoring starts as
generation does (`generate.start_id`), so a text generated from an empty seed scores to the probabilities it was
generated with.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .generate import SCORE_CHUNK, Progress, char_record, check_window, encode_text, record_key, start_id
from .sampling import LN2, log_softmax

if TYPE_CHECKING:
    from .inference import LSTMState, NumpyLSTM
    from .vocab import Encoded, Vocabulary

#: Windows run side by side when scoring a windowed model: one (4H, 512) state per step, a few MB for the book's model.
WINDOW_BATCH = 512
#: Parallel scoring: how many streams a long text is split into, and how many characters before its part each
#: stream reads, unscored, to reach the state the sequential pass would have there (an LSTM's memory of what
#: came earlier fades; docs/record/benchmarks.md measures the difference this leaves against `exact` scoring).
SCORE_STREAMS = 128
SCORE_BURN_IN = 50
#: Each part's first characters after its burn-in are scored from an approximate state: one error per part
#: boundary. On the bundled model at burn-in 50 (`bench/bench_score.py --boundaries`, 563 boundaries) it averages
#: −0.14 bits (the parallel score comes out a little lower) with a spread of 1.49 bits; the constants below take
#: the larger values of that and an earlier 225-boundary run (−0.26, 1.57). Over a text of n characters in s parts
#: the errors shift bits/char by about (−0.26·(s−1) ± 1.57·√(s−1)) / n: nothing for long texts, too much for short
#: ones cut into many parts, so `score_streams` runs the most streams for which that shift, with three times the
#: spread, stays within SCORE_TOLERANCE. Every text from about 43,000 characters gets all `SCORE_STREAMS`.
BOUNDARY_BIAS = 0.26
BOUNDARY_SPREAD = 1.57
SCORE_TOLERANCE = 0.002


@dataclass(frozen=True)
class ScoreResult:
    """The model's probability of each token of a text given everything before it.

    `text` is what was scored (lower-cased for a lower-case model, unknown characters removed), `pieces` its
    tokens' texts (its characters for a character model; they concatenate to `text`), `probs` each token's
    probability, `bits` each token's −log2 p (from log-probabilities, so it stays finite where a probability
    underflows), `total_bits` their sum, `unknown` the characters skipped. Bits per character divide by the
    characters, whatever the token kind, so models of different kinds compare.
    """

    text: str
    probs: np.ndarray
    bits: np.ndarray
    total_bits: float
    unknown: dict[str, int] = field(default_factory=dict)
    #: The tokens' texts of a word or word-piece model; empty for a character model, whose tokens are `text`'s
    #: characters (`token_texts`), so a long scored text is not copied into one string per character.
    pieces: tuple[str, ...] = ()
    #: What a record calls a token's text (`generate.record_key`).
    key: str = "char"

    @property
    def token_texts(self) -> Sequence[str]:
        """Each scored token's text, in order: `pieces`, or the characters of `text`."""
        return self.pieces or self.text

    def records(self) -> Iterator[dict[str, object]]:
        """One JSON-ready record per scored token (`char_record` plus its `bits`): `index` is its position among
        the tokens (a character's position in `text` for a character model), and the records' bits add up to
        `total_bits` (up to float summation order)."""
        for i, (piece, prob, bits) in enumerate(
            zip(self.token_texts, self.probs.tolist(), self.bits.tolist(), strict=True)
        ):
            yield char_record(piece, i, prob, key=self.key, bits=bits)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def tokens(self) -> int:
        return len(self.probs)

    @property
    def bpc(self) -> float:
        """Bits per character (NaN when nothing was scored)."""
        return self.total_bits / self.chars if self.chars else math.nan

    def char_bits(self) -> np.ndarray:
        """Bits per character of `text`: each token's bits shared evenly by its characters (a character model's
        own bits), so that models of different token kinds line up on one text (`versus`)."""
        if not self.pieces:
            return self.bits
        lengths = np.array([len(p) for p in self.pieces], np.int64)
        return np.repeat(self.bits / lengths, lengths)

    @property
    def bits_per_token(self) -> float:
        return self.total_bits / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        """Per token: 2 to the bits per token."""
        return 2.0**self.bits_per_token if self.tokens else math.nan

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


def score_streams(chars: int) -> int:
    """How many parallel streams `score` runs over `chars` characters (1: the sequential pass). See BOUNDARY_BIAS."""
    for streams in range(SCORE_STREAMS, 1, -1):
        boundaries = streams - 1
        if BOUNDARY_BIAS * boundaries + 3 * BOUNDARY_SPREAD * math.sqrt(boundaries) <= SCORE_TOLERANCE * chars:
            return streams
    return 1


def _score_inputs(model: NumpyLSTM, vocab: Vocabulary, text: str, lowercase: bool) -> tuple[Encoded, np.ndarray]:
    """The encoded text (the targets) and what is fed before each of them: the start character, then the text."""
    enc = encode_text(vocab, text, lowercase)
    inputs = np.concatenate([[start_id(model, vocab)], enc.ids[:-1]]).astype(np.int64)
    return enc, inputs


def _score_sequential(
    model: NumpyLSTM, inputs: np.ndarray, targets: np.ndarray, progress: Progress | None, upto: int | None = None
) -> np.ndarray:
    """One stateful pass over the first `upto` positions (default: all); the rest of the array is left unset."""
    upto = len(targets) if upto is None else upto
    logp = np.empty(len(targets))
    state = model.initial_state(1)
    for a in range(0, upto, SCORE_CHUNK):
        logits, _ = model.forward(inputs[a : min(a + SCORE_CHUNK, upto)], state)
        at = np.arange(a, a + len(logits))
        logp[at] = log_softmax(logits)[np.arange(len(at)), targets[at]]
        if progress:
            progress(a + len(at), len(targets))
    return logp


def _score_windowed(
    model: NumpyLSTM, inputs: np.ndarray, targets: np.ndarray, window: int, progress: Progress | None
) -> np.ndarray:
    """Each position predicted from the `window` inputs before it, from a zero state (the Keras book's way).

    The first `window` positions come from one stateful pass: their whole context fits in the window, so the two
    ways coincide there. The rest run `WINDOW_BATCH` windows side by side.
    """
    stateful = min(window, len(targets))
    logp = _score_sequential(model, inputs, targets, progress, upto=stateful)
    # Position t ≥ window: the window is inputs[t - window + 1 .. t], i.e. the `window` characters before t.
    offsets = np.arange(1 - window, 1)
    for a in range(stateful, len(targets), WINDOW_BATCH):
        at = np.arange(a, min(a + WINDOW_BATCH, len(targets)))
        logits = model.window_logits(inputs[at[:, None] + offsets])
        logp[at] = log_softmax(logits)[np.arange(len(at)), targets[at]]
        if progress:
            progress(int(at[-1]) + 1, len(targets))
    return logp


def parallel_steps(
    model: NumpyLSTM, seq: np.ndarray, streams: int, burn_in: int
) -> Iterator[tuple[np.ndarray, np.ndarray, LSTMState]]:
    """Feed `seq` as `streams` consecutive parts side by side, one batched step for all of them at a time.

    Every stream starts from a zero state `burn_in` positions before its part (or at position 0 where that is
    earlier, so the first stream and any stream whose burn-in reaches the start are exact), so that when its part
    begins its state approximates the one a single sequential pass has there: an LSTM's memory of what came earlier
    fades. Yields, after each step, `(positions, columns, state)` for the streams inside their own part: the
    positions of `seq` just fed, the state's columns (streams) that fed them, and the state (updated in place; the
    head is not run, see `_score_parallel`). The one runner behind parallel scoring and `cells.trace_cells`.
    """
    n = len(seq)
    bounds = np.linspace(0, n, streams + 1).astype(np.int64)
    begins = np.maximum(bounds[:-1] - burn_in, 0)
    state = model.initial_state(streams)
    for t in range(int((bounds[1:] - begins).max())):
        pos = begins + t
        model.advance(seq[np.minimum(pos, n - 1)], state)  # a finished stream idles on the last input
        keep = (pos >= bounds[:-1]) & (pos < bounds[1:])
        if keep.any():
            yield pos[keep], np.flatnonzero(keep), state


def _score_parallel(
    model: NumpyLSTM, inputs: np.ndarray, targets: np.ndarray, streams: int, burn_in: int, progress: Progress | None
) -> np.ndarray:
    """Score `targets` in `streams` parallel parts (see `parallel_steps`).

    The top layer's outputs are collected for about `SCORE_CHUNK` characters and the head and the softmax run once
    over all of them: one large product instead of a small one per step."""
    logp = np.empty(len(targets))
    tops = np.empty((model.hidden, SCORE_CHUNK + streams), np.float32)  # feature-major, as the state
    at = np.empty(SCORE_CHUNK + streams, np.int64)
    held = done = 0

    def flush() -> None:
        nonlocal held, done
        logits = model.head(tops[:, :held])
        logp[at[:held]] = log_softmax(logits)[np.arange(held), targets[at[:held]]]
        done, held = done + held, 0
        if progress:
            progress(done, len(targets))

    for pos, cols, state in parallel_steps(model, inputs, streams, burn_in):
        k = len(cols)
        tops[:, held : held + k] = model.top(state) if k == streams else model.top(state)[:, cols]
        at[held : held + k] = pos
        held += k
        if held >= SCORE_CHUNK:
            flush()
    if held:
        flush()
    return logp


def score(
    model: NumpyLSTM,
    vocab: Vocabulary,
    text: str,
    lowercase: bool = False,
    *,
    exact: bool = False,
    window: int | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """The model's probability of each character of `text` given all before it (the first given the start
    character), and the bits per character. Unknown characters are removed from the input and reported.

    A text of a few thousand characters or more is scored in up to `SCORE_STREAMS` parallel streams (fewer for
    shorter texts, see `score_streams` and `_score_parallel`): faster (docs/record/benchmarks.md measures how much), and
    within a measured tolerance of the sequential result rather than equal to it. `exact` forces the sequential
    pass, which every shorter text takes anyway. With `window`, each character is predicted from the `window`
    characters before it (the start character counts as one), from a zero state: as the Keras book's model predicts.
    `progress(done, total)` is called as characters are scored.

    This is the one implementation behind `textgen eval` and the REPL's /score.
    """
    check_window(window)
    enc, inputs = _score_inputs(model, vocab, text, lowercase)
    targets = enc.ids
    streams = score_streams(len(targets))
    if window is not None:
        logp = _score_windowed(model, inputs, targets, window, progress)
    elif exact or streams < 2:
        logp = _score_sequential(model, inputs, targets, progress)
    else:
        logp = _score_parallel(model, inputs, targets, streams, SCORE_BURN_IN, progress)
    bits = -logp / LN2
    pieces = () if vocab.is_chars else tuple(vocab.tokens[i] for i in targets)
    key = record_key(vocab)
    return ScoreResult(vocab.decode(targets), np.exp(logp), bits, float(bits.sum()), enc.unknown, pieces, key)
