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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .inference import LSTMState, NumpyLSTM
from .sampling import LN2, SamplingSettings, distribution, draw, entropy_bits, log_softmax
from .vocab import Encoded, Vocabulary

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

_MODEL_ITSELF = SamplingSettings()
#: Characters per `forward` call when scoring or priming: bounds memory to a few MB whatever the text's length.
SCORE_CHUNK = 2048
#: A seed is fed from its last PRIME_TAIL known characters. An LSTM's memory of earlier text fades: feeding more
#: changes the next-character distribution by less than float32 rounding (docs/errors.md has the measurement),
#: while a book-length seed would otherwise take minutes to feed.
PRIME_TAIL = 20_000
#: Characters of a seed encoded at a time, so that encoding costs memory for one piece, not the whole seed.
ENCODE_PIECE = 1 << 16
#: A progress callback: (done, total), in characters.
Progress = Callable[[int, int], None]


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

    def record(self, temperature: float, **context: object) -> dict[str, object]:
        """This character as one JSON object, the record that `textgen sample --jsonl` and the REPL's JSONL
        transcript both write: what was drawn, both probabilities, the entropy, the temperature it was drawn at
        (it may change mid-run), then `context` (which sample, which turn)."""
        return char_record(
            self.char,
            self.index,
            self.prob,
            sampled_prob=self.sampled_prob,
            entropy=self.entropy,
            temperature=temperature,
            **context,
        )


def char_record(char: str, index: int, prob: float, **fields: object) -> dict[str, object]:
    """One character as a JSON object: the fields every per-character record starts with, so that a script reads
    `textgen sample --jsonl`, the REPL's transcript and `textgen eval --jsonl` with the same field names; `fields`
    adds what each one knows besides (the sampling's probability, the scored character's bits)."""
    return {"char": char, "index": index, "prob": prob, **fields}


@dataclass(frozen=True)
class PrimeResult:
    """What a seed became: the ids fed to the model, as text, and the unknown characters skipped (char → count).

    `started_empty` is True when nothing of the seed was usable and the start character was fed instead;
    `skipped` counts the known characters before the last `PRIME_TAIL`, which were not fed.
    """

    ids: np.ndarray
    text: str
    unknown: dict[str, int] = field(default_factory=dict)
    started_empty: bool = False
    skipped: int = 0

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


