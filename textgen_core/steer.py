"""Steering the model by hand: step mode (pick the next character, undo) and the tree of branches (fork anywhere).

Both rest on one fact: an LSTM's whole context is its state, so going back is restoring a state and going
elsewhere is feeding a different character from it.

**Step mode** (`Stepper`, behind the REPL's /pick) wraps a `Generator`. It lists the model's likeliest next
characters, takes one by its number, by typed character or by a draw at the current settings, and keeps a stack
of `GeneratorState` snapshots so that `undo` puts the state back exactly (undo then the same choice gives
bit-identical probabilities).

**Branches** (`BranchTree`): every run, /compare column, pick session, beam and fork is a `Branch` holding exactly
what the model was fed before it (`context`), its tokens, and where it split from its parent. Characters are
numbered from 1, as /alts numbers them. `Fork` (streaming, stoppable) and `fork` (all at once) rebuild the
state at a character by re-feeding the context and the text before it (the state is exact, and the pending
prediction is computed by the same per-step product as during generation, so the probabilities are bit-identical
too), put another character there and continue.
When the parent's random numbers are known (`Branch.rng_state`), the continuation replays them: forking with the
character that was there reproduces the parent exactly, and with another character any difference is the model's
answer to that character alone, not new randomness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import TextgenError
from .generate import Generator, GeneratorState, Token, describe_tokens, sampling_distribution
from .rng import Rng
from .sampling import SamplingSettings, distribution, log_softmax

#: Choices step mode lists by default: the digits 1-9.
DEFAULT_CHOICES = 9
#: Alternatives attached to every token, as the REPL records for sampled text (so /alts works on any branch).
ALTERNATIVES = 5


@dataclass(frozen=True)
class Choice:
    """One candidate next character: its number in the list (from 1), the model's probability (temperature 1)
    and the probability of drawing it under the current settings."""

    number: int
    char: str
    index: int
    prob: float
    sampled_prob: float


def _char_index(gen: Generator, char: str) -> int:
    """The vocabulary id of a typed character, or of a token for a word or word-piece model (lower-cased for a
    lower-case model), or TextgenError."""
    unit = "character" if gen.vocab.is_chars else "token"
    if not isinstance(char, str) or not char or (gen.vocab.is_chars and len(char) != 1):
        raise TextgenError(f"give one {unit}, got {char!r}")
    index = gen.vocab.index(char.lower() if gen.lowercase else char)
    if index is None:
        raise TextgenError(f"the model does not know the {unit} {char!r}; pick one from its vocabulary")
    return index


def _force(gen: Generator, index: int, alternatives: int) -> Token:
    """Feed character `index` to `gen` as if it had been drawn, and describe it (its `sampled_prob` is its
    probability under `gen.settings`, 0 when the settings could not have drawn it)."""
    state = gen.get_state()
    logp = log_softmax(state.logits)
    probs = np.exp(logp)
    dist = sampling_distribution(probs, logp, [gen.settings])
    (token,) = describe_tokens(probs, logp, np.array([index]), dist, gen.vocab, alternatives)
    logits, _ = gen.model.step(np.array([index]), state.lstm)
    gen.set_state(GeneratorState(state.lstm, logits))
    return token


class Stepper:
    """Step mode over a primed `Generator`: choose each next character by hand.

    The generator's RNG is not rewound by `undo` (as with `Generator.get_state`), so a draw after an undo may
    differ from the one undone; everything else is restored exactly.
    """

    def __init__(self, gen: Generator, *, alternatives: int = ALTERNATIVES):
        self.gen = gen
        self.alternatives = alternatives
        self.tokens: list[Token] = []
        self._undo: list[GeneratorState] = []

    @property
    def text(self) -> str:
        return "".join(t.char for t in self.tokens)

    def prefix(self, n: int) -> str:
        """The text of the branch's first `n` tokens (its first `n` characters for a character model)."""
        return "".join(t.char for t in self.tokens[:n])

    def choices(self, n: int = DEFAULT_CHOICES) -> list[Choice]:
        """The model's `n` likeliest next characters among those the settings' top-k/top-p keep.

        The filters are applied at the current temperature, as a draw applies them, except at temperature 0:
        greedy keeps one character, and step mode is for seeing the others, so there they apply at temperature 1.
        """
        if n < 1:
            raise TextgenError(f"the number of choices must be at least 1, got {n}")
        settings = self.gen.settings
        logp = log_softmax(self.gen.get_state().logits)  # (1, V)
        probs = np.exp(logp)
        dist = sampling_distribution(probs, logp, [settings])[0]
        logp, probs = logp[0], probs[0]
        kept = distribution(logp, SamplingSettings(1.0, settings.top_k, settings.top_p)) if settings.greedy else dist
        order = [int(i) for i in np.argsort(-probs, kind="stable") if kept[i] > 0][:n]
        return [Choice(k, self.gen.vocab.tokens[i], i, float(probs[i]), float(dist[i])) for k, i in enumerate(order, 1)]

    def _push(self) -> None:
        self._undo.append(self.gen.get_state())

    def take(self, number: int, n: int = DEFAULT_CHOICES) -> Token:
        """Take choice `number` (from 1) of `choices(n)`."""
        options = self.choices(n)
        if not 1 <= number <= len(options):
            raise TextgenError(f"choose 1 to {len(options)}, got {number}")
        return self.type(options[number - 1].char)

    def type(self, char: str) -> Token:
        """Take a typed character (any the model knows, listed or not)."""
        index = _char_index(self.gen, char)
        self._push()
        token = _force(self.gen, index, self.alternatives)
        self.tokens.append(token)
        return token

    def draw(self) -> Token:
        """Let the model draw the next character at the current settings (what a run would do)."""
        self._push()
        (token,) = self.gen.stream(1, alternatives=self.alternatives)
        self.tokens.append(token)
        return token

    def undo(self) -> Token | None:
        """Take back the last character, restoring the exact state before it; None when there is nothing to undo."""
        if not self._undo:
            return None
        self.gen.set_state(self._undo.pop())
        return self.tokens.pop()


