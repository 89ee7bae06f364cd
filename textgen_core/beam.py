"""Beam search beside sampling: the most likely continuation of a fixed length that a beam of width W finds.

Which beam search this is, since several go by the name:

- **Deterministic.** No random numbers: the same model, context, width and length give the same text. (The
  stochastic variant, which draws the beam's successors instead of taking the best, is not this.)
- **Scored by the model's own distribution**: the sum of log-probabilities at temperature 1 with no top-k/top-p,
  so the reported total bits are what `score` would report for the text after the same context.
- **Fixed length.** Every beam is exactly `length` characters long, so scores compare without any length
  normalisation and there is no end-of-text character to stop at.
- **Ties** between equal scores go to the beam ranked higher, then to the lower character id; ranks are stable, so
  width 1 is exactly greedy decoding (argmax, lowest id on ties, as temperature 0 draws).
- **One batched step per position**: the W surviving beams' states are gathered from their parents' columns and
  advanced together by `NumpyLSTM.step`, so a position costs one (4H, W) product per layer, not W separate steps.

**No repeated n-grams** (`no_repeat=N`, optional): a beam may not write an N-character stretch it has already
written; the characters that would do so are left out of its candidates (their scores stay the model's, so the
total bits still score the text). Beams fall into loops at low entropy (`repeats.find_loop` flags them), and this
is the usual remedy; docs/record/copies.md measures what it costs in bits/char.

It is not an exact search: a continuation that falls out of the top W at some position is gone, so a wider beam
usually but not always finds a likelier text (bench/bench_beam.py measures how often it beats greedy).

A front end iterates `BeamSearch` (one `BeamProgress` per position) so it can show progress and stop on Ctrl-C,
then calls `result()`, which also works on a search stopped part-way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .config import MAX_BEAM_WIDTH
from .errors import TextgenError
from .generate import Generator, GeneratorState, Token, chars, describe_tokens
from .inference import LSTMState, NumpyLSTM
from .sampling import LN2, log_softmax
from .vocab import Vocabulary

#: Widest beam accepted (why: see `config.MAX_BEAM_WIDTH`).
MAX_WIDTH = MAX_BEAM_WIDTH
#: Alternatives attached to every token, as the REPL records for sampled text (so /alts works on a beam).
ALTERNATIVES = 5


def check_width(width: object) -> int:
    """`width` as an int, or TextgenError unless it is a whole number in 1..MAX_WIDTH."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= MAX_WIDTH:
        raise TextgenError(f"beam width must be a whole number from 1 to {MAX_WIDTH}, got {width!r}")
    return int(width)


def check_length(length: object) -> int:
    """`length` as an int, or TextgenError unless it is a whole number ≥ 0."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise TextgenError(f"beam length must be a whole number ≥ 0, got {length!r}")
    return int(length)


@dataclass(frozen=True)
class BeamProgress:
    """After `position` of `length` characters: the best beam's total bits so far."""

    position: int
    length: int
    best_bits: float


@dataclass(frozen=True)
class BeamResult:
    """The best continuation found: its tokens (rendered like sampled ones; `sampled_prob` is 1, the choice
    being deterministic), its total bits under the model, and the generator state after its last character
    (so a front end can continue from it). `complete` is False when the search was stopped early."""

    width: int
    tokens: list[Token]
    total_bits: float
    state: GeneratorState
    complete: bool

    @property
    def text(self) -> str:
        return "".join(t.char for t in self.tokens)

    @property
    def bpc(self) -> float:
        """Bits per character (NaN for an empty result)."""
        return self.total_bits / chars(self.tokens) if self.tokens else float("nan")


