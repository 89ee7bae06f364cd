"""Is it copying? `/copies` underlines, as the text streams, what the model writes word for word from its training
text, and after each run says the longest copy and the share of the text in copies; the loop flag says when a run's
text repeats itself. The matching is `textgen_core.copies` on a suffix array (`textgen_core.copyindex`); this module
keeps the meter's state and says what it finds.

Which training text: the files a user gave (`/copies FILE`, `textgen repl --corpus FILE`), else where the model
records it was read from; either way checked against the sha256s the model records (`/copies anyway FILE` uses a
text whose hash differs). The index is built once per text and kept in the user's cache folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text

from textgen_core.copies import CopyReport, CopyTracker, TrainingText, report, summary, training_text
from textgen_core.copyindex import CopyIndex, index_for
from textgen_core.errors import TextgenError
from textgen_core.generate import Token
from textgen_core.repeats import find_loop

from ..render import copy_legend, copy_style
from ..safe import flat
from ..values import DEFAULT_MIN_COPY, parse_min_copy

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint

    from ..session import Session

#: How the REPL says to give the training text, or to use one whose hash differs (the library's messages end so).
HINT = "/copies FILE"
ANYWAY = "/copies anyway FILE"
#: Characters of a copied span or a loop's span quoted after a run.
QUOTE = 60


class Meter:
    """The session's copy meter: whether it is on, the text and index it measures against, and from how many
    characters a stretch counts as copied; with the loop flag, the session's `Marker` (`start`, `finished`)."""

    def __init__(self, session: Session):
        self.session = session
        self.on = False
        self.min_length = DEFAULT_MIN_COPY
        self.text: TrainingText | None = None
        self.index: CopyIndex | None = None
        #: The model the text was found for; another model keeps the meter only if it records the same text.
        self.model: Checkpoint | None = None
        #: The match lengths of the run streaming now, reused by its summary (a beam, not streamed, is measured then).
        self._streamed: list[int] = []

    def active(self) -> bool:
        """On, and still right for the loaded model (a /load or a followed run may have switched it): a model that
        records another training text turns the meter off, with a line saying so."""
        if not self.on or self.index is None or self.model is None:
            return False
        now = self.session.loaded.checkpoint
        if now is not self.model:
            same = [s.sha256 for s in now.meta.corpus] == [s.sha256 for s in self.model.meta.corpus]
            if not same or now.meta.lowercase != self.model.meta.lowercase:
                self.on = False
                self.session.note(f"copy meter off: this model records another training text; {HINT} turns it on")
                return False
            self.model = now
        return True

    def start(self) -> Callable[[str], bool] | None:
        if not self.active():
            return None
        assert self.index is not None
        tracker, least, lengths = CopyTracker(self.index), self.min_length, []
        self._streamed = lengths

        def mark(token: str) -> bool:
            """Whether the copy reaching the token's last character is long enough (a word or word piece is
            underlined whole); the tracker reads it character by character."""
            lengths.extend(tracker.feed(ch) for ch in token)
            return lengths[-1] >= least

        return mark

    def finished(self, tokens: list[Token]) -> None:
        """After a run's stats line: what it copied (meter on) and whether it loops (always), one line each."""
        text = "".join(t.char for t in tokens)
        streamed, self._streamed = self._streamed, []
        if self.active():
            assert self.index is not None
            lengths = streamed if len(streamed) == len(text) else None
            self.session.print(copy_line(self.index, text, self.min_length, lengths), soft_wrap=True)
        loop_flag(self.session, text)

    def describe(self) -> str:
        if not self.on or self.text is None:
            return f"off ({HINT} or /copies on measures against the training text)"
        checked = "checked by sha256" if self.text.checked else "not checked"
        return f"on · training text {self.text.names} ({checked}) · copies from {self.min_length} characters"


def meter(session: Session) -> Meter:
    """The session's meter, made on first use."""
    if not isinstance(session.meter, Meter):
        session.meter = Meter(session)
    return session.meter


