"""The copy meter's index: a suffix array of a model's training text, built once per corpus and kept in a file.

What it answers: which suffixes of the corpus start with a given string (an interval of the suffix array), found
by binary search on the sorted suffixes, and where such a string first occurs. `copies.CopyTracker` keeps one such
interval while text streams and narrows it by each new character, so a character costs O(log n) comparisons.

**The text.** The corpus is read as training reads it (`corpus.SourceReader`: decoded, CRLF as LF, lower-cased for
a lower-case model) and its distinct characters are numbered in sorted order. Each character is then one byte (at
most 256 distinct) or two big-endian bytes (at most 65,536), so that comparing the bytes of two suffixes compares
their characters. The suffix array comes from libdivsufsort (`pydivsufsort`), a well-kept O(n log n) construction;
for two-byte characters it sorts the byte suffixes and keeps those at even offsets, which is the same order.

**The file.** ``MAGIC``, the header's length, a JSON header (the sources' names, sha256s and character counts,
lower-casing, the alphabet, the offsets, and the sha256 of everything after the header), the text, then the
suffix array (int32, or int64 from 2^31 bytes of text). It is written atomically (`atomic.atomic_write`) into the
user's cache folder under a name made from the sources' hashes, so any run on the same text finds it; it is read
through a memory map, so opening a 5 GB index costs no memory. Before it is used every check must pass: framing,
header, sizes, the sources, and the digest over the whole payload (a damaged file is rebuilt, never trusted).
docs/record/copies.md measures the size, the build time and the time to open it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import mmap
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .corpus import SourceReader, code_points
from .errors import TextgenError
from .sources import Source

MAGIC = b"TGCOPYIX"
FORMAT = "textgen-copy-index"
VERSION = 1
#: A real header is a few KB (its alphabet); anything larger is damage.
MAX_HEADER = 1 << 20
#: The most distinct characters an index takes: two bytes each.
MAX_ALPHABET = 1 << 16
#: First occurrences are looked for among at most this many suffixes of an interval (beyond, the first suffix's).
FIRST_SCAN = 1 << 14
SUFFIX = ".tgidx"
#: Searches from the whole array go through the remembered intervals of the pattern's first `ROOT_CHARS`, then
#: `DEEP_CHARS` characters (at most `ROOT_CACHE` of them): the streaming tracker searches afresh after every
#: mismatch, and on a 1 GB corpus each search from scratch is some 60 probes at random places of a 5 GB file.
ROOT_CHARS = 3
DEEP_CHARS = 6
ROOT_CACHE = 1 << 16


class DamagedIndex(ValueError):
    """An index file that fails a check: the reason, for the one line that says it was rebuilt."""


def cache_folder() -> Path:
    """Where indexes are kept: the user's cache folder (XDG_CACHE_HOME, else ~/.cache/textgen on Linux)."""
    from platformdirs import user_cache_path

    return user_cache_path("textgen") / "copies"


def index_key(hashes: Sequence[str], lowercase: bool) -> str:
    """The index's file name stem: the same text (by content) read the same way gives the same name."""
    ident = json.dumps([VERSION, lowercase, list(hashes)])
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Place:
    """Where a corpus position is: the source file, the character offset in it, and its line (from 1)."""

    source: str
    offset: int
    line: int


