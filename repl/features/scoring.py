"""How likely the model finds a text (/score) and where its own last output surprised it (/alts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from textgen_core.errors import TextgenError
from textgen_core.scoring import score as score_text
from textgen_core.vocab import describe_unknown

from ..render import prob_style, styled
from ..safe import shown_char
from ..values import parse_count
from . import copies
from .cells import cell_pieces

if TYPE_CHECKING:
    from ..session import Session

#: The longest text /score takes. It prints every character in its colour (a styled span each, a few hundred bytes
#: of memory and a screenful per few thousand characters): past this, `textgen eval FILE` reports the same bits/char
#: without printing the text.
MAX_SCORE_CHARS = 50_000
#: Rows /alts shows without an argument.
DEFAULT_ALTS = 10


def score(s: Session, text: str) -> None:
    """/score TEXT: colour `text` by the model's probability of each character and report its bits/char."""
    if len(text) > MAX_SCORE_CHARS:
        raise TextgenError(
            f"at most {MAX_SCORE_CHARS:,} characters (this text has {len(text):,}); for a longer "
            "text, save it to a file and run: textgen eval FILE"
        )
    gen = s.generator
    result = score_text(gen.model, gen.vocab, text, lowercase=gen.lowercase, window=gen.window)
    if not result.chars:
        raise TextgenError("nothing to score: the model knows none of these characters")
    pieces = cell_pieces(s, text)
    if pieces is None:
        colour = s.color != "off"
        pieces = [(t, prob_style(p) if colour else None) for t, p in zip(result.token_texts, result.probs, strict=True)]
    shown = "".join(ch for ch, _ in pieces)
    found = copies.measured(s, shown)  # with the copy meter on, its copied spans are underlined and listed
    s.print(styled(pieces if found is None else copies.underlined(pieces, found)), soft_wrap=True)
    per_token = (
        "" if gen.vocab.is_chars else f", {result.bits_per_token:.3f} bits per token over {result.tokens:,} tokens"
    )
    s.note(f"{result.bpc:.3f} bits/char over {result.chars:,} characters{per_token}")
    if found is not None:
        copies.show_spans(s, shown, found)
    if result.unknown:
        s.note(f"not scored (unknown to the model): {describe_unknown(result.unknown)}")


def alternatives(s: Session, arg: str) -> None:
    """/alts [N]: the last output's N least likely characters and what the model preferred instead."""
    n = parse_count(arg) if arg else DEFAULT_ALTS
    branch, start = s.last_output()
    tokens = branch.tokens[start:]
    if not tokens:
        raise TextgenError("nothing generated yet: type a seed first")
    picked = sorted(sorted(range(len(tokens)), key=lambda i: tokens[i].prob)[:n])
    chars = s.generator.vocab.is_chars
    title = f"least likely {'characters' if chars else 'tokens'} of the last output"
    table = Table(title=title, title_style="tg.dim")
    for column in ("#", "context", "char" if chars else "token", "p", "model's top 5"):
        table.add_column(column, justify="right" if column in ("#", "p") else "left")
    for i in picked:
        t = tokens[i]
        before = "".join(tok.char for tok in tokens[max(0, i - 12) : i])
        context = Text()
        context.append("".join(shown_char(c) for c in before), style="tg.dim")
        context.append(shown_char(t.char), style=prob_style(t.prob))
        alts = "  ".join(f"{shown_char(c)} {p:.2f}" for c, p in t.alternatives)
        table.add_row(str(i + 1), context, shown_char(t.char), f"{t.prob:.3f}", alts)
    s.print(table)
