"""The budget and the learning rate as pure functions of progress, so that a resumed run follows the same curve
as an uninterrupted one (its step and elapsed time come back from the resume file)."""

from __future__ import annotations

import math

from .config import TrainConfig


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int | None:
    """The run's length in steps; None for a --minutes budget, which ends by the clock."""
    if config.steps is not None:
        return config.steps
    if config.epochs is not None:
        return max(1, round(config.epochs * steps_per_epoch))
    return None


def budget_fraction(config: TrainConfig, total: int | None, step: int, elapsed: float) -> float:
    """How much of the budget is spent, in [0, 1]: steps for --steps/--epochs, the clock for --minutes."""
    if total is not None:
        return min(1.0, step / total)
    return min(1.0, elapsed / (60.0 * config.minutes))  # type: ignore[operator]


def lr_at(config: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over the first `warmup_steps`, then cosine decay to `min_lr_ratio` of the peak at the end of
    the budget. `step` counts steps taken; the rate is the one for the next step."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
    return config.lr * warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cos)
