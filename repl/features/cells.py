"""The REPL's look inside the model: `/cells` ranks the LSTM cells by how well each follows a feature of a text,
`/cell L:N` colours output by one cell's value (and `/color cell` comes back to it). The maths is
`textgen_core.cells`; this module chooses the text, prints the tables and sets the session's colouring.

Which text `/cells` reads, in this order, and it says which: a FILE given after the feature; else the session's
own text (its seeds and what the model wrote) once that holds `MIN_SESSION_TEXT` characters; else `SAMPLE_CHARS`
characters the model generates for the purpose (temperature 1, from a fresh state, the session's seed if set),
without touching the session's own state. Texts are cut to `MAX_CHARS`: a trace keeps every cell's value after
each character, 4 · layers · hidden bytes (60 MB for the bundled 2×768 model at 10,000 characters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table
from rich.text import Text

from textgen_core.cells import (
    FEATURES,
    FIND,
    CellTrace,
    CellTracker,
    Ranking,
    cell_values,
    continuation_values,
    feature_values,
    parse_cell,
    rank_cells,
    rank_feature,
    regex_mask,
    trace_cells,
)
from textgen_core.corpus import read_text
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, Token
from textgen_core.paths import user_path

from ..render import cell_legend, cell_style, colour_tokens, styled
from ..safe import flat, shown

if TYPE_CHECKING:
    from ..session import Session

#: The session's own text is used once it is this long: shorter texts give correlations that mean little.
MIN_SESSION_TEXT = 2_000
#: Characters generated to look at when the session has no text of its own yet.
SAMPLE_CHARS = 3_000
#: Characters a REPL trace keeps at most (see the module doc for the memory).
MAX_CHARS = 10_000
#: Cells listed for one feature.
TOP = 5
#: Characters of text shown coloured by the best cell.
EXCERPT_CHARS = 360


# ---- /cell and /color cell -------------------------------------------------------------------------------------


def choose_cell(session: Session, arg: str) -> None:
    """`/cell L:N` colours by that cell from now on; `/cell off` goes back to probability; `/cell` shows it."""
    if arg.lower() == "off":
        session.color = "prob" if session.colour_shown else "off"
    elif arg:
        layer, index = parse_cell(arg, session.generator.model)
        session.cell = CellTracker(session.generator.model, layer, index)
        session.color = "cell"
    elif session.cell is None:
        session.show("cell", "none chosen: /cell LAYER:INDEX picks one, /cells finds the ones that track something")
        return
    session.show("colour", session.colour_name)
    session.legend()


def cell_colour(session: Session) -> None:
    """`/color cell`: back to the cell chosen last."""
    if session.cell is None:
        raise TextgenError("no cell chosen yet: /cell LAYER:INDEX picks one, /cells finds the ones worth watching")
    session.color = "cell"


def coloured(session: Session, block: list[Token]) -> Text:
    """A block that continues the last seed, coloured by the session's mode; in a cell view by the cell's values,
    replayed from the seed (a batched run's or a beam's states are gone)."""
    cells = None
    if session.cell_view and session.cell is not None:
        gen = session.generator
        text = "".join(t.char for t in block)
        seed = session.last_seed or ""
        cell = session.cell
        cells = continuation_values(gen.model, gen.vocab, seed, text, cell.layer, cell.index, lowercase=gen.lowercase)
    return colour_tokens(block, session.color, cells)


def cell_pieces(session: Session, text: str) -> list[tuple[str, str]] | None:
    """`text` as (character, style) pieces coloured by the chosen cell's value, read from a fresh state (/score in a
    cell view); None when no cell view is on."""
    if not session.cell_view or session.cell is None:
        return None
    gen = session.generator
    cell = session.cell
    read, values = cell_values(gen.model, gen.vocab, text, cell.layer, cell.index, lowercase=gen.lowercase)
    return list(zip(read, map(cell_style, values), strict=True))


# ---- /cells ----------------------------------------------------------------------------------------------------


def rank(session: Session, arg: str) -> None:
    """`/cells`, `/cells FEATURE [FILE]`, `/cells find REGEX`: see the module doc for the text it reads."""
    head, _, rest = arg.partition(" ")
    if not arg:
        trace = _trace(session, _text_at_hand(session, None))
        _overview(session, trace)
        return
    if head == FIND:
        if not rest:
            raise TextgenError("find needs a regular expression: /cells find REGEX")
        regex_mask(rest, "")  # a bad pattern is refused before any work
        trace = _trace(session, _text_at_hand(session, None))
        ranking = rank_feature(trace, arg, top=TOP)
        feature = regex_mask(rest, trace.text)
    else:
        feature_values(head, "")  # an unknown name is refused (the library's message) before any work
        trace = _trace(session, _text_at_hand(session, rest.strip() or None))
        feature = feature_values(head, trace.text)
        ranking = rank_cells(trace, feature, name=head, top=TOP)
    _show_ranking(session, trace, ranking, feature)


def _text_at_hand(session: Session, path: str | None) -> tuple[str, str]:
    """(text, what it is) for `/cells`: the file, the session's text, or a fresh sample (see the module doc)."""
    if path is not None:
        return read_text(user_path(path)), shown(path)
    own = "".join(turn.seed + "".join(t.char for t in turn.tokens) for turn in session.transcript)
    if len(own) >= MIN_SESSION_TEXT:
        return own, "this session's text"
    gen = session.generator
    sampler = Generator(gen.model, gen.vocab, lowercase=gen.lowercase, seed=session.seed)
    session.note(f"generating {SAMPLE_CHARS:,} characters to look at (the session has too little text of its own)…")
    sample = "".join(t.char for t in sampler.stream(SAMPLE_CHARS))
    return sample, "a sample the model wrote for this (temperature 1)"