@dataclass(frozen=True)
class ScoreResult:
    """The model's probability of each character of a text given everything before it.

    `text` is what was scored (lower-cased for a lower-case model, unknown characters removed), `probs` its
    per-character probabilities, `bits` each character's −log2 p (from log-probabilities, so it stays finite
    where a probability underflows), `total_bits` their sum, `unknown` the characters skipped.
    """

    text: str
    probs: np.ndarray
    bits: np.ndarray
    total_bits: float
    unknown: dict[str, int] = field(default_factory=dict)

    def records(self) -> Iterator[dict[str, object]]:
        """One JSON-ready record per scored character (`char_record` plus its `bits`): `index` is the position in
        `text`, and the records' bits add up to `total_bits` (up to float summation order)."""
        for i, (char, prob, bits) in enumerate(zip(self.text, self.probs.tolist(), self.bits.tolist(), strict=True)):
            yield char_record(char, i, prob, bits=bits)

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
    """A snapshot of a `Generator`: the LSTM state and the pending prediction for the next character."""

    lstm: LSTMState
    logits: np.ndarray


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
    reported. With `fallback`, a seed with nothing usable becomes the start character (see the module doc).

    Only the last `PRIME_TAIL` known characters are kept (`skipped` counts the known characters before them): the
    text is read from its end in pieces, so a seed of any length costs memory for the tail and one piece, not
    an id per character; unknown characters are still counted over the whole seed.
    """
    pieces: list[np.ndarray] = []
    unknown: dict[str, int] = {}
    kept = skipped = 0
    for end in range(len(text), 0, -ENCODE_PIECE):
        enc = _encode(vocab, text[max(0, end - ENCODE_PIECE) : end], lowercase)
        for ch, n in enc.unknown.items():
            unknown[ch] = unknown.get(ch, 0) + n
        take = min(len(enc.ids), PRIME_TAIL - kept)
        if take:
            pieces.append(enc.ids[len(enc.ids) - take :])
            kept += take
        skipped += len(enc.ids) - take
    ids = np.concatenate(pieces[::-1]) if pieces else np.zeros(0, dtype=np.int64)
    if len(ids) or not fallback:
        return PrimeResult(ids, vocab.decode(ids), unknown, skipped=skipped)
    start = start_id(model, vocab)
    return PrimeResult(np.array([start]), vocab.chars[start], unknown, started_empty=True)


def feed(model: NumpyLSTM, ids: np.ndarray, state: LSTMState, progress: Progress | None = None) -> np.ndarray:
    """Feed `ids` to one stream in chunks of `SCORE_CHUNK` (memory bounded whatever their number), updating
    `state` in place; returns the logits (1, V) after the last one. `progress(done, total)` after each chunk."""
    logits = np.empty((0, model.vocab_size), np.float32)
    for a in range(0, len(ids), SCORE_CHUNK):
        logits, _ = model.forward(ids[a : a + SCORE_CHUNK], state)
        if progress:
            progress(min(a + SCORE_CHUNK, len(ids)), len(ids))
    return logits[-1:]


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
    is set again with `set_seed`.
    """

    def __init__(
        self,
        model: NumpyLSTM,
        vocab: Vocabulary,
        *,
        lowercase: bool = False,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
    ):
        if len(vocab) != model.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters, the model {model.vocab_size}")
        self.model = model
        self.vocab = vocab
        self.lowercase = lowercase
        self.settings = settings or SamplingSettings()
        self.rng = np.random.default_rng(seed)
        self._state: LSTMState
        self._logits: np.ndarray
        self.reset()

    @classmethod
    def from_checkpoint(
        cls, ckpt: Checkpoint, *, settings: SamplingSettings | None = None, seed: int | None = None
    ) -> Generator:
        return cls(
            NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, lowercase=ckpt.meta.lowercase, settings=settings, seed=seed
        )

    def set_seed(self, seed: int | None) -> None:
        """Restart the RNG: an int makes what follows reproducible, None draws fresh entropy."""
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Forget all context: back to the start state, as after priming with an empty seed."""
        self.prime("")

    def prime(self, text: str, *, carry: bool = False, progress: Progress | None = None) -> PrimeResult:
        """Feed a seed. By default from a fresh state; with `carry`, on top of the current state (chat-like
        continuation, where an empty text feeds nothing). Only the last `PRIME_TAIL` known characters of a longer
        seed are fed (see `feed`).

        The new state is committed only when the whole seed is in: an exception (a KeyboardInterrupt while a
        long seed is fed) leaves the generator exactly as it was.
        """
        seed = encode_seed(self.model, self.vocab, text, self.lowercase, fallback=not carry)
        state = self._state.copy() if carry else self.model.initial_state(1)
        if len(seed.ids):
            logits = feed(self.model, seed.ids, state, progress)
            self._state, self._logits = state, logits
        elif not carry:
            self._state = state
        return seed

    def stream(self, n: int, alternatives: int = 0) -> Iterator[Token]:
        """Yield `n` characters, each fed back before it is yielded (so stopping early leaves a consistent
        state that a later `stream` continues). `alternatives` > 0 attaches the model's top characters."""
        for _ in range(n):
            (token,), ids = _draw_tokens(self._logits, [self.settings], [self.rng], self.vocab, alternatives)
            self._logits, _ = self.model.step(ids, self._state)
            yield token

    def get_state(self) -> GeneratorState:
        return GeneratorState(self._state.copy(), self._logits.copy())

    def set_state(self, state: GeneratorState) -> None:
        self._state = state.lstm.copy()
        self._logits = state.logits.copy()


def sample_many(
    model: NumpyLSTM,
    vocab: Vocabulary,
    prompt: str,
    settings: Sequence[SamplingSettings],
    length: int,
    rng: np.random.Generator,
    lowercase: bool = False,
    alternatives: int = 0,
) -> Iterator[list[Token]]:
    """Continue one prompt under several settings at once: primes once, then draws ``len(settings)`` streams in
    one batched pass, yielding one list of tokens (one per setting) per position.

    Stream i draws from ``rng.spawn(len(settings))[i]``, so it equals a `Generator` primed with the same prompt
    whose `rng` is that child, up to float rounding between batched and single-stream products.
    """
    seed = encode_seed(model, vocab, prompt, lowercase)
    state = model.initial_state(1)
    logits = feed(model, seed.ids, state)
    state = state.repeat(len(settings))
    logits = np.repeat(logits, len(settings), axis=0)
    rngs = rng.spawn(len(settings))
    for _ in range(length):
        tokens, ids = _draw_tokens(logits, settings, rngs, vocab, alternatives)
        logits, _ = model.step(ids, state)
        yield tokens