class CopyIndex:
    """A suffix array over a training text: `find` and `narrow` give suffix intervals, `first` an occurrence.

    `buf` holds the text's bytes from `text_at` (an mmap, or bytes for an index that could not be saved), so that
    its slices are `bytes` and compare as the characters do; `sa` the suffix array (a memoryview of ints)."""

    def __init__(
        self,
        sources: list[Source],
        lowercase: bool,
        alphabet: str,
        buf: mmap.mmap | bytes,
        text_at: int,
        sa: memoryview,
        path: Path | None,
    ):
        self.sources = sources
        self.lowercase = lowercase
        self.alphabet = alphabet
        self.width = 1 if len(alphabet) <= 256 else 2
        self.chars = len(sa)
        self.path = path
        self._buf = buf
        self._at = text_at
        self.sa = sa
        self._code = {ch: i.to_bytes(self.width, "big") for i, ch in enumerate(alphabet)}
        self._roots: dict[bytes, tuple[int, int]] = {}

    # ---- matching -------------------------------------------------------------------------------------------------

    def encode(self, text: str) -> bytes | None:
        """`text` as the index's bytes (lower-cased first for a lower-case corpus); None if a character of it
        never occurs in the corpus (so neither does the text)."""
        if self.lowercase:
            text = text.lower()
        try:
            return b"".join(self._code[ch] for ch in text)
        except KeyError:
            return None

    def code(self, ch: str) -> bytes | None:
        """One character's bytes, or None when the corpus never has it."""
        if self.lowercase:
            ch = ch.lower()
        return self._code.get(ch)

    def find(self, pattern: bytes, lo: int = 0, hi: int | None = None, depth: int = 0) -> tuple[int, int]:
        """The interval [a, b) of suffixes within [lo, hi) whose characters from `depth` on start with `pattern`
        (all of [lo, hi) must already agree on their first `depth` characters); a == b when none does.

        A binary search for the start, then a galloping one for the end (intervals are mostly short): O(log(hi -
        lo)) comparisons of `len(pattern)` bytes each. A search from the whole array first takes the interval of the
        pattern's first `ROOT_CHARS` characters, remembered (after every mismatch the streaming tracker searches
        afresh, and on a 1 GB corpus a probe is a random place in a 5 GB file)."""
        if hi is None:
            deep = DEEP_CHARS * self.width
            if len(pattern) <= deep:
                return self._remembered(pattern)
            lo, hi = self._remembered(pattern[:deep])
            return (lo, hi) if lo == hi else self.find(pattern[deep:], lo, hi, DEEP_CHARS)
        column = _Column(self, depth, len(pattern))
        a = bisect.bisect_left(column, pattern, lo, hi)
        if a == hi or column[a] != pattern:
            return a, a
        step, last = 1, a  # column[last] == pattern: gallop until past the run, then bisect the gap
        while last + step < hi and column[last + step] == pattern:
            last, step = last + step, step * 2
        return a, bisect.bisect_right(column, pattern, last + 1, min(last + step, hi))

    def _remembered(self, pattern: bytes) -> tuple[int, int]:
        """`find(pattern)` for a pattern of at most `DEEP_CHARS` characters, remembered (see `ROOT_CHARS`)."""
        found = self._roots.get(pattern)
        if found is not None:
            return found
        root = ROOT_CHARS * self.width
        if len(pattern) > root:
            lo, hi = self._remembered(pattern[:root])
            found = (lo, hi) if lo == hi else self.find(pattern[root:], lo, hi, ROOT_CHARS)
        else:
            found = self.find(pattern, 0, self.chars)
        if len(self._roots) < ROOT_CACHE:
            self._roots[pattern] = found
        return found

    def first(self, lo: int, hi: int) -> int:
        """The corpus position of the earliest suffix in [lo, hi) (among the first `FIRST_SCAN` of a long one)."""
        return min(self.sa[lo : min(hi, lo + FIRST_SCAN)])

    # ---- where in the corpus -------------------------------------------------------------------------------------

    def places(self, positions: Sequence[int]) -> list[Place]:
        """Each corpus position's source file, offset in it and line, counted in one pass over the text."""
        newline = self._code.get("\n")
        dtype = np.uint8 if self.width == 1 else np.dtype(">u2")
        ids = np.frombuffer(self._buf, dtype, self.chars, self._at)
        starts = np.cumsum([0] + [s.chars for s in self.sources])
        code = -1 if newline is None else int.from_bytes(newline, "big")
        out: dict[int, Place] = {}
        for pos in sorted(set(positions)):
            k = max(0, int(np.searchsorted(starts, pos, side="right")) - 1)
            k = min(k, len(self.sources) - 1)
            line = 1 + int(np.count_nonzero(ids[starts[k] : pos] == code))
            out[pos] = Place(self.sources[k].name, int(pos - starts[k]), line)
        return [out[p] for p in positions]

    def text(self, pos: int, length: int) -> str:
        """The corpus's characters at [pos, pos + length)."""
        raw = self._buf[self._at + pos * self.width : self._at + (pos + length) * self.width]
        ids = np.frombuffer(raw, np.uint8 if self.width == 1 else np.dtype(">u2"))
        return "".join(self.alphabet[i] for i in ids.tolist())


class _Column:
    """The suffix array seen as a sorted sequence of keys for `bisect`: suffix j's `m` characters from `depth`, cut
    at the text's end (in the file the suffix array follows the text: a suffix must not read into it)."""

    __slots__ = ("at", "buf", "end", "sa", "size", "width")

    def __init__(self, index: CopyIndex, depth: int, pattern_bytes: int):
        self.buf, self.sa, self.width = index._buf, index.sa, index.width
        self.at = index._at + depth * self.width
        self.end = index._at + index.chars * self.width
        self.size = pattern_bytes

    def __getitem__(self, j: int) -> bytes:
        p = self.at + self.sa[j] * self.width
        return self.buf[p : min(p + self.size, self.end)]

    def __len__(self) -> int:
        return len(self.sa)


