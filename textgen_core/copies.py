"""The copy meter: which spans of a text occur word for word in a model's training text.

**What is measured.** After each character i of a text, `length[i]` is the length of the longest stretch of the
text ending at i that occurs somewhere in the training text (its matching statistic). A stretch of at least
`min_length` characters counts as copied. The copied spans are the maximal stretches: the one ending at i is
maximal when the next character does not extend it (``length[i + 1] <= length[i]``), and two spans may overlap
(two passages of the corpus that share some words). The report gives each span of at least `min_length`, the
longest stretch of any length, and the share of the text inside copied spans.

**Streaming.** `CopyTracker` keeps the suffix-array interval of the current stretch (`copyindex.CopyIndex`) and
narrows it by each new character: two binary searches inside the interval. When the new character does not occur
after the stretch, the stretch loses characters from its start: the longest suffix that occurs is found by
galloping, then bisecting, over its length, with a search from scratch for each length tried (every suffix of an
occurring string occurs, so the lengths that occur are a prefix of the lengths). A stretch grows by at most one
character a step, so the shortening costs O(log n) searches a character on average.

**Which training text.** A checkpoint records each source's name, sha256 and, from this version on, its absolute
path (`corpus.Source`). `training_text` finds the text there, checked by the hash, or takes the files a user gives
(checked against the record when there is one); every way it can fail is one line that says what to give.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .copyindex import CopyIndex
from .errors import TextgenError
from .paths import kind_of, user_path
from .sources import Source


class CopyTracker:
    """The matching statistic of a text fed one character at a time (see the module doc): `feed` returns how
    many characters up to and including this one occur, word for word, in the corpus."""

    def __init__(self, index: CopyIndex):
        self.index = index
        self.reset()

    def reset(self) -> None:
        """Forget the text so far (a new run starts)."""
        self.lo, self.hi = 0, self.index.chars
        self.length = 0
        self._tail = bytearray()  # the current stretch, in the index's bytes

    def feed(self, ch: str) -> int:
        code = self.index.code(ch)
        if code is None:  # the corpus never has this character: no stretch goes through it
            self.reset()
            return 0
        if self.length == 0:  # from the whole array: a remembered search
            lo, hi = self.index.find(code)
        else:
            lo, hi = self.index.find(code, self.lo, self.hi, self.length)
        self._tail += code
        if lo < hi:
            self.lo, self.hi, self.length = lo, hi, self.length + 1
            return self.length
        self._shorten()
        return self.length

    def _shorten(self) -> None:
        """The longest suffix of the stretch (its last character new) that occurs: galloping up from one character
        (which occurs: it is in the alphabet), then bisecting between the last length found and the first not."""
        w = self.index.width
        total = len(self._tail) // w
        good, interval = 1, self.index.find(bytes(self._tail[-w:]))
        bad = total  # the whole stretch does not occur
        step = 2
        while step < bad:
            found = self.index.find(bytes(self._tail[-step * w :]))
            if found[0] == found[1]:
                bad = step
                break
            good, interval, step = step, found, step * 2
        while bad - good > 1:
            mid = (good + bad) // 2
            found = self.index.find(bytes(self._tail[-mid * w :]))
            if found[0] < found[1]:
                good, interval = mid, found
            else:
                bad = mid
        del self._tail[: len(self._tail) - good * w]
        self.length = good
        self.lo, self.hi = interval


def match_lengths(index: CopyIndex, text: str) -> np.ndarray:
    """The matching statistic of each character of `text` (see the module doc)."""
    tracker = CopyTracker(index)
    return np.fromiter((tracker.feed(ch) for ch in text), dtype=np.int64, count=len(text))


@dataclass(frozen=True)
class Span:
    """A copied span of the text: `start` and `length` in the text; where it first occurs in the corpus
    (`corpus_start`, a character offset in the sources read one after the other) and how often it occurs there."""

    start: int
    length: int
    corpus_start: int
    occurrences: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class CopyReport:
    """The copy meter's answer for one text: its copied spans (at least `min_length` characters), the longest
    stretch found in the corpus of any length, and how many characters lie inside copied spans."""

    chars: int
    min_length: int
    spans: list[Span]
    longest: int
    copied: int

    @property
    def share(self) -> float:
        """The share of the text inside copied spans (0 for an empty text)."""
        return self.copied / self.chars if self.chars else 0.0


def maximal_spans(lengths: np.ndarray, min_length: int) -> list[tuple[int, int]]:
    """(start, length) of each maximal stretch of at least `min_length` characters, in order."""
    lengths = np.asarray(lengths)
    if not len(lengths):
        return []
    following = np.append(lengths[1:], 0)
    ends = np.flatnonzero((lengths >= min_length) & (following <= lengths))
    return [(int(e - lengths[e] + 1), int(lengths[e])) for e in ends]


def report(index: CopyIndex, text: str, min_length: int, lengths: np.ndarray | None = None) -> CopyReport:
    """Measure `text` (its `lengths`, if already known from streaming, are reused)."""
    lengths = match_lengths(index, text) if lengths is None else np.asarray(lengths)
    spans = []
    covered = np.zeros(len(text), bool)
    for start, length in maximal_spans(lengths, min_length):
        lo, hi = index.find(index.encode(text[start : start + length]) or b"")
        spans.append(Span(start, length, index.first(lo, hi), hi - lo))
        covered[start : start + length] = True
    longest = int(lengths.max()) if len(lengths) else 0
    return CopyReport(len(text), min_length, spans, longest, int(covered.sum()))


def span_records(index: CopyIndex, text: str, result: CopyReport) -> list[dict[str, object]]:
    """The spans as JSON-ready objects: where in the text, what, and where in the corpus (file, offset, line)."""
    places = index.places([s.corpus_start for s in result.spans])
    return [
        {
            "start": s.start,
            "length": s.length,
            "end": s.end,
            "text": text[s.start : s.end],
            "corpus_start": s.corpus_start,
            "source": place.source,
            "source_start": place.offset,
            "line": place.line,
            "occurrences": s.occurrences,
        }
        for s, place in zip(result.spans, places, strict=True)
    ]


def summary(index: CopyIndex, text: str, result: CopyReport, quote: int = 60) -> str:
    """The report as one line, the same for every front end: `longest 41 characters · 12.3% of the text in copies
    of 32+ characters · the longest from FILE line L: «…»` (the quote raw: a front end makes it safe to show)."""
    line = f"longest {result.longest:,} characters · {result.share:.1%} of the text in copies of "
    line += f"{result.min_length}+ characters"
    if result.spans:
        top = max(result.spans, key=lambda span: span.length)
        place = index.places([top.corpus_start])[0]
        cut = "…" if top.length > quote else ""
        shown = text[top.start : top.start + min(top.length, quote)]
        line += f" · the longest from {place.source} line {place.line:,}: «{shown}{cut}»"
    return line


# ---- finding the training text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingText:
    """The files to measure against and what is known of them: `hashes` (their sha256s, in order), `lowercase`
    (the model's), and `checked` (True when the hashes are the ones the model records); `note` says what a front end
    should tell about an unchecked text."""

    paths: list[Path]
    hashes: list[str]
    lowercase: bool
    checked: bool
    note: str = ""

    @property
    def names(self) -> str:
        return ", ".join(p.name for p in self.paths)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes: what `corpus.SourceReader` records for a source."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise TextgenError(f"{path}: cannot read ({e.strerror or e}); check its permissions") from None
    return digest.hexdigest()


def _existing(text: str | os.PathLike) -> Path:
    path = user_path(text)
    if not path.exists():
        raise TextgenError(f"{path}: no such file; give the text the model was trained on")
    if path.is_dir():
        raise TextgenError(f"{path}: is a folder; give the text files inside it")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):  # a pipe or a device: read once, it would differ (or block) the next time
        raise TextgenError(
            f"{path}: is {kind_of(mode)}; the copy meter reads the training text more than once and keeps its index "
            "by the file: give a file"
        )
    return path


def training_text(
    recorded: Sequence[Source],
    lowercase: bool,
    given: Sequence[str | os.PathLike] | None = None,
    *,
    anyway: bool = False,
    hint: str = "--corpus FILE",
    anyway_hint: str = "--corpus-anyway",
) -> TrainingText:
    """The training text of a model that records `recorded`: the `given` files, else the recorded paths. Either
    way the files' hashes must be the recorded ones, unless `anyway` (the user asked to use them all the same) or
    the model records none. `hint` and `anyway_hint` are how the front end says to give a file, or to insist."""
    names = ", ".join(s.name for s in recorded)
    if given:
        paths = [_existing(p) for p in given]
    elif not recorded:
        raise TextgenError(f"this model records no training text; give it: {hint}")
    elif any(s.path is None for s in recorded):
        raise TextgenError(f"this model records no path for its training text ({names}); give it: {hint}")
    else:
        paths = [Path(str(s.path)) for s in recorded]
        for source, path in zip(recorded, paths, strict=True):
            if not path.is_file():
                raise TextgenError(f"the training text {source.name} is no longer at {path}; give it: {hint}")
    hashes = [file_sha256(p) for p in paths]
    if not recorded:
        return TrainingText(paths, hashes, lowercase, False, "the model records no training text: not checked")
    if hashes == [s.sha256 for s in recorded]:
        return TrainingText(paths, hashes, lowercase, True)
    which = ", ".join(map(str, paths))
    if not anyway:
        differs = "is not" if given else "has changed since it was"
        raise TextgenError(
            f"{which} {differs} the text this model was trained on (its sha256 differs from the record of {names}); "
            f"give that text: {hint}, or measure against this one anyway: {anyway_hint}"
        )
    note = f"its sha256 differs from the model's record ({names}): used anyway"
    return TrainingText(paths, hashes, lowercase, False, note)
