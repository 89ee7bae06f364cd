"""Noticing a new checkpoint in a file that a training run rewrites: what the REPL's run following reads.

A run replaces `RUN/model.safetensors` atomically (temporary file, then rename) at each new best, so a new file
shows as a changed (inode, size, mtime) triple. The watcher loads the file when that triple changes and hands back
the new checkpoint only if it loaded whole and differs from the last one seen. A file that fails to load (damaged,
or replaced by a writer that does not rename) is not retried until it changes again: the next write is the one
worth reading, and retrying a bad file every poll would only repeat the failure.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import checkpoint
from .errors import TextgenError

#: How often a front end should poll (seconds): a new best shows within about twice this, and a `stat` per poll
#: costs nothing next to a training step.
POLL_SECONDS = 0.5

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature | None:
    """What changes when a file is replaced or rewritten: (inode, size, mtime in ns); None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class CheckpointWatcher:
    """Watches one checkpoint file. `poll()` returns the checkpoint in it when it changed since `current` (the
    checkpoint the caller holds, which the watcher takes as already seen) and loads cleanly, else None."""

    def __init__(self, current: checkpoint.Checkpoint):
        self.path = current.path
        self._seen = signature(self.path)
        self._last = _identity(current)

    def poll(self) -> checkpoint.Checkpoint | None:
        sig = signature(self.path)
        if sig is None or sig == self._seen:
            return None
        self._seen = sig  # also for a failed load: it waits for the next change
        try:
            new = checkpoint.load(self.path)
        except (TextgenError, OSError):
            return None
        if _identity(new) == self._last:  # the same weights written again (a copy, a touch)
            return None
        self._last = _identity(new)
        return new


def _identity(c: checkpoint.Checkpoint) -> tuple[int, float | None]:
    """What tells two checkpoints of one run apart: a new best has a later step (and, usually, a new val)."""
    return c.meta.step, c.meta.val_bpc
