"""The transient progress bar of the numpy jobs that can take a while: feeding a long seed (`textgen sample
--prompt-file`) and scoring a long text (`textgen eval`). Kept apart from training's progress display
(`repl/progress.py`), so that these commands never import the training code, and torch with it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class CharsBar:
    """A progress callback (`textgen_core.generate.Progress`: done, total characters) drawing a transient bar.

    It shows only on a terminal, only once the job has run `delay` seconds (a job that ends sooner took no time
    worth showing, and a bar that flashes for a moment is noise), and never for a call that is already done.
    Use it as a context manager, so that the bar is gone however the job ends (a Ctrl-C included).

    `console` None means standard error, made (with rich's progress machinery) only when a bar is due: a job
    that never shows one, such as a short prompt's priming, never imports them.
    """

    def __init__(self, console: Console | None, what: str, *, delay: float = 0.0, note: str = ""):
        self.console = console
        self.what = what
        self.delay = delay
        self.note = note
        self._start = time.monotonic()
        self._progress: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            waited = time.monotonic() - self._start >= self.delay
            if done >= total or not waited:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self.console is None:
                self.console = Console(stderr=True, highlight=False)
            if not self.console.is_terminal:
                return
            self._progress = Progress(
                TextColumn(self.what),
                BarColumn(bar_width=24),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} characters" + self.note),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.add_task(self.what, total=total)
            self._progress.start()
        self._progress.update(self._progress.task_ids[0], completed=done)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> CharsBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