@dataclass
class Branch:
    """One line of text in the tree.

    `context` is exactly what the model was fed before the first token (the seed as primed, so unknown characters
    removed and an empty seed shown as its start character; in carried, chat-like mode everything before).
    `parent`/`split`: the branch it forked from and the number (from 1) of the parent's character it replaced;
    None for a root. `rng_state` is the RNG's state before the first drawn token (None when the text was not drawn
    from one RNG in order, e.g. picked, beamed or batched), and `forced` how many leading tokens were not drawn.
    """

    id: int
    parent: int | None
    split: int | None
    context: str
    tokens: list[Token]
    kind: str
    label: str = ""
    settings: SamplingSettings | None = None
    rng_state: dict[str, Any] | None = None
    forced: int = 0

    @property
    def text(self) -> str:
        return "".join(t.char for t in self.tokens)

    def prefix(self, n: int) -> str:
        """The text of the branch's first `n` tokens (its first `n` characters for a character model)."""
        return "".join(t.char for t in self.tokens[:n])

    @property
    def total_bits(self) -> float:
        """−log2 of the text's probability under the model (temperature 1) given the context."""
        return float(-sum(np.log2(max(t.prob, 1e-300)) for t in self.tokens))

    @property
    def bpc(self) -> float:
        """Bits per character (NaN when empty), whatever the token kind."""
        return self.total_bits / len(self.text) if self.tokens else float("nan")


def rng_snapshot(rng: Rng) -> dict[str, Any]:
    """The RNG's state, to store as `Branch.rng_state` before a run draws from it."""
    return rng.state


@dataclass
class BranchTree:
    """All branches of a session, by id (from 1, in order of creation), and which one is current."""

    branches: dict[int, Branch] = field(default_factory=dict)
    current: int | None = None

    def add(
        self,
        context: str,
        tokens: list[Token],
        kind: str,
        *,
        label: str = "",
        settings: SamplingSettings | None = None,
        rng_state: dict[str, Any] | None = None,
        parent: int | None = None,
        split: int | None = None,
        forced: int = 0,
    ) -> Branch:
        """Record a new branch and make it current. `context` must be what was fed (see `Branch`), never empty."""
        if not context:
            raise ValueError("a branch's context is what the model was fed, at least the start character")
        branch = Branch(
            len(self.branches) + 1, parent, split, context, list(tokens), kind, label, settings, rng_state, forced
        )
        self.branches[branch.id] = branch
        self.current = branch.id
        return branch

    def get(self, branch_id: int) -> Branch:
        """The branch with this id, or TextgenError naming the ids there are."""
        if branch_id not in self.branches:
            have = f"1 to {len(self.branches)}" if self.branches else "none yet"
            raise TextgenError(f"no branch {branch_id} (branches: {have}); /tree lists them")
        return self.branches[branch_id]

    def go(self, branch_id: int) -> Branch:
        """Make a branch current (the front end then calls `rebuild` to continue it)."""
        branch = self.get(branch_id)
        self.current = branch_id
        return branch

    def extend(self, branch_id: int, tokens: list[Token], *, same_rng: bool = True) -> Branch:
        """Append a continuation to a branch (an empty Enter continues the current one). `same_rng=False` when
        the characters were not the next draws of the branch's RNG (the seed was changed), so forks stop replaying."""
        branch = self.get(branch_id)
        branch.tokens.extend(tokens)
        if not same_rng:
            branch.rng_state = None
        return branch

    def children(self, branch_id: int) -> list[Branch]:
        return [b for b in self.branches.values() if b.parent == branch_id]

    def to_records(self) -> list[dict[str, Any]]:
        """The whole tree as JSONL-ready records: per branch a header (its id, parent, split, context, text,
        bits/char, settings), then one record per character, each naming its branch and parent."""
        records: list[dict[str, Any]] = []
        for b in self.branches.values():
            s = b.settings
            records.append(
                {
                    "branch": b.id,
                    "parent": b.parent,
                    "split": b.split,
                    "kind": b.kind,
                    "label": b.label,
                    "context": b.context,
                    "text": b.text,
                    "bits_per_char": None if not b.tokens else b.bpc,
                    "settings": None
                    if s is None
                    else {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p},
                }
            )
            for number, t in enumerate(b.tokens, 1):
                records.append(
                    {
                        "branch": b.id,
                        "parent": b.parent,
                        "n": number,
                        t.key: t.char,
                        "prob": t.prob,
                        "sampled_prob": t.sampled_prob,
                        "entropy": t.entropy,
                    }
                )
        return records


