"""The transient bar shown on a terminal while a long seed is fed (`textgen sample --prompt-file`), kept apart
from training's progress so that sampling never imports the training code (and torch with it)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class PrimingBar:
    """A progress callback (`textgen_core.generate.Progress`) that shows a transient bar while a seed is fed.

    Only a seed of several chunks gets one: the first call comes after one chunk, and a seed that is already
    in by then took no time worth showing. Nothing is drawn when the console is not a terminal. Use it as a
    context manager, so that the bar is gone whatever ends the block (a Ctrl-C included).
    """

    def __init__(self, console: Console, what: str = "priming the seed"):
        self.console = console
        self.what = what
        self._progress: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            if done >= total or not self.console.is_terminal:
                return
            self._progress = Progress(
                TextColumn(self.what),
                BarColumn(bar_width=24),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} characters · Ctrl-C stops"),
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

    def __enter__(self) -> PrimingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
