"""A path a user typed, made usable or refused in one line: the one set of checks every command and slash
command applies before it opens or writes a file."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TextgenError, shown


def user_path(text: str | os.PathLike) -> Path:
    """`text` as a path with `~` expanded. What pathlib would raise on (an unknown `~user`, a name too long for
    the filesystem) becomes a one-line error, and so does a NUL character, which no path can hold (Ctrl-@ types
    one; pathlib answers "does not exist" for it, and opening it raises ValueError)."""
    if "\0" in str(text):
        raise TextgenError(f"cannot use {shown(str(text))} as a path (it contains a NUL character)")
    try:
        path = Path(text).expanduser()
        path.exists()
    except (OSError, RuntimeError) as e:
        raise TextgenError(f"cannot use {shown(str(text))} as a path ({getattr(e, 'strerror', None) or e})") from None
    return path
