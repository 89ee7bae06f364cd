"""Corpora larger than memory: the corpus encoded once into a memory-mapped token file next to the run.

``RUN/tokens.u8`` (``.u16`` for vocabularies over 256 characters) holds one id per character of the whole
corpus; ``RUN/tokens.json`` holds its vocabulary, the sources (names, sha256s, character counts) and the reading
settings. Training maps the file and copies one (batch, seq_len) window out of it per step, and unmaps what it
has read at every evaluation (`MappedCorpus.release`), so memory stays bounded whatever the corpus size.

The file is built in one streaming pass over the corpus (`corpus.SourceReader`: the same decoding and checks as
for a corpus held in memory): each piece is hashed, its distinct characters are counted and it is written out
with provisional ids in order of first appearance. The vocabulary is the sorted set of characters, known only at
the end, so a last pass over the ids (numpy only, no decoding) maps them to the final ones. An existing token
file is reused when its sidecar names the same files (by sha256) read with the same settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .atomic import atomic_write, atomic_write_text
from .corpus import (
    CHUNK_BYTES,
    Corpus,
    Source,
    SourceReader,
    check_not_empty,
    check_vocab_size,
    code_points,
    token_dtype,
)
from .errors import TextgenError
from .paths import write_error
from .vocab import Vocabulary

#: Corpora at least this large (bytes on disk) train from a token file. Below it the in-memory path is cheaper
#: (no file next to the run) and its peak (text, code points and ids: about 30 bytes per character) stays small.
MIN_BYTES = 8 << 20
SIDECAR_NAME = "tokens.json"
FORMAT = "textgen-tokens"
FORMAT_VERSION = 1
_SUFFIX = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16", np.dtype(np.uint32): "u32"}

#: progress(what, done_bytes, total_bytes), called as the corpus is read (hashing or encoding). Each pass ends,
#: completed or not, with exactly one call where done == total, so that a progress bar is never left open.
Progress = Callable[[str, int, int], None]


def corpus_bytes(paths: list[str | os.PathLike]) -> int:
    """Total size of the files on disk; files that cannot be read count 0 (reading them reports the error)."""
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            if (path := Path(p)).is_file():
                total += path.stat().st_size
    return total


def load_token_corpus(
    paths: list[str | os.PathLike],
    folder: Path,
    *,
    encoding: str,
    lowercase: bool,
    max_vocab: int,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> MappedCorpus:
    """The corpus as a memory map of `folder`'s token file, built first unless an up-to-date one is there."""
    if not paths:
        raise TextgenError("no corpus given; pass one or more text files")
    meta = _read_sidecar(folder)
    if meta is not None and _matches(meta, paths, encoding, lowercase, progress, chunk_bytes):
        check_vocab_size(paths[0], len(meta["vocab"]), max_vocab)
    else:
        meta = build_token_file(
            paths,
            folder,
            encoding=encoding,
            lowercase=lowercase,
            max_vocab=max_vocab,
            progress=progress,
            chunk_bytes=chunk_bytes,
        )
    return MappedCorpus(folder, meta)