# ---- building, saving, opening ---------------------------------------------------------------------------------


def _read_ids(paths: Sequence[str | os.PathLike], lowercase: bool) -> tuple[list[Source], str, np.ndarray]:
    """The corpus as training reads it, in two passes (memory: the ids, not the text): first its sources and
    alphabet, then each character's number (one byte or two)."""
    present = np.zeros(0, np.int64)
    sources: list[Source] = []
    for p in paths:
        reader = SourceReader(p, lowercase=lowercase)
        for piece in reader:
            counts = np.bincount(code_points(piece))
            if len(counts) > len(present):
                present = np.pad(present, (0, len(counts) - len(present)))
            present[: len(counts)] += counts
        sources.append(reader.source())
    codes = np.flatnonzero(present)
    if len(codes) == 0:
        raise TextgenError(f"{', '.join(map(str, paths))}: the corpus is empty; give the text the model was trained on")
    if len(codes) > MAX_ALPHABET:
        raise TextgenError(f"{paths[0]}: more than {MAX_ALPHABET:,} distinct characters; this is not a text corpus")
    dtype = np.uint8 if len(codes) <= 256 else np.dtype(">u2")
    table = np.zeros(int(codes[-1]) + 1, dtype)
    table[codes] = np.arange(len(codes))
    ids = np.empty(sum(s.chars for s in sources), dtype)
    done = 0
    for p, source in zip(paths, sources, strict=True):
        reader = SourceReader(p, lowercase=lowercase)
        for piece in reader:
            cp = code_points(piece)
            if done + len(cp) > len(ids) or cp.max(initial=0) >= len(table):
                raise TextgenError(f"{p}: the file changed while it was being indexed; try again")
            ids[done : done + len(cp)] = table[cp]
            done += len(cp)
        if reader.source().sha256 != source.sha256:
            raise TextgenError(f"{p}: the file changed while it was being indexed; try again")
    return sources, "".join(map(chr, codes)), ids


def _suffix_array(ids: np.ndarray) -> np.ndarray:
    """libdivsufsort's suffix array of `ids` (big-endian two-byte ids: the byte suffixes at even offsets, halved)."""
    from pydivsufsort import divsufsort

    raw = ids.view(np.uint8)
    sa = divsufsort(raw)
    if ids.dtype.itemsize == 2:
        sa = sa[sa % 2 == 0] // 2
    return sa.astype("<i4" if len(raw) < 2**31 else "<i8", copy=False)


def build(paths: Sequence[str | os.PathLike], lowercase: bool) -> tuple[list[Source], str, np.ndarray, np.ndarray]:
    """The sources, alphabet, character ids and suffix array of the corpus at `paths`."""
    sources, alphabet, ids = _read_ids(paths, lowercase)
    return sources, alphabet, ids, _suffix_array(ids)


def _pad(n: int) -> int:
    return -n % 8


def _header(sources: list[Source], lowercase: bool, alphabet: str, ids: np.ndarray, sa: np.ndarray) -> dict:
    text_bytes = ids.nbytes
    return {
        "format": FORMAT,
        "version": VERSION,
        "sources": [{"name": s.name, "sha256": s.sha256, "chars": s.chars} for s in sources],
        "lowercase": lowercase,
        "alphabet": alphabet,
        "chars": len(ids),
        "text_bytes": text_bytes,
        "sa_itemsize": sa.dtype.itemsize,
        "sa_at": text_bytes + _pad(text_bytes),
    }


def save(path: Path, sources: list[Source], lowercase: bool, alphabet: str, ids: np.ndarray, sa: np.ndarray) -> None:
    """Write the index atomically, each array streamed from its own memory (see the module doc for the layout)."""
    header = _header(sources, lowercase, alphabet, ids, sa)
    digest = hashlib.sha256()
    for part in _payload(ids, sa, header):
        digest.update(part)
    header["digest"] = digest.hexdigest()
    head = json.dumps(header, ensure_ascii=True).encode("ascii")
    head += b" " * _pad(len(head))

    def write(f) -> None:
        f.write(MAGIC + struct.pack("<Q", len(head)) + head)
        for part in _payload(ids, sa, header):
            f.write(part)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def _payload(ids: np.ndarray, sa: np.ndarray, header: dict) -> list[memoryview]:
    pad = b"\0" * (header["sa_at"] - header["text_bytes"])
    return [memoryview(ids.view(np.uint8)), memoryview(pad), memoryview(sa.view(np.uint8))]


