"""/save: the session's transcript to a file, as the text it read and wrote, or as JSONL with every probability
and the branch tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textgen_core.atomic import atomic_write_text
from textgen_core.errors import TextgenError
from textgen_core.paths import user_path

from ..safe import shown
from ..transcript import jsonl_text, plain_text

if TYPE_CHECKING:
    from ..session import Session


def save(s: Session, path: str) -> None:
    """Write the transcript atomically: text as the session read, or JSONL (a `.jsonl` name) with every
    probability."""
    if not s.transcript:
        raise TextgenError("nothing to save yet")
    target = user_path(path)
    if target.is_dir() or not target.name:
        raise TextgenError(f"{shown(path)} is a folder; give a file name, e.g. session.txt or session.jsonl")
    jsonl = target.suffix.lower() == ".jsonl"
    atomic_write_text(target, jsonl_text(s.transcript, s.tree) if jsonl else plain_text(s.transcript))
    s.note(
        f"saved {len(s.transcript)} run(s) to {target}"
        + (f" (JSONL: {len(s.tree.branches)} branch(es), one object per character)" if jsonl else "")
    )
