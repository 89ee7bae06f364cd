"""Reading training text: decoding, validation, the vocabulary and the train/validation split.

A corpus is one or more text files concatenated in the order given. Line endings are normalised to ``\\n``
(so a model trained on a Windows file accepts what people type). The validation split is the last
``val_fraction`` of the characters, as in the classic char-rnn / Keras recipes.

Files are read in pieces (`SourceReader`) with the same checks and messages whatever their size, so a corpus
larger than memory (`tokenfile`) and a small one held in memory follow one set of rules.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TextgenError
from .paths import read_error
from .sources import Source
from .vocab import Vocabulary, is_forbidden_control

DEFAULT_MAX_VOCAB = 1000
#: Files are read this many bytes at a time, so reading needs the same memory whatever the file's size (a piece
#: passes through a few copies: decoded text, code points, ids; tens of MB at most).
CHUNK_BYTES = 1 << 20
#: The characters `is_forbidden_control` refuses (all lie below U+00A0), as one regex: a scan runs at C speed.
_FORBIDDEN = re.compile("[" + "".join(re.escape(chr(o)) for o in range(0xA0) if is_forbidden_control(chr(o))) + "]")


@dataclass
class Corpus:
    """Validated text as token ids, plus its vocabulary.

    `tokens` is an in-memory array, or (`tokenfile.MappedCorpus`) a read-only memory map of a token file for
    corpora larger than memory. The decoded text is not kept: `vocab.decode(tokens)` gives it back.
    """

    vocab: Vocabulary
    tokens: np.ndarray
    sources: list[Source]
    lowercase: bool

    def split(self, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (train, validation) token arrays; validation is the last `val_fraction` of the text."""
        cut = val_start(len(self.tokens), val_fraction)
        return self.tokens[:cut], self.tokens[cut:]

    def release(self) -> None:
        """Give back memory held for tokens read so far; nothing to do for a corpus in memory (`MappedCorpus`)."""