def _trace(session: Session, text_and_source: tuple[str, str]) -> CellTrace:
    text, source = text_and_source
    gen = session.generator
    trace = trace_cells(gen.model, gen.vocab, text, lowercase=gen.lowercase, max_chars=MAX_CHARS)
    cut = f" (the first {trace.chars:,} of {trace.source_chars:,})" if trace.truncated else ""
    session.note(f"cells over {trace.chars:,} characters of {source}{cut}; r = Pearson correlation")
    return trace


def _overview(session: Session, trace: CellTrace) -> None:
    """Every built-in feature's best cell, and which features the text lacks."""
    table = Table(title="the best cell for each feature", title_style="tg.dim")
    for column in ("feature", "what it is", "cell", "r"):
        table.add_column(column, justify="right" if column == "r" else "left")
    for name, feature in FEATURES.items():
        try:
            best = rank_cells(trace, feature.compute(trace.text), name=name, top=1).cells[0]
        except TextgenError:  # the text has no quotes, say: a row that says so, not a failed command
            table.add_row(name, feature.description, Text("not in this text", style="tg.dim"), "")
            continue
        table.add_row(name, feature.description, Text(best.label, style="tg.key"), f"{best.r:+.2f}")
    session.print(table)
    session.note("/cells FEATURE shows a feature's best cells on the text; /cell L:N colours the output by one")


def _show_ranking(session: Session, trace: CellTrace, ranking: Ranking, feature: np.ndarray) -> None:
    table = Table()
    for column in ("feature", "cell", "r"):
        table.add_column(column, justify="right" if column == "r" else "left")
    for i, cell in enumerate(ranking.cells):
        table.add_row(Text(flat(ranking.feature) if i == 0 else ""), Text(cell.label, style="tg.key"), f"{cell.r:+.3f}")
    session.print(table)
    best = ranking.cells[0]
    a, b = excerpt(trace.text, feature)
    values = trace.cell(best.layer, best.index)[a:b]
    session.print(styled(zip(trace.text[a:b], map(cell_style, values), strict=True)), soft_wrap=True)
    session.print(cell_legend(best.label, session.generator.model.value_name(best.layer)), soft_wrap=True)
    session.note(f"watch cell {best.label} while the model writes: /cell {best.label}")


def excerpt(text: str, feature: np.ndarray, size: int = EXCERPT_CHARS) -> tuple[int, int]:
    """Bounds of about `size` characters of `text` from the start of the line where `feature` first changes (where
    the cell has something to show), ending at a line's end when one is near."""
    changes = np.flatnonzero(feature != feature[0])
    first = int(changes[0]) if len(changes) else 0
    start = max(0, first - size // 2)
    newline = text.rfind("\n", start, first)
    a = newline + 1 if newline >= 0 else start
    b = min(len(text), a + size)
    end = text.rfind("\n", a + size // 2, b)
    return a, (end if end > 0 else b)
