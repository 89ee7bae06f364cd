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

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .config import PRIME_TAIL
from .inference import LSTMState, NumpyLSTM
from .rng import Rng
from .sampling import SamplingSettings, distribution, draw, entropy_bits, log_softmax
from .vocab import Encoded, Vocabulary

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

_MODEL_ITSELF = SamplingSettings()
#: Characters per `forward` call when scoring or priming, and per head product in parallel scoring: bounds memory
#: to a few MB whatever the text's length.
SCORE_CHUNK = 2048
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

    #: The token's text: one character for a character model, one or more for words and word pieces.
    char: str
    index: int
    prob: float
    sampled_prob: float
    entropy: float
    alternatives: tuple[tuple[str, float], ...] = ()
    #: The record's name for the text (`record_key`): "char" for a character model, "token" otherwise.
    key: str = "char"

    def record(self, temperature: float, **context: object) -> dict[str, object]:
        """This character as one JSON object, the record that `textgen sample --jsonl` and the REPL's JSONL
        transcript both write: what was drawn, both probabilities, the entropy, the temperature it was drawn at
        (it may change mid-run), then `context` (which sample, which turn)."""
        return char_record(
            self.char,
            self.index,
            self.prob,
            key=self.key,
            sampled_prob=self.sampled_prob,
            entropy=self.entropy,
            temperature=temperature,
            **context,
        )


def char_record(char: str, index: int, prob: float, *, key: str = "char", **fields: object) -> dict[str, object]:
    """One token as a JSON object: the fields every per-token record starts with, so that a script reads
    `textgen sample --jsonl`, the REPL's transcript and `textgen eval --jsonl` with the same field names; `fields`
    adds what each one knows besides (the sampling's probability, the scored token's bits). `key` names the
    text (`record_key`): a character model's records keep their "char" field."""
    return {key: char, "index": index, "prob": prob, **fields}


def chars(tokens: Iterable[Token]) -> int:
    """The characters `tokens` hold (their number, for a character model): lengths, rates and bits per character
    count characters whatever the token kind."""
    return sum(len(t.char) for t in tokens)


def record_key(vocab: Vocabulary) -> str:
    """What a per-token record calls its text: "char" for a character model, "token" for words and pieces."""
    return "char" if vocab.is_chars else "token"


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


class GeneratorState(NamedTuple):
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


def encode_text(vocab: Vocabulary, text: str, lowercase: bool) -> Encoded:
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
        enc = encode_text(vocab, text[max(0, end - ENCODE_PIECE) : end], lowercase)
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
    return PrimeResult(np.array([start]), vocab.tokens[start], unknown, started_empty=True)


def feed(model: NumpyLSTM, ids: np.ndarray, state: LSTMState, progress: Progress | None = None) -> np.ndarray:
    """Feed `ids` to one stream in chunks of `SCORE_CHUNK` (memory bounded whatever their number), updating
    `state` in place; returns the logits (1, V) after the last one. `progress(done, total)` after each chunk."""
    logits = np.empty((0, model.vocab_size), np.float32)
    for a in range(0, len(ids), SCORE_CHUNK):
        logits, _ = model.forward(ids[a : a + SCORE_CHUNK], state)
        if progress:
            progress(min(a + SCORE_CHUNK, len(ids)), len(ids))
    return logits[-1:]


def describe_tokens(
    probs: np.ndarray,
    logp: np.ndarray,
    ids: np.ndarray,
    dist: np.ndarray | None,
    vocab: Vocabulary,
    alternatives: int,
) -> list[Token]:
    """Tokens for the characters `ids` chosen from the rows of the model's distributions (`probs`, `logp`,
    both (B, V)); `dist` is what they were chosen from, or None for a deterministic choice (sampled_prob 1).
    Sampling, step mode and beam search all describe their characters here."""
    entropy = entropy_bits(probs, logp)
    rows = np.arange(len(ids))
    model_p = probs[rows, ids]
    sampled_p = np.ones(len(ids)) if dist is None else dist[rows, ids]
    alts: list[tuple[tuple[str, float], ...]] = [()] * len(ids)
    key = record_key(vocab)
    if alternatives > 0:
        top = np.argsort(-probs, axis=-1, kind="stable")[:, :alternatives]
        alts = [tuple((vocab.tokens[j], float(probs[r, j])) for j in top[r]) for r in rows]
    return [
        Token(vocab.tokens[i], int(i), float(model_p[r]), float(sampled_p[r]), float(entropy[r]), alts[r], key)
        for r, i in enumerate(ids)
    ]


def sampling_distribution(probs: np.ndarray, logp: np.ndarray, settings: Sequence[SamplingSettings]) -> np.ndarray:
    """What a draw under `settings` (one per row) draws from. T = 1 with no filters is the model's own `probs`
    as they are, so a character taken by hand reports the same `sampled_prob`, bit for bit, as one drawn."""
    plain = all(s == _MODEL_ITSELF for s in settings)
    return probs if plain else distribution(logp, settings)