class BeamSearch:
    """A beam search from a generator state (see the module doc); iterate it to advance one position at a time."""

    def __init__(
        self,
        model: NumpyLSTM,
        vocab: Vocabulary,
        start: GeneratorState,
        width: int,
        length: int,
        *,
        alternatives: int = ALTERNATIVES,
        no_repeat: int | None = None,
    ):
        if len(vocab) != model.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters, the model {model.vocab_size}")
        if no_repeat is not None and no_repeat < 2:
            raise TextgenError(f"the repeated n-gram length must be at least 2, got {no_repeat}")
        if start.lstm.batch != 1:
            raise ValueError("a beam starts from a single-stream state")
        self.model = model
        self.vocab = vocab
        self.width = check_width(width)
        self.length = check_length(length)
        self.alternatives = alternatives
        self._state = start.lstm.copy()  # (layers*H, B): one column per live beam, best first
        self._logits = start.logits.copy()  # (B, V): each beam's pending prediction
        self._scores = np.zeros(1)  # (B,): each beam's total log-probability (nats)
        # Backpointers per position: which beam each survivor extends, and the token it added.
        self._parents: list[np.ndarray] = []
        self._tokens: list[list[Token]] = []
        self.no_repeat = no_repeat
        # Each beam's token ids as a string (chr(id) per token), kept only to refuse repeated n-grams of tokens
        # (of characters, for a character model) with str.find's speed.
        self._texts = [""]
        self._chars = np.zeros(1, np.int64)  # (B,): each beam's length in characters

    @classmethod
    def from_generator(cls, gen: Generator, width: int, length: int, **kwargs: int) -> BeamSearch:
        """Continue from wherever `gen` stands (primed seed, carried state); `gen` itself is not moved."""
        return cls(gen.model, gen.vocab, gen.get_state(), width, length, **kwargs)

    @property
    def position(self) -> int:
        """Characters of the best beam so far (a word or word-piece search ends on the first token boundary at or
        past `length`)."""
        return int(self._chars[0])

    def __iter__(self) -> Iterator[BeamProgress]:
        while self.position < self.length:
            self._advance()
            yield BeamProgress(self.position, self.length, float(-self._scores[0] / LN2))

    def run(self) -> BeamResult:
        """Search to the end and return the result."""
        for _ in self:
            pass
        return self.result()

    def _advance(self) -> None:
        logp = log_softmax(self._logits)
        vocab_size = logp.shape[1]
        allowed = logp if self.no_repeat is None else self._without_repeats(logp)
        candidates = (self._scores[:, None] + allowed).ravel()  # beam-major, so a stable sort breaks ties as promised
        order = np.argsort(-candidates, kind="stable")[: self.width]
        parents, ids = np.divmod(order, vocab_size)
        self._tokens.append(
            describe_tokens(np.exp(logp[parents]), logp[parents], ids, None, self.vocab, self.alternatives)
        )
        self._parents.append(parents)
        self._scores = candidates[order]
        if self.no_repeat is not None:
            self._texts = [self._texts[p] + chr(i) for p, i in zip(parents, ids, strict=True)]
        self._chars = self._chars[parents] + self.vocab.lengths[ids]
        # np.take returns fresh C-ordered arrays: the step updates the gathered states in place.
        self._state = LSTMState(np.take(self._state.h, parents, axis=1), np.take(self._state.c, parents, axis=1))
        self._logits, _ = self.model.step(ids, self._state)

    def _without_repeats(self, logp: np.ndarray) -> np.ndarray:
        """`logp` with the characters that would repeat one of its beam's n-grams at -inf (never a whole row)."""
        masked = logp.copy()
        n = int(self.no_repeat or 0)
        for row, text in enumerate(self._texts):
            tail = text[len(text) - n + 1 :]
            if len(tail) < n - 1:
                continue
            banned = set()
            at = text.find(tail)
            while 0 <= at < len(text) - n + 1:
                banned.add(ord(text[at + n - 1]))
                at = text.find(tail, at + 1)
            if len(banned) < logp.shape[1]:
                masked[row, sorted(banned)] = -np.inf
        return masked

    def result(self) -> BeamResult:
        """The best beam so far, traced back through the parents (all `length` characters unless stopped early)."""
        tokens: list[Token] = []
        beam = 0  # beams are kept best first
        for parents, row in zip(reversed(self._parents), reversed(self._tokens), strict=True):
            tokens.append(row[beam])
            beam = int(parents[beam])
        tokens.reverse()
        state = GeneratorState(
            LSTMState(self._state.h[:, :1].copy(), self._state.c[:, :1].copy()), self._logits[:1].copy()
        )
        return BeamResult(self.width, tokens, float(-self._scores[0] / LN2), state, self.position >= self.length)


def beam_search(
    model: NumpyLSTM,
    vocab: Vocabulary,
    prompt: str,
    width: int,
    length: int,
    *,
    lowercase: bool = False,
    alternatives: int = ALTERNATIVES,
) -> BeamResult:
    """Continue `prompt` (primed as `Generator.prime` does: unknown characters skipped, empty means the start
    character) with a beam of `width` for `length` characters."""
    gen = Generator(model, vocab, lowercase=lowercase)
    gen.prime(prompt)
    return BeamSearch.from_generator(gen, width, length, alternatives=alternatives).run()