def copies(s: Session, arg: str) -> None:
    """/copies [on|off|min N|FILE|anyway FILE]: show, switch, set the shortest copy, or give the training text."""
    m = meter(s)
    head, _, rest = arg.partition(" ")
    if arg.lower() == "off":
        m.on = False
    elif arg.lower() == "on":
        turn_on(s, None)
        return
    elif head.lower() == "min":
        if rest.strip():
            m.min_length = parse_min_copy(rest.strip())
    elif head.lower() == "anyway":
        if not rest.strip():
            raise TextgenError(f"give the file to measure against anyway: {ANYWAY}")
        turn_on(s, [rest.strip()], anyway=True)
        return
    elif arg:
        turn_on(s, [arg])
        return
    s.show("copies", m.describe())


def turn_on(s: Session, given: Sequence[str] | None, *, anyway: bool = False, min_length: int | None = None) -> None:
    """Find the training text (the files `given`, else the model's record), open or build its index, and turn the
    meter on; any failure is one line (a `TextgenError`) and leaves the meter as it was."""
    m = meter(s)
    ckpt = s.loaded.checkpoint
    found = training_text(ckpt.meta.corpus, ckpt.meta.lowercase, given, anyway=anyway, hint=HINT, anyway_hint=ANYWAY)
    opened = index_for(
        found.paths,
        found.hashes,
        found.lowercase,
        building=lambda: s.note(f"indexing {found.names} for the copy meter (once for this text)…"),
    )
    if opened.damage is not None:
        s.note(f"the copy index of {found.names} was unreadable ({opened.damage}); it was rebuilt, not trusted")
    if opened.built is not None:
        where = f"kept in {opened.index.path.parent}" if opened.kept else "could not be kept: in memory this session"
        s.note(f"indexed {opened.index.chars:,} characters in {opened.built:.1f} s ({where})")
    if found.note:
        s.note(f"{found.names}: {found.note}")
    m.text, m.index, m.model, m.on = found, opened.index, ckpt, True
    if min_length is not None:
        m.min_length = min_length
    s.show("copies", m.describe())
    s.print(copy_legend(m.min_length, found.names), soft_wrap=True)


def loop_flag(s: Session, text: str) -> None:
    """One line when `text` repeats a span of `repeats.LOOP_MIN` characters or more: which, how long, how often."""
    loop = find_loop(text)
    if loop is not None:
        span = flat(text[loop.start : loop.start + min(loop.length, QUOTE)])
        how = "back to back" if loop.back_to_back else "in all"
        s.note(
            f"loop: a {loop.length:,}-character span repeats {loop.times} times {how} from character "
            f"{loop.start + 1:,}: «{span}»{'…' if loop.length > QUOTE else ''} (/beam W norepeat N avoids repeats)"
        )


def measured(s: Session, text: str) -> CopyReport | None:
    """`text`'s copies when the meter is on (/score underlines them), else None."""
    m = s.meter
    if not isinstance(m, Meter) or not m.active():
        return None
    assert m.index is not None
    return report(m.index, text, m.min_length)


def underlined(pieces: list[tuple[str, str | None]], found: CopyReport) -> list[tuple[str, str | None]]:
    """One-character `pieces` of a text with the characters inside its copied spans marked."""
    inside = [False] * len(pieces)
    for span in found.spans:
        inside[span.start : span.end] = [True] * span.length
    return [(ch, copy_style(style) if mark else style) for (ch, style), mark in zip(pieces, inside, strict=True)]


def show_spans(s: Session, text: str, found: CopyReport) -> None:
    """The summary line, then one line per copied span: where in the text, how long, where in the corpus."""
    m = s.meter
    assert isinstance(m, Meter) and m.index is not None
    s.print(Text(flat("copies: " + summary(m.index, text, found, QUOTE)), style="tg.dim"), soft_wrap=True)
    places = m.index.places([span.corpus_start for span in found.spans])
    for span, place in zip(found.spans, places, strict=True):
        quote = flat(text[span.start : span.start + min(span.length, QUOTE)]) + ("…" if span.length > QUOTE else "")
        s.note(
            f"copied: characters {span.start + 1:,}–{span.end:,} ({span.length:,}) · {flat(place.source)} line "
            f"{place.line:,}, character {place.offset:,} · ×{span.occurrences} · «{quote}»"
        )


def copy_line(index: CopyIndex, text: str, min_length: int, lengths: list[int] | None = None) -> Text:
    """The run's copies in one dim line (`copies.summary`); `lengths`, when the run streamed, are its match lengths."""
    found = report(index, text, min_length, None if lengths is None else np.array(lengths))
    return Text(flat("copies: " + summary(index, text, found, QUOTE)), style="tg.dim")
