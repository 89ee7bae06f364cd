"""/save: the session's transcript to a file, as the text it read and wrote, or as JSONL with every probability
and the branch tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from textgen_core.atomic import STDOUT, atomic_write
from textgen_core.errors import TextgenError

from ..safe import visible
from ..transcript import jsonl_text, plain_text

if TYPE_CHECKING:
    from ..session import Session


def save(s: Session, path: str) -> None:
    """Write the transcript: text as the session read, or JSONL (a `.jsonl` name) with every probability.

    A file is replaced atomically; a named pipe or a device is written into (`textgen_core.atomic`). `-` is the
    session's own output, and a terminal named as a file (``/dev/tty``) gets the text with its control characters
    made visible, as everything else the session prints."""
    if not s.transcript:
        raise TextgenError("nothing to save yet")
    jsonl = path.strip().lower().endswith(".jsonl")
    text = jsonl_text(s.transcript, s.tree) if jsonl else plain_text(s.transcript)
    if path.strip() == STDOUT:
        s.print(Text(visible(text)), soft_wrap=True)
        return
    written = atomic_write(path, lambda f: f.write((visible(text) if f.isatty() else text).encode("utf-8")))
    where = "" if written.is_file else " (written into it as a stream)"
    unit = "character" if s.generator.vocab.is_chars else "token"
    s.note(
        f"saved {len(s.transcript)} run(s) to {written.path}{where}"
        + (f" (JSONL: {len(s.tree.branches)} branch(es), one object per {unit})" if jsonl else "")
    )
