"""Generation and scoring on the numpy inference path (no torch): a stateful streaming sampler, a batched
sampler for several settings at once, and per-character scoring of a text.

The seed is fed once (`NumpyLSTM.forward`), then every sampled character is fed back as a single step, so the
work per character is constant and the state carries over (unlike re-running a 60-character window per
character, the book's recipe).

Seeds and scored texts are lower-cased first when the model was trained lower-case. Characters outside the
vocabulary are reported (which, how many) and skipped: the model sees the text with them removed.

The start state: a model needs one character of context before it predicts anything. An empty seed (or one
with no character the model knows) starts from a newline when the vocabulary has one (the start of a line or
paragraph), else from the model's most likely first character: the argmax of what its output layer predicts
from a zero hidden state. Scoring uses the same start, so the first character of a scored text is predicted as
if it followed an empty seed, and `score` of a text generated from an empty seed reproduces the probabilities
reported while it was generated.

Windowed models: a model trained the Keras book's way (an imported one, whose checkpoint records its `window`)
never saw more than `window` characters, always from a zero state. With ``window=W``, `Generator`, `sample_many`
and `score` run it that way: each next character is predicted from the last W characters fed (the start character
counts as one), from a zero state each time. That costs W steps per character instead of one; scoring batches the
windows of many positions into one matrix product per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .inference import LSTMState, NumpyLSTM
from .sampling import LN2, SamplingSettings, distribution, draw, entropy_bits, log_softmax
from .vocab import Encoded, Vocabulary

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

_MODEL_ITSELF = SamplingSettings()
#: Characters per `forward` call when scoring: bounds memory to a few MB whatever the text's length.
SCORE_CHUNK = 2048
#: Windows run side by side when scoring a windowed model: one (4H, 512) state per step, a few MB for the book's model.
WINDOW_BATCH = 512


@dataclass(frozen=True)
class Token:
    """One generated character and what the model thought of it.

    `prob` is the model's own probability (temperature 1) and `entropy` the entropy of that distribution in
    bits; `sampled_prob` is the probability under the distribution actually drawn from (after temperature,
    top-k, top-p). `alternatives` holds the model's most probable characters with their probabilities, when asked.
    """

    char: str
    index: int
    prob: float
    sampled_prob: float
    entropy: float
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PrimeResult:
    """What a seed became: the ids fed to the model, as text, and the unknown characters skipped (char → count).

    `started_empty` is True when nothing of the seed was usable and the start character was fed instead.
    """

    ids: np.ndarray
    text: str
    unknown: dict[str, int] = field(default_factory=dict)
    started_empty: bool = False

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


@dataclass(frozen=True)
class ScoreResult:
    """The model's probability of each character of a text given everything before it.

    `text` is what was scored (lower-cased for a lower-case model, unknown characters removed), `probs` its
    per-character probabilities, `total_bits` the sum of −log2 p (computed from log-probabilities, so it stays
    finite where a probability underflows), `unknown` the characters skipped.
    """

    text: str
    probs: np.ndarray
    total_bits: float
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def chars(self) -> int:
        return len(self.probs)

    @property
    def bpc(self) -> float:
        """Bits per character (NaN when nothing was scored)."""
        return self.total_bits / self.chars if self.chars else math.nan

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


@dataclass(frozen=True)
class GeneratorState:
    """A snapshot of a `Generator`: the LSTM state and the pending prediction for the next character (and, for a
    windowed generator, the ids of the window)."""

    lstm: LSTMState
    logits: np.ndarray
    recent: np.ndarray | None = None


def start_id(model: NumpyLSTM, vocab: Vocabulary) -> int:
    """The character fed when there is no seed: a newline if the vocabulary has one, else the model's most
    likely first character (argmax of its prediction from a zero hidden state)."""
    newline = vocab.index("\n")
    return newline if newline is not None else int(np.argmax(model.initial_logits()))


def _encode(vocab: Vocabulary, text: str, lowercase: bool) -> Encoded:
    return vocab.encode(text.lower() if lowercase else text)


def encode_seed(
    model: NumpyLSTM, vocab: Vocabulary, text: str, lowercase: bool = False, *, fallback: bool = True
) -> PrimeResult:
    """Turn seed text into the ids to feed: lower-cased for a lower-case model, unknown characters skipped and
    reported. With `fallback`, a seed with nothing usable becomes the start character (see the module doc)."""
    enc = _encode(vocab, text, lowercase)
    if len(enc.ids) or not fallback:
        return PrimeResult(enc.ids, vocab.decode(enc.ids), enc.unknown)
    start = start_id(model, vocab)
    return PrimeResult(np.array([start]), vocab.chars[start], enc.unknown, started_empty=True)


def _draw_tokens(
    logits: np.ndarray,
    settings: Sequence[SamplingSettings],
    rngs: Sequence[np.random.Generator],
    vocab: Vocabulary,
    alternatives: int,
) -> tuple[list[Token], np.ndarray]:
    """Draw one character per row of `logits` (B, V) and describe each as a Token; returns (tokens, ids)."""
    logp = log_softmax(logits)
    probs = np.exp(logp)
    entropy = entropy_bits(probs, logp)
    plain = all(s == _MODEL_ITSELF for s in settings)  # T = 1, no filters: draw from the model's own distribution
    dist = probs if plain else distribution(logp, settings)
    ids = draw(dist, rngs)
    rows = np.arange(len(ids))
    model_p, sampled_p = probs[rows, ids], dist[rows, ids]
    alts: list[tuple[tuple[str, float], ...]] = [()] * len(ids)
    if alternatives > 0:
        top = np.argsort(-probs, axis=-1, kind="stable")[:, :alternatives]
        alts = [tuple((vocab.chars[j], float(probs[r, j])) for j in top[r]) for r in rows]
    tokens = [
        Token(vocab.chars[i], int(i), float(model_p[r]), float(sampled_p[r]), float(entropy[r]), alts[r])
        for r, i in enumerate(ids)
    ]
    return tokens, ids


class Generator:
    """A stateful streaming sampler over one model.

    `settings` is read at every character, so a front end may change it while `stream` runs (live temperature).
    The RNG is not part of `get_state`: rewinding and streaming again draws a new continuation unless the seed
    is set again with `set_seed`. With `window`, each character is predicted from the last `window` characters
    fed, from a zero state (see the module doc); without, statefully from everything fed.
    """

    def __init__(
        self,
        model: NumpyLSTM,
        vocab: Vocabulary,
        *,
        lowercase: bool = False,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        window: int | None = None,
    ):
        if len(vocab) != model.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters, the model {model.vocab_size}")
        _check_window(window)
        self.window = window
        self.model = model
        self.vocab = vocab
        self.lowercase = lowercase
        self.settings = settings or SamplingSettings()
        self.rng = np.random.default_rng(seed)
        self._state: LSTMState
        self._logits: np.ndarray
        self._recent = np.zeros(0, dtype=np.int64)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        ckpt: Checkpoint,
        *,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        window: int | None = None,
    ) -> Generator:
        """`window` is the caller's choice (e.g. ``ckpt.meta.window`` to run an imported model the book's way)."""
        model = NumpyLSTM.from_checkpoint(ckpt)
        return cls(model, ckpt.vocab, lowercase=ckpt.meta.lowercase, settings=settings, seed=seed, window=window)

    def set_seed(self, seed: int | None) -> None:
        """Restart the RNG: an int makes what follows reproducible, None draws fresh entropy."""
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Forget all context: back to the start state, as after priming with an empty seed."""
        self.prime("")

    def prime(self, text: str, *, carry: bool = False) -> PrimeResult:
        """Feed a seed in one batched pass. By default from a fresh state; with `carry`, on top of the current
        state (chat-like continuation, where an empty text feeds nothing)."""
        seed = encode_seed(self.model, self.vocab, text, self.lowercase, fallback=not carry)
        if not carry:
            self._state = self.model.initial_state(1)
            self._recent = self._recent[:0]
        if len(seed.ids) and self.window is not None:
            self._slide(seed.ids)
        elif len(seed.ids):
            logits, _ = self.model.forward(seed.ids, self._state)
            self._logits = logits[-1:]
        return seed

    def _slide(self, ids: np.ndarray) -> None:
        """Windowed: append `ids` to the window and predict the next character from it, from a zero state."""
        self._recent = np.concatenate([self._recent, ids])[-self.window :]
        self._logits = self.model.window_logits(self._recent[None])

    def stream(self, n: int, alternatives: int = 0) -> Iterator[Token]:
        """Yield `n` characters, each fed back before it is yielded (so stopping early leaves a consistent
        state that a later `stream` continues). `alternatives` > 0 attaches the model's top characters."""
        for _ in range(n):
            (token,), ids = _draw_tokens(self._logits, [self.settings], [self.rng], self.vocab, alternatives)
            if self.window is None:
                self._logits, _ = self.model.step(ids, self._state)
            else:
                self._slide(ids)
            yield token

    def get_state(self) -> GeneratorState:
        return GeneratorState(self._state.copy(), self._logits.copy(), self._recent.copy())

    def set_state(self, state: GeneratorState) -> None:
        self._state = state.lstm.copy()
        self._logits = state.logits.copy()
        if state.recent is not None:
            self._recent = state.recent.copy()


