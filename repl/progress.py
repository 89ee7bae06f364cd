"""Rendering training progress with rich: a live status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from textgen_core.training.events import EvalStats, Reporter, StepStats
from textgen_core.training.loop import Trainer

from .safe import flat


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RichReporter(Reporter):
    """Shows step, epoch, train bpc, val bpc (best), chars/s and ETA; prints each evaluation with samples.

    On a terminal a single live line updates in place; in a log file (e.g. `nohup textgen train … &`) a plain
    line is written every `log_every` seconds, so background runs stay readable.
    """

    def __init__(self, console: Console | None = None, log_every: float = 30.0):
        self.console = console or Console(highlight=False)
        self.log_every = log_every
        self.progress: Progress | None = None
        self.task = None
        self.best: float | None = None
        self._last_log = 0.0
        self._reading: Progress | None = None
        self._reading_what: str | None = None

    def start(self, run: Trainer) -> None:
        c = run.config
        budget = f"{run.total_steps} steps" if run.total_steps is not None else f"{c.minutes:g} minutes"
        resumed = f", resuming at step {run.step}" if run.step else ""
        procs = f" × {run.world.size} processes" if run.world.size > 1 else ""
        self.console.print(
            f"[bold]textgen train[/]: {run.model_config.describe()}, vocab {run.vocab.describe()}, "
            f"{len(run.corpus.tokens):,} chars ({', '.join(s.name for s in run.corpus.sources)}), "
            f"{run.device.type} {run.precision}, batch {c.batch_size}×{c.seq_len}{procs}, budget {budget}{resumed}"
        )
        self.best = None if run.best_val == float("inf") else run.best_val
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("step {task.fields[step]}"),
                BarColumn(bar_width=24),
                TextColumn(
                    "epoch {task.fields[epoch]:.2f}  train {task.fields[train]:.3f}  "
                    "val {task.fields[val]}  {task.fields[rate]:,.0f} chars/s"
                ),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.progress.add_task(
                "train", total=1.0, step=run.step, epoch=0.0, train=0.0, val=self._val_text(), rate=0.0
            )
            self.progress.start()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)  # one line, whatever the width

    def _val_text(self) -> str:
        return "—" if self.best is None else f"{self.best:.3f} best"

    def step(self, stats: StepStats) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                completed=stats.budget_fraction,
                step=stats.step,
                epoch=stats.epoch,
                train=stats.train_bpc,
                val=self._val_text(),
                rate=stats.chars_per_s,
            )
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every:
            self._last_log = now
            eta = stats.elapsed / stats.budget_fraction * (1 - stats.budget_fraction) if stats.budget_fraction else 0
            self.console.print(
                f"step {stats.step}  epoch {stats.epoch:.2f}  train {stats.train_bpc:.3f} bpc  "
                f"val {self._val_text()}  {stats.chars_per_s:,.0f} chars/s  lr {stats.lr:.2e}  "
                f"elapsed {_fmt_time(stats.elapsed)}  eta {_fmt_time(eta)}"
            )

    def evaluated(self, stats: EvalStats) -> None:
        self.best = stats.best_val_bpc
        mark = " [green]best[/]" if stats.improved else ""
        train = f"train {stats.train_bpc:.3f}  " if stats.train_bpc is not None else ""
        self.console.print(
            f"[bold]eval[/] step {stats.step}  epoch {stats.epoch:.2f}  {train}val {stats.val_bpc:.3f} bpc{mark}"
            f"  (best {stats.best_val_bpc:.3f} at step {stats.best_step}, {_fmt_time(stats.elapsed)})"
        )
        for temp, text in stats.samples.items():
            line = Text(f"  T={temp:<4g} ", style="dim")
            line.append(flat(text))
            self.console.print(line, overflow="ellipsis", no_wrap=True)

    def reading(self, what: str, done: int, total: int) -> None:
        """A transient bar while a large corpus is read; a log (not a terminal) gets one line as the pass starts."""
        if done >= total:
            if self._reading is not None:
                self._reading.stop()
            self._reading, self._reading_what = None, None
            return
        if what != self._reading_what:
            self._reading_what = what
            if self.console.is_terminal:
                self._reading = Progress(
                    TextColumn(what),
                    BarColumn(bar_width=24),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self._reading.add_task(what, total=total)
                self._reading.start()
            else:
                self.console.print(f"{what} ({total / 1e6:,.0f} MB)…")
        if self._reading is not None:
            self._reading.update(self._reading.task_ids[0], completed=done)

    def saved(self, path: Path, reason: str) -> None:
        pass  # reported once at the end; each evaluation line already says when the best improved

    def finish(self, run: Trainer, reason: str) -> None:
        if self.progress is not None:
            self.progress.stop()
        best = "no evaluation yet" if self.best is None else f"best val {run.best_val:.3f} bpc at step {run.best_step}"
        verb = "stopped" if reason == "interrupted" else "finished"
        self.console.print(f"{verb} at step {run.step} ({best}); model: {run.out / 'model.safetensors'}")
        if reason == "interrupted":
            self.console.print(f"continue with the same command plus --resume (state saved in {run.out})")
