"""Which model the session runs: the banner that names it, /info that describes it, /load that switches it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from textgen_core.describe import describe
from textgen_core.loader import open_model

from ..describe import info_renderables, summary

if TYPE_CHECKING:
    from ..session import Session

#: What /load of a Keras file asks for when the session was started without a vocabulary.
NEEDS_VOCAB = "start textgen repl with --vocab-from CORPUS (and --lowercase if it was trained so) or --chars FILE"


def banner(s: Session) -> None:
    """The model's name and what it is, then how to get help: on a terminal broken between its parts (the
    terminal's own wrap would cut a word or a number in two), else one line, whatever its length."""
    parts = [
        Text(f"textgen · {s.name}", style="tg.label"),
        *(Text(p, style="tg.dim") for p in summary(describe(s.loaded.checkpoint))),
        Text("type /help", style="tg.key"),
    ]
    sep = Text(" · ", style="tg.dim")
    if not s.console.is_terminal:
        s.print(sep.join(parts), soft_wrap=True)
        return
    lines: list[list[Text]] = [[]]
    for part in parts:
        if lines[-1] and sum(t.cell_len + sep.cell_len for t in lines[-1]) + part.cell_len > s.console.width:
            lines.append([])
        lines[-1].append(part)
    for line in lines:
        s.print(sep.join(line))


def info(s: Session, arg: str) -> None:
    """/info: exactly what `textgen info` prints for this checkpoint, learning curve included (one implementation)."""
    for part in info_renderables(describe(s.loaded.checkpoint), s.console.width):
        s.print(part, soft_wrap=True)


def load(s: Session, path: str) -> None:
    """/load PATH: switch checkpoints (or to a Keras file, with the session's vocabulary); any failure (or Ctrl-C)
    keeps the current model."""
    s.switch(open_model(path, s.vocab, needs_vocab=NEEDS_VOCAB))
    banner(s)
