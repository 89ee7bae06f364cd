"""Reading training text: decoding, validation, the vocabulary and the train/validation split.

A corpus is one or more text files concatenated in the order given. Line endings are normalised to ``\\n``
(so a model trained on a Windows file accepts what people type). The validation split is the last
``val_fraction`` of the characters, as in the classic char-rnn / Keras recipes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TextgenError
from .vocab import Vocabulary, is_forbidden_control

DEFAULT_MAX_VOCAB = 1000


@dataclass(frozen=True)
class Source:
    """One file of a corpus, identified by name and content hash (stored in checkpoints for --resume checks)."""

    name: str
    sha256: str
    chars: int

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        return cls(str(d["name"]), str(d["sha256"]), int(d["chars"]))


@dataclass
class Corpus:
    """Decoded, validated text plus its vocabulary and token ids."""

    text: str
    vocab: Vocabulary
    tokens: np.ndarray
    sources: list[Source]
    lowercase: bool

    def split(self, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (train, validation) token arrays; validation is the last `val_fraction` of the text."""
        n_val = int(len(self.tokens) * val_fraction)
        return self.tokens[: len(self.tokens) - n_val], self.tokens[len(self.tokens) - n_val :]


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise TextgenError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise TextgenError(f"{path}: is a folder; give the text files inside it")
    try:
        return path.read_bytes()
    except OSError as e:
        raise TextgenError(f"{path}: cannot read ({e.strerror or e}); check its permissions") from None


def decode_text(path: Path, data: bytes, encoding: str) -> str:
    """Decode `data`, normalise newlines and refuse text that looks binary. Errors name the file and offset."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise TextgenError(f"{path}: contains a NUL byte at byte offset {nul}; this looks like a binary file, not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise TextgenError(
            f"{path}: not valid {encoding} at byte offset {e.start}; pass --encoding (e.g. --encoding latin-1)"
        ) from None
    except LookupError:
        raise TextgenError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for i, ch in enumerate(text):
        if is_forbidden_control(ch):
            raise TextgenError(
                f"{path}: contains the control character U+{ord(ch):04X} at character {i}; "
                "this looks binary or like captured terminal output; remove such characters first"
            )
    return text


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read and decode one text file with the same checks and messages as training (for eval and prompts)."""
    path = Path(path)
    return decode_text(path, _read_bytes(path), encoding)


def load_corpus(
    paths: list[str | os.PathLike],
    *,
    encoding: str = "utf-8",
    lowercase: bool = False,
    max_vocab: int = DEFAULT_MAX_VOCAB,
    vocab: Vocabulary | None = None,
) -> Corpus:
    """Read, decode and check the files; build the vocabulary (or check the text against a given one)."""
    if not paths:
        raise TextgenError("no corpus given; pass one or more text files")
    texts: list[str] = []
    sources: list[Source] = []
    for p in paths:
        path = Path(p)
        data = _read_bytes(path)
        text = decode_text(path, data, encoding)
        if lowercase:
            text = text.lower()
        texts.append(text)
        sources.append(Source(path.name, hashlib.sha256(data).hexdigest(), len(text)))
    text = "".join(texts)
    if not text:
        names = ", ".join(str(p) for p in paths)
        raise TextgenError(f"{names}: the corpus is empty; give a file with text in it")
    built = Vocabulary.from_text(text)
    if len(built) > max_vocab:
        raise TextgenError(
            f"{paths[0]}: {len(built)} distinct characters (more than --max-vocab {max_vocab}); "
            "this looks binary; check the file or raise --max-vocab"
        )
    if vocab is None:
        vocab = built
    else:
        missing = [c for c in built.chars if c not in vocab]
        if missing:
            raise TextgenError(
                f"the corpus has characters the model's vocabulary lacks ({''.join(missing)[:20]!r}); "
                "train a new model instead of --resume"
            )
    dtype = np.uint8 if len(vocab) <= 256 else np.uint16
    tokens = vocab.encode(text).ids.astype(dtype)
    return Corpus(text=text, vocab=vocab, tokens=tokens, sources=sources, lowercase=lowercase)