def _draw_tokens(
    logits: np.ndarray,
    settings: Sequence[SamplingSettings],
    rngs: Sequence[Rng],
    vocab: Vocabulary,
    alternatives: int,
) -> tuple[list[Token], np.ndarray]:
    """Draw one character per row of `logits` (B, V) and describe each as a Token; returns (tokens, ids)."""
    logp = log_softmax(logits)
    probs = np.exp(logp)
    dist = sampling_distribution(probs, logp, settings)
    ids = draw(dist, rngs)
    return describe_tokens(probs, logp, ids, dist, vocab, alternatives), ids


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
        check_window(window)
        self.window = window
        self.model = model
        self.vocab = vocab
        self.lowercase = lowercase
        self.settings = settings or SamplingSettings()
        self.rng = Rng(seed)
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
        self.rng = Rng(seed)

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
        recent = self._recent if carry else self._recent[:0]
        if len(seed.ids) and self.window is not None:
            self._state, self._recent = state, recent
            self._slide(seed.ids)
        elif len(seed.ids):
            logits = feed(self.model, seed.ids, state, progress)
            self._state, self._recent, self._logits = state, recent, logits
        return seed

    def feed_ids(self, ids: np.ndarray) -> None:
        """Feed token ids on top of the current state, as if they had been drawn: a branch rebuilt from its own
        tokens (`steer.rebuild`), where encoding its text again could cut it into other tokens."""
        if not len(ids):
            return
        if self.window is not None:
            self._slide(ids)
        else:
            self._logits = feed(self.model, ids, self._state)

    def _slide(self, ids: np.ndarray) -> None:
        """Windowed: append `ids` to the window and predict the next character from it, from a zero state."""
        self._recent = np.concatenate([self._recent, ids])[-self.window :]
        self._logits = self.model.window_logits(self._recent[None])

    def stream(self, n: int, alternatives: int = 0) -> Iterator[Token]:
        """Yield tokens until they hold `n` characters (`n` tokens for a character model; a word or word-piece
        run ends on the first token boundary at or past `n` characters), each fed back before it is yielded (so
        stopping early leaves a consistent state that a later `stream` continues). `alternatives` > 0 attaches
        the model's top tokens."""
        made = 0
        while made < n:
            (token,), ids = _draw_tokens(self._logits, [self.settings], [self.rng], self.vocab, alternatives)
            if self.window is None:
                self._logits, _ = self.model.step(ids, self._state)
            else:
                self._slide(ids)
            made += len(token.char)
            yield token

    @property
    def lstm_state(self) -> LSTMState:
        """The live LSTM state, not a copy: what a front end reads after each streamed character (one cell's value)
        without `get_state`'s copy of every array. Read it, never write it: `stream` updates it in place, and
        `prime` and `set_state` replace it, so read it afresh after each character rather than keep it."""
        return self._state

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
    rng: Rng,
    lowercase: bool = False,
    alternatives: int = 0,
    window: int | None = None,
    progress: Progress | None = None,
) -> Iterator[list[Token | None]]:
    """Continue one prompt under several settings at once: primes once, then draws ``len(settings)`` streams in
    one batched pass, yielding one list of tokens (one per setting) per position, until every stream holds
    `length` characters. A stream that has its characters (a word or word-piece model's streams end at different
    positions, each on the first token boundary at or past `length`) gives None at the positions after.

    Stream i draws from ``rng.spawn(len(settings))[i]``, so it equals a `Generator` primed with the same prompt
    whose `rng` is that child, up to float rounding between batched and single-stream products. The prompt is
    fed as `Generator.prime` feeds it (its last `PRIME_TAIL` known characters, `progress(done, total)` after each
    chunk) when the first position is asked for. With `window`, every stream is predicted from its own last
    `window` characters (the windows advance as one batch).
    """
    check_window(window)
    seed = encode_seed(model, vocab, prompt, lowercase)
    rngs = rng.spawn(len(settings))
    made = np.zeros(len(settings), np.int64)
    if length < 1:
        return
    if window is not None:
        recent = np.repeat(seed.ids[None, -window:], len(settings), axis=0)
        logits = model.window_logits(recent)
    else:
        state = model.initial_state(1)
        logits = feed(model, seed.ids, state, progress)
        state = state.repeat(len(settings))
        logits = np.repeat(logits, len(settings), axis=0)
    while True:
        tokens, ids = _draw_tokens(logits, settings, rngs, vocab, alternatives)
        live = made < length
        made += np.where(live, vocab.lengths[ids], 0)
        yield [t if on else None for t, on in zip(tokens, live, strict=True)]
        if (made >= length).all():  # the last token needs no prediction after it
            return
        if window is not None:
            recent = np.concatenate([recent, ids[:, None]], axis=1)[:, -window:]
            logits = model.window_logits(recent)
        else:
            logits, _ = model.step(ids, state)


def check_window(window: int | None) -> None:
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got {window!r}")