#: Parallel scoring: how many streams a long text is split into, and how many characters before its part each
#: stream reads, unscored, to reach the state the sequential pass would have there (an LSTM's memory of what
#: came earlier fades; docs/benchmarks.md measures the difference this leaves against `exact` scoring).
SCORE_STREAMS = 128
SCORE_BURN_IN = 250


def _score_inputs(model: NumpyLSTM, vocab: Vocabulary, text: str, lowercase: bool) -> tuple[Encoded, np.ndarray]:
    """The encoded text (the targets) and what is fed before each of them: the start character, then the text."""
    enc = _encode(vocab, text, lowercase)
    inputs = np.concatenate([[start_id(model, vocab)], enc.ids[:-1]]).astype(np.int64)
    return enc, inputs


def _score_sequential(
    model: NumpyLSTM, inputs: np.ndarray, targets: np.ndarray, progress: Progress | None
) -> np.ndarray:
    logp = np.empty(len(targets))
    state = model.initial_state(1)
    for a in range(0, len(targets), SCORE_CHUNK):
        logits, _ = model.forward(inputs[a : a + SCORE_CHUNK], state)
        chunk = targets[a : a + SCORE_CHUNK]
        logp[a : a + len(chunk)] = log_softmax(logits)[np.arange(len(chunk)), chunk]
        if progress:
            progress(a + len(chunk), len(targets))
    return logp


def _score_parallel(
    model: NumpyLSTM, inputs: np.ndarray, targets: np.ndarray, streams: int, burn_in: int, progress: Progress | None
) -> np.ndarray:
    """Score `targets` as `streams` contiguous parts advanced together, one batched step per position.

    Stream b scores positions [b·L, (b+1)·L) and starts `burn_in` positions earlier from a zero state, so that
    when its part begins its state approximates the sequential one. A stream whose burn-in would start before the
    text begins is exact instead: its state is zeroed when it reaches position 0, as the sequential pass starts.
    """
    n = len(targets)
    part = -(-n // streams)
    steps = burn_in + part
    starts = np.arange(streams) * part - burn_in  # position each stream feeds at its first step
    logp = np.empty(n)
    state = model.initial_state(streams)
    cols = np.arange(streams)
    for t in range(steps):
        pos = starts + t
        if t == 0 or (pos == 0).any():
            state.h[:, pos == 0] = 0.0
            state.c[:, pos == 0] = 0.0
        valid = (pos >= 0) & (pos < n)
        logits, _ = model.step(inputs[np.clip(pos, 0, n - 1)], state)
        scored = valid & (t >= burn_in)
        if scored.any():
            rows = cols[scored]
            lp = log_softmax(logits[rows])
            logp[pos[scored]] = lp[np.arange(len(rows)), targets[pos[scored]]]
        if progress and t >= burn_in:
            progress(min(n, (t - burn_in + 1) * streams), n)
    return logp


def score(
    model: NumpyLSTM,
    vocab: Vocabulary,
    text: str,
    lowercase: bool = False,
    *,
    exact: bool = False,
    progress: Progress | None = None,
) -> ScoreResult:
    """The model's probability of each character of `text` given all before it (the first given the start
    character), and the bits per character. Unknown characters are removed from the input and reported.

    A text long enough to fill `SCORE_STREAMS` parts of at least `SCORE_BURN_IN` characters is scored in
    parallel streams (see `_score_parallel`): several times faster, and within a measured tolerance of the
    sequential result rather than equal to it. `exact` forces the sequential pass, which every shorter text
    takes anyway. `progress(done, total)` is called as characters are scored.

    This is the one implementation behind `textgen eval` and the REPL's /score.
    """
    enc, inputs = _score_inputs(model, vocab, text, lowercase)
    targets = enc.ids
    streams = min(SCORE_STREAMS, len(targets) // (2 * SCORE_BURN_IN))
    if exact or streams < 2:
        logp = _score_sequential(model, inputs, targets, progress)
    else:
        logp = _score_parallel(model, inputs, targets, streams, SCORE_BURN_IN, progress)
    bits = -logp / LN2
    return ScoreResult(vocab.decode(targets), np.exp(logp), bits, float(bits.sum()), enc.unknown)