def val_start(n: int, val_fraction: float) -> int:
    """Where the validation split of an `n`-character text begins (training and `textgen eval` agree on it)."""
    return n - int(n * val_fraction)


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned integer type that holds every id of a vocabulary this large."""
    return np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.uint32


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as an array, one byte each for ASCII text (`isascii` costs nothing)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def check_vocab_size(path: str | os.PathLike, n_chars: int, max_vocab: int) -> None:
    if n_chars > max_vocab:
        raise TextgenError(
            f"{path}: {n_chars} distinct characters (more than --max-vocab {max_vocab}); "
            "this looks binary; check the file or raise --max-vocab"
        )


def check_not_empty(paths: list[str | os.PathLike], n_chars: int) -> None:
    if n_chars == 0:
        names = ", ".join(str(p) for p in paths)
        raise TextgenError(f"{names}: the corpus is empty; give a file with text in it")


class TextDecoder:
    """Decodes one file given piece by piece, normalises newlines and refuses text that looks binary.

    Errors name the file and give positions from the start of the file (byte offsets for bad bytes, character
    positions in the decoded text for control characters) whatever the piece boundaries: the codec's incremental
    decoder keeps a multi-byte character cut by a boundary, and a CR at the end of a piece waits for the next
    one in case it is the first half of a CRLF.
    """

    def __init__(self, path: Path, encoding: str):
        try:
            # Unknown codecs, and codecs that are not text encodings (base64, zlib: bytes to bytes), which
            # `bytes.decode` only refuses once there is something to decode.
            text_codec = getattr(codecs.lookup(encoding), "_is_text_encoding", True)
            self._decoder = codecs.getincrementaldecoder(encoding)()
        except LookupError:
            raise TextgenError(
                f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1"
            ) from None
        if not text_codec:
            raise TextgenError(f"{encoding!r} is not a text encoding; use one such as utf-8 or latin-1")
        self.path = path
        self.encoding = encoding
        self.bytes_in = 0
        self.chars_out = 0
        self._at_start = True
        self._held_cr = False

    def decode(self, data: bytes, final: bool = False) -> str:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise TextgenError(
                f"{self.path}: contains a NUL byte at byte offset {self.bytes_in + nul}; "
                "this looks like a binary file, not text"
            )
        buffered = len(self._decoder.getstate()[0])  # bytes of a character cut by the previous boundary
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as e:
            raise TextgenError(
                f"{self.path}: not valid {self.encoding} at byte offset {self.bytes_in - buffered + e.start}; "
                "pass --encoding (e.g. --encoding latin-1)"
            ) from None
        except UnicodeError as e:  # a codec's own complaint with no position: UTF-16 without its byte-order mark
            raise TextgenError(
                f"{self.path}: not valid {self.encoding} ({e}); pass --encoding (e.g. --encoding latin-1)"
            ) from None
        self.bytes_in += len(data)
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if self._held_cr:
            text = "\r" + text
        self._held_cr = not final and text.endswith("\r")
        if self._held_cr:
            text = text[:-1]
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        bad = _FORBIDDEN.search(text)
        if bad:
            raise TextgenError(
                f"{self.path}: contains the control character U+{ord(bad.group()):04X} at character "
                f"{self.chars_out + bad.start()}; this looks binary or like captured terminal output; "
                "remove such characters first"
            )
        self.chars_out += len(text)
        return text


class SourceReader:
    """Iterates over one corpus file as decoded, checked (and optionally lower-cased) pieces of text.

    The file's sha256 and character count build up as it is read, so one pass gives the text and its `Source`;
    `bytes_read` lets callers show progress.
    """

    def __init__(
        self, path: str | os.PathLike, encoding: str = "utf-8", lowercase: bool = False, chunk_bytes: int = CHUNK_BYTES
    ):
        self.path = Path(path)
        self.decoder = TextDecoder(self.path, encoding)
        self.lowercase = lowercase
        self.chunk_bytes = chunk_bytes
        self.bytes_read = 0
        self.chars = 0
        import hashlib  # loads OpenSSL: only a corpus read needs it, not a sample's start-up

        self._sha = hashlib.sha256()

    def __iter__(self) -> Iterator[str]:
        path = self.path
        try:
            if os.path.isdir(path):
                raise TextgenError(f"{path}: is a folder; give the text files inside it")
            with open(path, "rb") as f:
                while True:
                    data = f.read(self.chunk_bytes)
                    self._sha.update(data)
                    self.bytes_read += len(data)
                    text = self.decoder.decode(data, final=not data)
                    if self.lowercase:
                        text = text.lower()
                    self.chars += len(text)
                    if text:
                        yield text
                    if not data:
                        return
        except FileNotFoundError:
            raise TextgenError(f"{path}: no such file; check the path") from None
        except OSError as e:
            raise read_error(path, e) from None

    def source(self) -> Source:
        """The file's identity and where it was read from; complete once the iteration has finished."""
        return Source(self.path.name, self._sha.hexdigest(), self.chars, str(self.path.absolute()))


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read and decode one text file with the same checks and messages as training (for eval and prompts)."""
    return "".join(SourceReader(path, encoding))


def load_corpus(
    paths: list[str | os.PathLike],
    *,
    encoding: str = "utf-8",
    lowercase: bool = False,
    max_vocab: int = DEFAULT_MAX_VOCAB,
) -> Corpus:
    """Read, decode and check the files into memory; build their vocabulary."""
    if not paths:
        raise TextgenError("no corpus given; pass one or more text files")
    texts: list[str] = []
    sources: list[Source] = []
    for p in paths:
        reader = SourceReader(p, encoding, lowercase)
        texts.append("".join(reader))
        sources.append(reader.source())
    text = "".join(texts)
    check_not_empty(paths, len(text))
    vocab = Vocabulary.from_text(text)
    check_vocab_size(paths[0], len(vocab), max_vocab)
    tokens = vocab.encode(text).ids.astype(token_dtype(len(vocab)))
    return Corpus(vocab=vocab, tokens=tokens, sources=sources, lowercase=lowercase)