def sample_many(
    model: NumpyLSTM,
    vocab: Vocabulary,
    prompt: str,
    settings: Sequence[SamplingSettings],
    length: int,
    rng: np.random.Generator,
    lowercase: bool = False,
    alternatives: int = 0,
    window: int | None = None,
) -> Iterator[list[Token]]:
    """Continue one prompt under several settings at once: primes once, then draws ``len(settings)`` streams in
    one batched pass, yielding one list of tokens (one per setting) per position.

    Stream i draws from ``rng.spawn(len(settings))[i]``, so it equals a `Generator` primed with the same prompt
    whose `rng` is that child, up to float rounding between batched and single-stream products. With `window`,
    every stream is predicted from its own last `window` characters (the windows advance as one batch).
    """
    _check_window(window)
    seed = encode_seed(model, vocab, prompt, lowercase)
    rngs = rng.spawn(len(settings))
    if window is not None:
        recent = np.repeat(seed.ids[None, -window:], len(settings), axis=0)
        logits = model.window_logits(recent)
        for _ in range(length):
            tokens, ids = _draw_tokens(logits, settings, rngs, vocab, alternatives)
            recent = np.concatenate([recent, ids[:, None]], axis=1)[:, -window:]
            logits = model.window_logits(recent)
            yield tokens
        return
    state = model.initial_state(1)
    logits, _ = model.forward(seed.ids, state)
    state = state.repeat(len(settings))
    logits = np.repeat(logits[-1:], len(settings), axis=0)
    for _ in range(length):
        tokens, ids = _draw_tokens(logits, settings, rngs, vocab, alternatives)
        logits, _ = model.step(ids, state)
        yield tokens


