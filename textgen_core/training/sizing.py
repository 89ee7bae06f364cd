"""`--size auto`: the model size that learns most in a --minutes budget on this machine. Pure rules, no torch.

A fixed default size is right on one machine class only: the same 10 minutes buy 2.2× more steps where bf16
matrix products are native and fast than where they are not, and a model too large for the steps it gets ends
the budget undertrained. So the run times a few steps of each candidate here (`calibrate`, in the loop), predicts
how many steps each gets in the budget, and picks by the rule below, fitted to a sweep of sizes against steps on
two corpora (docs/sizing.md, `bench/sweep_size.py`).

The rule: **the largest candidate that gets at least its `min_steps` in the budget**, where `min_steps` is the
number of steps at which the sweep found it ahead of the next smaller candidate given the steps that one gets in
the same time. Each candidate carries the regularisation and optimiser settings that go with its size and the
steps it runs for: the smallest ones train for a few hundred steps, too few to overfit and too few for a long
warm-up, so they drop the regularisers and warm up fast (the settings `bench/bench_train.py` (d) measured).

Other cells (`--cell gru|rnn`): each candidate is timed as the cell the run trains (calibration builds that
model), so how many steps a size gets is measured per cell; a GRU layer has 3/4 of an LSTM layer's weights and a
plain RNN 1/4, and they get correspondingly more steps. The `min_steps` thresholds, how many steps a size needs
before it beats the next smaller one, were swept on the LSTM only and are applied to every cell: an assumption
carried over, not a threshold measured per cell (docs/record/cells-compared.md shows what auto picks for each cell
and how that fares against the same cell at the LSTM's parameter count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import (
    DEFAULT_DROPOUT,
    DEFAULT_EMBED_DROPOUT,
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    DEFAULT_LR,
    DEFAULT_WARMUP_STEPS,
    DEFAULT_WEIGHT_DECAY,
    DEFAULT_WEIGHT_DROP,
)

#: The settings a candidate fixes: TrainConfig field names. A user's own flag for any of them wins.
SIZE_FIELDS = (
    "hidden_size",
    "num_layers",
    "dropout",
    "embed_dropout",
    "weight_drop",
    "weight_decay",
    "warmup_steps",
    "lr",
)
#: Flags that fix the size itself: with either, there is nothing for auto to choose between unless a candidate
#: matches; see `eligible`.
SHAPE_FIELDS = ("hidden_size", "num_layers")


@dataclass(frozen=True)
class Candidate:
    """A model size and the training settings that go with it; `min_steps` is the rule's threshold."""

    num_layers: int
    hidden_size: int
    dropout: float
    embed_dropout: float
    weight_drop: float
    weight_decay: float
    warmup_steps: int
    lr: float
    min_steps: int

    @property
    def label(self) -> str:
        return f"{self.num_layers}×{self.hidden_size}"

    def settings(self) -> dict[str, float | int]:
        return {f: getattr(self, f) for f in SIZE_FIELDS}


_SHORT = dict(dropout=0.1, embed_dropout=0.0, weight_drop=0.0, weight_decay=0.0, warmup_steps=20, lr=8e-3)

#: Smallest first; the last is the default model. `min_steps` come from the sweep in docs/sizing.md (Nietzsche,
#: equal time on the 410-class CPU, and the record of 10-minute runs on the bf16 class for the two largest).
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(1, 256, **_SHORT, min_steps=0),
    Candidate(1, 512, **_SHORT, min_steps=700),
    Candidate(2, 384, 0.15, 0.05, 0.15, DEFAULT_WEIGHT_DECAY, DEFAULT_WARMUP_STEPS, DEFAULT_LR, min_steps=1750),
    Candidate(2, 512, 0.2, 0.1, 0.2, DEFAULT_WEIGHT_DECAY, DEFAULT_WARMUP_STEPS, DEFAULT_LR, min_steps=2200),
    Candidate(
        DEFAULT_LAYERS,
        DEFAULT_HIDDEN,
        DEFAULT_DROPOUT,
        DEFAULT_EMBED_DROPOUT,
        DEFAULT_WEIGHT_DROP,
        DEFAULT_WEIGHT_DECAY,
        DEFAULT_WARMUP_STEPS,
        DEFAULT_LR,
        min_steps=1800,
    ),
)
#: Share of the budget calibration may take at most; it stops timing larger candidates once past it.
CALIBRATION_SHARE = 0.05
#: Steps timed per candidate, after one untimed step (the first allocates and picks kernels).
CALIBRATION_STEPS = 2


@dataclass(frozen=True)
class Choice:
    """What `choose` picked, with the predicted steps of every candidate it timed, for the one-line report."""

    candidate: Candidate
    steps: dict[str, int]
    step_seconds: dict[str, float]
    budget_s: float

    def line(self) -> str:
        """One line for the user: what was chosen and why, e.g. "--size auto: 2×384 (0.21 s/step here → about
        2,800 steps in 9.8 min; 2×512 would get 1,450, it needs 1,600)"."""
        c = self.candidate
        minutes = f"{max(0.0, self.budget_s) / 60:.2g} min"
        why = f"{self.step_seconds[c.label]:.2g} s/step here → about {self.steps[c.label]:,} steps in {minutes}"
        bigger = [k for k in CANDIDATES[CANDIDATES.index(c) + 1 :] if k.label in self.steps]
        if bigger:
            k = bigger[0]
            why += f"; {k.label} would get {self.steps[k.label]:,}, it needs {k.min_steps:,}"
        return f"--size auto: {c.label} ({why})"


def eligible(given: Mapping[str, object]) -> tuple[Candidate, ...]:
    """The candidates that agree with the size flags the user gave (`given`: field → value)."""
    return tuple(c for c in CANDIDATES if all(getattr(c, f) == given[f] for f in SHAPE_FIELDS if f in given))


def predicted_steps(step_seconds: float, budget_s: float) -> int:
    return int(max(0.0, budget_s) / step_seconds) if step_seconds > 0 else 0


def choose(
    step_seconds: Mapping[str, float], budget_s: float, candidates: tuple[Candidate, ...] = CANDIDATES
) -> Choice:
    """The rule (module doc) over the candidates timed: `step_seconds` maps a candidate's label to its measured
    seconds per step, `budget_s` is the training time left after calibration. Deterministic in its inputs."""
    timed = [c for c in candidates if c.label in step_seconds]
    if not timed:
        raise ValueError("no candidate was timed")
    steps = {c.label: predicted_steps(step_seconds[c.label], budget_s) for c in timed}
    best = timed[0]
    for c in timed[1:]:
        if steps[c.label] >= c.min_steps:
            best = c
    return Choice(best, steps, {c.label: step_seconds[c.label] for c in timed}, budget_s)