class MappedCorpus(Corpus):
    """A corpus whose tokens are a read-only memory map of its token file."""

    def __init__(self, folder: Path, meta: dict):
        vocab = Vocabulary(meta["vocab"])
        dtype = token_dtype(len(vocab))
        with open(folder / token_file_name(dtype), "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        tokens = np.frombuffer(self._map, dtype=dtype, count=int(meta["count"]))
        sources = [Source.from_dict(s) for s in meta["sources"]]
        super().__init__(vocab=vocab, tokens=tokens, sources=sources, lowercase=bool(meta["lowercase"]))

    def release(self) -> None:
        """Unmap the pages read so far. They stay in the page cache (the next read is a cheap fault), but no longer
        count in this process's resident set, which would otherwise grow to the whole corpus over an epoch."""
        if hasattr(mmap, "MADV_DONTNEED"):  # not on Windows
            self._map.madvise(mmap.MADV_DONTNEED)


def token_file_name(dtype: np.dtype | type) -> str:
    return f"tokens.{_SUFFIX[np.dtype(dtype)]}"


def build_token_file(
    paths: list[str | os.PathLike],
    folder: Path,
    *,
    encoding: str,
    lowercase: bool,
    max_vocab: int,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict:
    """Encode the corpus into `folder` (created if needed) in one streaming pass; returns the sidecar."""
    created = not folder.exists()
    # Unique per writer: ranks on several machines may build into one shared folder at once.
    partial = folder / f".tokens.partial-{socket.gethostname()}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ids = _FirstSeenIds(max_vocab)
        sources = _encode_provisional(paths, partial, ids, encoding, lowercase, progress, chunk_bytes)
        count = sum(s.chars for s in sources)
        check_not_empty(paths, count)
        vocab = Vocabulary(sorted(ids.chars))
        dtype = token_dtype(len(vocab))
        table = np.array([vocab.index(ch) for ch in ids.chars], dtype=dtype)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "count": count,
            "vocab": vocab.tokens,
            "sources": [s.to_dict() for s in sources],
            "encoding": encoding,
            "lowercase": lowercase,
        }
        # The sidecar goes last and describes the finished file: a crash in between leaves none, so a rebuild.
        (folder / SIDECAR_NAME).unlink(missing_ok=True)
        atomic_write(folder / token_file_name(dtype), lambda f: _remap(partial, f, ids.dtype, table, chunk_bytes))
        atomic_write_text(folder / SIDECAR_NAME, json.dumps(meta, ensure_ascii=True))
    except BaseException as e:
        partial.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: a corpus error leaves no trace of a run that never started
        if isinstance(e, OSError):
            raise write_error(partial, e) from None
        raise
    partial.unlink()
    return meta


class _FirstSeenIds:
    """Ids for characters in order of first appearance, over a table of every code point (4 MB)."""

    def __init__(self, max_vocab: int):
        self.max_vocab = max_vocab
        self.dtype = token_dtype(max_vocab)
        self.chars: list[str] = []
        self._table = np.full(0x110000, -1, dtype=np.int32)

    def __call__(self, text: str, path: Path) -> np.ndarray:
        points = code_points(text)
        ids = self._table[points]
        new = ids < 0
        if new.any():
            for p in np.unique(points[new]).tolist():
                self._table[p] = len(self.chars)
                self.chars.append(chr(p))
            check_vocab_size(path, len(self.chars), self.max_vocab)
            ids = self._table[points]
        return ids.astype(self.dtype)


def _encode_provisional(
    paths: list[str | os.PathLike],
    out: Path,
    ids: _FirstSeenIds,
    encoding: str,
    lowercase: bool,
    progress: Progress | None,
    chunk_bytes: int,
) -> list[Source]:
    report = _Pass(progress, f"encoding the corpus into {out.parent}", corpus_bytes(paths))
    sources = []
    with report, open(out, "wb") as f:
        for p in paths:
            reader = SourceReader(p, encoding, lowercase, chunk_bytes)
            start = report.done
            for text in reader:
                ids(text, reader.path).tofile(f)
                report.to(start + reader.bytes_read)
            sources.append(reader.source())
    return sources


class _Pass:
    """Reports one pass over the corpus to a `Progress` callback; leaving the block ends it."""

    def __init__(self, progress: Progress | None, what: str, total: int):
        self.progress, self.what, self.total, self.done = progress, what, total, 0

    def to(self, done: int) -> None:
        self.done = done
        if self.progress is not None:
            self.progress(self.what, min(done, self.total - 1), self.total)  # == total only at the end

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress(self.what, self.total, self.total)


def _remap(src: Path, fout: BinaryIO, src_dtype: type, table: np.ndarray, chunk: int) -> None:
    """The provisional ids of `src` as the final ones, into `fout` (the token file being written)."""
    with open(src, "rb") as fin:
        while (ids := np.fromfile(fin, dtype=src_dtype, count=chunk)).size:
            fout.write(table[ids].tobytes())


def _read_sidecar(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / SIDECAR_NAME).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            return None
        dtype = np.dtype(token_dtype(len(meta["vocab"])))
        size = (folder / token_file_name(dtype)).stat().st_size
        return meta if size == int(meta["count"]) * dtype.itemsize else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: build it again


def _matches(
    meta: dict,
    paths: list[str | os.PathLike],
    encoding: str,
    lowercase: bool,
    progress: Progress | None,
    chunk_bytes: int,
) -> bool:
    """True when the token file was built from these very files with these settings (hashes them: one read)."""
    if meta["encoding"] != encoding or meta["lowercase"] != lowercase or len(meta["sources"]) != len(paths):
        return False
    with _Pass(progress, "checking the corpus against its token file", corpus_bytes(paths)) as report:
        for p, saved in zip(paths, meta["sources"], strict=True):
            if Path(p).name != saved["name"]:
                return False
            sha = hashlib.sha256()
            try:
                with open(p, "rb") as f:
                    while data := f.read(chunk_bytes):
                        sha.update(data)
                        report.to(report.done + len(data))
            except OSError:
                return False  # building reports the problem with the usual message
            if sha.hexdigest() != saved["sha256"]:
                return False
    return True