def _check_window(window: int | None) -> None:
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got {window!r}")


def score(
    model: NumpyLSTM, vocab: Vocabulary, text: str, lowercase: bool = False, *, window: int | None = None
) -> ScoreResult:
    """The model's probability of each character of `text` given all before it (the first given the start
    character), and the bits per character. Unknown characters are removed from the input and reported.
    With `window`, each character is predicted from the `window` characters before it (the start character
    counts as one), from a zero state: as the Keras book's model predicts.

    This is the one implementation behind `textgen eval` and the REPL's /score.
    """
    _check_window(window)
    enc = _encode(vocab, text, lowercase)
    targets = enc.ids
    inputs = np.concatenate([[start_id(model, vocab)], targets[:-1]]).astype(np.int64)
    logp = np.empty(len(targets))
    # One stateful pass: the whole text, or for a window only its first `window` positions, whose context (the
    # start character and all before them) fits in the window, so stateful and windowed predictions coincide.
    stateful = len(targets) if window is None else min(window, len(targets))
    state = model.initial_state(1)
    for a in range(0, stateful, SCORE_CHUNK):
        logits, _ = model.forward(inputs[a : min(a + SCORE_CHUNK, stateful)], state)
        at = np.arange(a, a + len(logits))
        logp[at] = log_softmax(logits)[np.arange(len(at)), targets[at]]
    # Position t ≥ window: the window is inputs[t - window + 1 .. t], i.e. the `window` characters before t.
    offsets = np.arange(1 - (window or 0), 1)
    for a in range(stateful, len(targets), WINDOW_BATCH):
        at = np.arange(a, min(a + WINDOW_BATCH, len(targets)))
        logits = model.window_logits(inputs[at[:, None] + offsets])
        logp[at] = log_softmax(logits)[np.arange(len(at)), targets[at]]
    return ScoreResult(vocab.decode(targets), np.exp(logp), float(-logp.sum() / LN2), enc.unknown)