def rebuild(gen: Generator, branch: Branch, before: int) -> None:
    """Put `gen` in the exact state after the context and the branch's first `before` characters.

    The state is a function of the characters fed, and `forward` and `step` advance it with the same arithmetic;
    only the head's product differs in rounding between them. So all but the last character are primed in one
    pass and the last is stepped, making the pending prediction bit-identical to the one the text was drawn from.
    """
    if not 0 <= before <= len(branch.tokens):
        raise ValueError(f"position {before} outside a branch of {len(branch.tokens)} tokens")
    if before == 0:
        gen.prime(branch.context)  # as the branch itself was primed
        return
    if gen.vocab.is_chars:
        gen.prime((branch.context + branch.prefix(before))[:-1])  # never empty: the context has the start character
    else:  # the branch's own tokens, not the text encoded again, which could cut it into other tokens
        gen.prime(branch.context)
        gen.feed_ids(np.array([t.index for t in branch.tokens[: before - 1]], np.int64))
    _force(gen, branch.tokens[before - 1].index, 0)


class Fork:
    """Restart branch `branch_id` at its character `number` (from 1, as /alts numbers) with `char` instead
    (default: the model's likeliest other character there), then draw `length` more characters.

    Everything a user can get wrong is checked, and the state rebuilt, on construction, before any output.
    Iterating yields the new characters as they come (each already fed back, as `Generator.stream` does);
    when the iteration ends, finishes or is stopped (Ctrl-C, `break`), what was generated becomes `branch`, the
    tree's current one, and `gen` stands at its end. Draws under `settings` (default: the parent's, else the
    generator's) and, where the parent's RNG is known, replays the parent's random numbers from that point,
    otherwise draws from `gen.rng`; `gen`'s own settings and RNG are left as they were.
    """

    def __init__(
        self,
        gen: Generator,
        tree: BranchTree,
        branch_id: int,
        number: int,
        char: str | None = None,
        *,
        length: int,
        settings: SamplingSettings | None = None,
        alternatives: int = ALTERNATIVES,
    ):
        parent = tree.get(branch_id)
        n = len(parent.tokens)
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 1 <= number <= n:
            raise TextgenError(
                f"fork at a character from 1 to {n} of branch {branch_id}, got {number!r}"
                if n
                else f"branch {branch_id} has no characters to fork from"
            )
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise TextgenError(f"length must be a whole number ≥ 0, got {length!r}")
        index = None if char is None else _char_index(gen, char)
        self.gen, self.tree, self.parent, self.number = gen, tree, parent, int(number)
        self.length, self.alternatives = int(length), alternatives
        self.settings = settings or parent.settings or gen.settings
        self.branch: Branch | None = None
        split = self.number - 1
        rebuild(gen, parent, split)
        if index is None:
            old = parent.tokens[split].index
            index = next(int(i) for i in np.argsort(-gen.get_state().logits[0], kind="stable") if i != old)
        self.index = index
        self.rng = gen.rng
        if parent.rng_state is not None:
            self.rng = Rng.from_state(parent.rng_state)
            # Skip the uniforms of the parent's drawn characters up to and including the one replaced (one per
            # character, see sampling.draw), so each later character is drawn with the parent's number for its place.
            for _ in range(max(0, split + 1 - parent.forced)):
                self.rng.random()

    def __iter__(self) -> Iterator[Token]:
        gen = self.gen
        saved = gen.settings, gen.rng
        gen.settings, gen.rng = self.settings, self.rng
        rng_state = rng_snapshot(self.rng)  # before the first draw: the forced character draws nothing
        tokens: list[Token] = []
        try:
            tokens.append(_force(gen, self.index, self.alternatives))
            yield tokens[-1]
            for token in gen.stream(self.length, alternatives=self.alternatives):
                tokens.append(token)
                yield token
        finally:
            gen.settings, gen.rng = saved
            if tokens:
                p = self.parent
                self.branch = self.tree.add(
                    p.context + p.prefix(self.number - 1),
                    tokens,
                    "fork",
                    label=f"{p.id}@{self.number}",
                    settings=self.settings,
                    rng_state=rng_state,
                    parent=p.id,
                    split=self.number,
                    forced=1,
                )

    def run(self) -> Branch:
        """Generate to the end and return the new branch."""
        for _ in self:
            pass
        assert self.branch is not None
        return self.branch


def fork(
    gen: Generator,
    tree: BranchTree,
    branch_id: int,
    number: int,
    char: str | None = None,
    *,
    length: int,
    settings: SamplingSettings | None = None,
    alternatives: int = ALTERNATIVES,
) -> Branch:
    """`Fork(...).run()`: the whole fork at once, for scripts and tests."""
    return Fork(gen, tree, branch_id, number, char, length=length, settings=settings, alternatives=alternatives).run()
