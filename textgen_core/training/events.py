"""What a run reports as it goes: the events a front end renders (the CLI with rich) and library users may ignore."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loop import Trainer


@dataclass
class StepStats:
    step: int
    total_steps: int | None
    epoch: float
    train_bpc: float
    lr: float
    chars_per_s: float
    elapsed: float
    budget_fraction: float


@dataclass
class EvalStats:
    step: int
    epoch: float
    train_bpc: float | None
    val_bpc: float
    best_val_bpc: float
    best_step: int
    improved: bool
    elapsed: float
    samples: dict[float, str] = field(default_factory=dict)


class Reporter:
    """Receives progress events. The CLI renders them with rich; tests and library users may ignore them."""

    def start(self, run: Trainer) -> None: ...
    def step(self, stats: StepStats) -> None: ...
    def evaluated(self, stats: EvalStats) -> None: ...
    def saved(self, path: Path, reason: str) -> None: ...
    def note(self, text: str) -> None:
        """A one-line remark on the run before it starts (what `--size auto` chose, and why)."""

    def finish(self, run: Trainer, reason: str) -> None: ...
    def reading(self, what: str, done: int, total: int) -> None:
        """Progress of a pass over a large corpus (building or checking its token file), in bytes."""
