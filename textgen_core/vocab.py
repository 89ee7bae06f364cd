"""The vocabulary: the seam between text and token ids that training, the token file, the checkpoint, inference,
scoring and every REPL command go through.

`Vocabulary` is the character vocabulary (the sorted distinct characters of a corpus), textgen's default and the
base of the interface: ``tokens`` (each id's text), ``encode`` (text → ids and the unknown characters skipped),
``decode``, ``lengths`` (characters per token), ``kind`` and ``meta`` (what a checkpoint stores besides the
token list). Word and word-piece vocabularies (`textgen_core.tokens`) implement the same interface with tokens
of one or more characters; every single character of their training text is a token too, so encoding never
hides text behind an unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

#: Control characters allowed in a corpus and a vocabulary. Anything else below U+0020 (and DEL, C1) would be
#: a terminal control sequence when printed, so corpora containing them are refused as binary-looking.
ALLOWED_CONTROLS = frozenset("\n\t")


def is_forbidden_control(ch: str) -> bool:
    """True for characters that act on a terminal (C0 except newline/tab, DEL, C1)."""
    o = ord(ch)
    return ch not in ALLOWED_CONTROLS and (o < 0x20 or 0x7F <= o <= 0x9F)


@dataclass(frozen=True)
class Encoded:
    """Result of encoding text: the ids of the characters the vocabulary knows, and those it does not.

    Unknown characters are reported rather than raised so that the caller decides what to do (skip them in a
    seed, count them in an evaluation).
    """

    ids: np.ndarray
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


class Vocabulary:
    """Maps characters to ids and back. Ids follow the sorted order of the characters."""

    #: The token kind a checkpoint records (`textgen train --tokens`); characters are the default.
    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary entries must be distinct")
        #: Each id's text: one character here, one or more for the token kinds of `textgen_core.tokens`.
        self.tokens: list[str] = chars
        self._index = {c: i for i, c in enumerate(chars)}
        self._lengths = np.ones(len(chars), np.int64)  # read per generated token (`sample_many`): made once
        # Fast path for encoding long texts: a lookup table over code points.
        top = max((ord(c) for c in chars), default=0) + 1
        self._table = np.full(top, -1, dtype=np.int64)
        for i, c in enumerate(chars):
            self._table[ord(c)] = i

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, ch: object) -> bool:
        return ch in self._index

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.tokens == other.tokens and self.meta() == other.meta()

    def __hash__(self) -> int:
        return hash(tuple(self.tokens))

    @property
    def is_chars(self) -> bool:
        """Whether every token is one character (the default kind): per-character records keep their fields."""
        return self.kind == "char"

    @property
    def lengths(self) -> np.ndarray:
        """Characters per token, by id: what turns bits per token into bits per character."""
        return self._lengths

    def meta(self) -> dict[str, str]:
        """What a checkpoint stores of the vocabulary besides its token list (`tokens.from_meta` reads it back);
        nothing for characters, so character checkpoints stay as they were."""
        return {}

    def knows(self, ch: str) -> bool:
        """Whether the character `ch` can be encoded (else `encode` reports it unknown and skips it)."""
        return ch in self._index

    def describe(self) -> str:
        """How `info`, the banner and `/info` name it: ``65 characters``, ``2,000 words``."""
        return f"{len(self):,} characters"

    def index(self, ch: str) -> int | None:
        return self._index.get(ch)

    def encode(self, text: str) -> Encoded:
        """Encode `text`, skipping (and reporting) characters outside the vocabulary."""
        if not text:
            return Encoded(np.zeros(0, dtype=np.int64))
        # surrogatepass: text decoded with errors="surrogateescape" may hold lone surrogates; they are simply unknown.
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        ids = np.full(points.shape, -1, dtype=np.int64)
        in_range = points < len(self._table)
        ids[in_range] = self._table[points[in_range]]
        known = ids >= 0
        unknown: dict[str, int] = {}
        if not known.all():
            for p in points[~known]:
                ch = chr(int(p))
                unknown[ch] = unknown.get(ch, 0) + 1
        return Encoded(ids[known], unknown)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[int(i)] for i in ids)


def describe_unknown(unknown: dict[str, int], limit: int = 8) -> str:
    """Human-readable list of unknown characters, e.g. `'é' ×3, '\\x1b' ×1`."""
    items = sorted(unknown.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{ch!r} ×{n}" for ch, n in items[:limit])
    if len(items) > limit:
        shown += f", and {len(items) - limit} more"
    return shown
