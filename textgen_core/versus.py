"""Two checkpoints on one text: each one's bits/char, and the characters where they disagree most.

Each model scores the text exactly as `textgen eval` does (`scoring.score` on the text, lower-cased first for a
lower-case model, windowed for a windowed one), so its bits/char is eval's. The two may know different characters:
each result is laid back onto the text's positions (NaN where a model skipped an unknown character), and the
characters compared are those both scored. `continuation_bits` scores a continuation after its seed the same way,
for the REPL's /versus table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .corpus import code_points
from .inference import NumpyLSTM
from .scoring import ScoreResult, score

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .generate import Progress
    from .vocab import Vocabulary


@dataclass(frozen=True)
class Scorer:
    """A model as scoring needs it: the network, its vocabulary, lower-casing and window."""

    model: NumpyLSTM
    vocab: Vocabulary
    lowercase: bool = False
    window: int | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, window: int | None = None) -> Scorer:
        return cls(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, ckpt.meta.lowercase, window)


@dataclass(frozen=True)
class Scored:
    """One model's score of a text: `result` as `score` gives it, and `bits` per character of the text as given
    (NaN where the model skipped the character)."""

    result: ScoreResult
    bits: np.ndarray

    @property
    def bpc(self) -> float:
        return self.result.bpc


def view(text: str, lowercase: bool) -> str:
    """The text as a model reads it: lower-cased for a lower-case model, as `textgen eval` does. The rare
    character whose lower case is longer (İ) is kept as it is, so positions still match the text's."""
    if not lowercase:
        return text
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def score_on(scorer: Scorer, text: str, *, exact: bool = False, progress: Progress | None = None) -> Scored:
    """Score `text` with one model and lay the result onto the text's positions."""
    seen = view(text, scorer.lowercase)
    result = score(scorer.model, scorer.vocab, seen, exact=exact, window=scorer.window, progress=progress)
    chars = sorted(c for c in set(seen) if scorer.vocab.knows(c))
    table = np.zeros(max([ord(c) for c in chars], default=0) + 1, bool)
    table[[ord(c) for c in chars]] = True
    points = code_points(seen).astype(np.int64)
    known = np.zeros(len(points), bool)
    inside = points < len(table)
    known[inside] = table[points[inside]]
    bits = np.full(len(text), math.nan)
    bits[np.flatnonzero(known)] = result.char_bits()
    return Scored(result, bits)


@dataclass(frozen=True)
class Difference:
    """A character both models scored: where, which, and each one's bits for it."""

    index: int
    char: str
    a_bits: float
    b_bits: float

    @property
    def gap(self) -> float:
        """How many more bits model A spent on it than B (negative: A found it likelier)."""
        return self.a_bits - self.b_bits


def largest_differences(text: str, a: Scored, b: Scored, top: int) -> list[Difference]:
    """The `top` characters where the two models' bits differ most, in the text's order."""
    both = np.flatnonzero(np.isfinite(a.bits) & np.isfinite(b.bits))
    gaps = np.abs(a.bits[both] - b.bits[both])
    chosen = np.sort(both[np.argsort(-gaps, kind="stable")[:top]])
    return [Difference(int(i), text[i], float(a.bits[i]), float(b.bits[i])) for i in chosen]


def continuation_bits(scorer: Scorer, seed: str, continuation: str) -> float:
    """Bits/char the model spends on `continuation` after `seed` (NaN when it knows none of its characters)."""
    bits = score_on(scorer, seed + continuation).bits[len(seed) :]
    known = bits[np.isfinite(bits)]
    return float(known.mean()) if len(known) else math.nan


def first_difference(a: str, b: str) -> int | None:
    """The first position where two texts differ (the shorter one's end if one continues the other), or None."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
