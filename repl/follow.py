"""Following a training run from the REPL: say when the run writes a new best model, and with /follow on switch
to it.

`Follower.check` is called between turns only: by the prompt's background task while the prompt waits (every
`watch.POLL_SECONDS`, its lines printed above the prompt through prompt_toolkit's `run_in_terminal`), and by the
loop before each line it hands to the session. So a model is never swapped in the middle of a stream, and a
change made during a long run is reported as soon as that run ends.
"""

from __future__ import annotations

import asyncio

from prompt_toolkit.application import run_in_terminal

from textgen_core.checkpoint import Checkpoint
from textgen_core.watch import POLL_SECONDS, CheckpointWatcher

from .session import Session


class Follower:
    """Watches the file of whatever checkpoint `session` has loaded (after a /load, the new one's)."""

    def __init__(self, session: Session):
        self.session = session
        self.watcher = CheckpointWatcher(session.loaded.checkpoint)

    def poll(self) -> Checkpoint | None:
        """A new checkpoint in the loaded model's file, or None. Never raises: a bad file is skipped."""
        loaded = self.session.loaded.checkpoint
        if self.watcher.path != loaded.path:  # /load switched files: watch the new one from now
            self.watcher = CheckpointWatcher(loaded)
            return None
        return self.watcher.poll()

    def report(self, new: Checkpoint) -> None:
        """One line about `new`; with follow on, switch to it first."""
        s = self.session
        old = s.loaded.checkpoint.meta
        line = f"new best in {s.name}: step {new.meta.step:,}, val {_bpc(new.meta.val_bpc)} bits/char "
        line += f"(was {_bpc(old.val_bpc)} at step {old.step:,})"
        if s.follow:
            s.use(new)
            s.note(f"{line} — switched to it (/follow off to stay on a model)")
        else:
            s.note(f"{line} — /load {new.path} to switch")

    def check(self) -> None:
        new = self.poll()
        if new is not None:
            self.report(new)

    async def watch(self) -> None:
        """The prompt's background task: poll while the user is at the prompt (prompt_toolkit cancels it when the
        prompt returns a line)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            new = self.poll()
            if new is not None:
                await run_in_terminal(lambda new=new: self.report(new))


def _bpc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