def open_index(path: Path, hashes: Sequence[str], lowercase: bool, names: Sequence[str]) -> CopyIndex:
    """The index at `path` of the files whose sha256s are `hashes` (now called `names`), every check passed (see
    the module doc); `DamagedIndex` says what failed, OSError that it could not be read at all."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 16:
            raise DamagedIndex("too short")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _checked(mm, size, path, hashes, lowercase, names)
    except DamagedIndex:
        mm.close()
        raise


def _checked(
    mm: mmap.mmap, size: int, path: Path, hashes: Sequence[str], lowercase: bool, names: Sequence[str]
) -> CopyIndex:
    if mm[:8] != MAGIC:
        raise DamagedIndex("not a textgen copy index")
    (n,) = struct.unpack("<Q", mm[8:16])
    if n > MAX_HEADER or 16 + n > size:
        raise DamagedIndex("its header runs past the file")
    try:
        h = json.loads(mm[16 : 16 + n])
        ok = h["format"] == FORMAT and h["version"] == VERSION and isinstance(h["alphabet"], str)
        stored = [Source(str(s["name"]), str(s["sha256"]), int(s["chars"])) for s in h["sources"]]
        chars, text_bytes, itemsize, sa_at = (int(h[k]) for k in ("chars", "text_bytes", "sa_itemsize", "sa_at"))
    except (ValueError, KeyError, TypeError):
        raise DamagedIndex("its header is unreadable") from None
    if not ok:
        raise DamagedIndex("of another format or version")
    if [s.sha256 for s in stored] != list(hashes) or h["lowercase"] != lowercase or len(names) != len(stored):
        raise DamagedIndex("made from another text")
    width = 1 if len(h["alphabet"]) <= 256 else 2
    at = 16 + n
    if itemsize not in (4, 8) or text_bytes != chars * width or sa_at != text_bytes + _pad(text_bytes):
        raise DamagedIndex("its sizes disagree")
    if at + sa_at + chars * itemsize != size or sys.byteorder != "little":
        raise DamagedIndex("its length is wrong (truncated?)")
    if hashlib.sha256(memoryview(mm)[at:]).hexdigest() != h.get("digest"):
        raise DamagedIndex("its contents do not match their checksum")
    sa = memoryview(mm)[at + sa_at :].cast("B").cast("i" if itemsize == 4 else "q")
    sources = [Source(name, s.sha256, s.chars) for name, s in zip(names, stored, strict=True)]
    return CopyIndex(sources, lowercase, h["alphabet"], mm, at, sa, path)


@dataclass(frozen=True)
class Opened:
    """An index and how it was had: `built` (seconds, when it was built now), `kept` (False when it could not be
    saved: it lives in memory this time), `damage` (why an existing file was not trusted)."""

    index: CopyIndex
    built: float | None = None
    kept: bool = True
    damage: str | None = None


def index_for(
    paths: Sequence[Path],
    hashes: Sequence[str],
    lowercase: bool,
    *,
    folder: Path | None = None,
    building: Callable[[], None] | None = None,
) -> Opened:
    """The index of the corpus at `paths` (whose sha256s, `hashes`, the caller has checked): opened from `folder`
    (default the user's cache) when a good one is there, else built (`building()` is called first, so a front
    end can say it takes a while) and saved for next time."""
    folder = cache_folder() if folder is None else folder
    path = folder / f"{index_key(hashes, lowercase)}{SUFFIX}"
    names = [p.name for p in paths]
    damage = None
    try:
        return Opened(open_index(path, hashes, lowercase, names))
    except FileNotFoundError:
        pass
    except DamagedIndex as e:
        damage = str(e)
    except OSError as e:
        damage = f"unreadable ({e.strerror or e})"
    if building is not None:
        building()
    began = time.perf_counter()
    read, alphabet, ids, sa = build(paths, lowercase)
    if [s.sha256 for s in read] != list(hashes):
        raise TextgenError(f"{paths[0]}: the file changed while it was being indexed; try again")
    try:
        save(path, read, lowercase, alphabet, ids, sa)
        index = open_index(path, hashes, lowercase, names)
        kept = True
    except (TextgenError, OSError, DamagedIndex):
        mem = memoryview(sa.view(np.uint8)).cast("i" if sa.dtype.itemsize == 4 else "q")
        index = CopyIndex(read, lowercase, alphabet, ids.tobytes(), 0, mem, None)
        kept = False
    return Opened(index, built=time.perf_counter() - began, kept=kept, damage=damage)
