"""Timing training steps on this machine: candidate sizes for `--size auto` and the two precisions for `--precision
auto` (the rules are `sizing` and `precision`; this is the measuring)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .config import TrainConfig
from .model import CharLSTM
from .sizing import CALIBRATION_SHARE, CALIBRATION_STEPS, Candidate, Choice, choose
from .step import backward

#: Seconds per step of a candidate on this machine: `time_steps` in a precision here; tests inject their own.
StepTimer = Callable[[Candidate], float]
#: Seconds per step of the model of a config in a precision: `time_steps` here; tests inject their own timings.
ConfigTimer = Callable[[TrainConfig, str], float]


def time_steps(config: TrainConfig, vocab_size: int, tokens: np.ndarray, device: torch.device) -> ConfigTimer:
    """A timer of training steps: ``timer(c, precision)`` builds the model of `c` as the run would, trains it one
    untimed step (the first allocates and picks kernels) and `CALIBRATION_STEPS` timed ones in `precision` on the
    start of the training text, and returns the median seconds per step. The weights are thrown away; the run
    then builds its model from its own seed. Shared by the timing of sizes and of precisions, so both measure the
    same step."""
    b, t = config.batch_size, config.seq_len
    chunk = torch.from_numpy(np.ascontiguousarray(tokens[: b * (t + 1)], dtype=np.int64)).reshape(b, t + 1)
    x, y = chunk[:, :-1].to(device), chunk[:, 1:].to(device)

    def timer(c: TrainConfig, precision: str) -> float:
        model = CharLSTM(c.model_config(vocab_size)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        state = model.initial_state(b, device)
        model.train()
        times = []
        for i in range(1 + CALIBRATION_STEPS):
            start = time.perf_counter()
            _, state = backward(model, model, optimizer, scaler, precision, x, y, state, c.clip)
            scaler.step(optimizer)
            scaler.update()
            state = (state[0].detach().float(), state[1].detach().float())
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
        return float(np.median(times))

    return timer


def calibrate(
    candidates: tuple[Candidate, ...], budget_s: float, timer: StepTimer, clock: Callable[[], float] = time.monotonic
) -> tuple[Choice, float]:
    """Time the candidates smallest first and choose by `sizing.choose`; returns the choice and the seconds the
    timing took, which the run counts in its budget.

    Timing stops early where it cannot change the choice: once a candidate would get fewer steps than it needs
    (every larger one is slower and needs more), or once calibration has used `CALIBRATION_SHARE` of the budget.
    The prediction for each candidate is made for the budget left after the timing so far."""
    start = clock()
    seconds: dict[str, float] = {}
    for c in candidates:
        seconds[c.label] = timer(c)
        spent = clock() - start
        left = budget_s - spent
        if seconds[c.label] > 0 and left / seconds[c.label] < c.min_steps:
            break
        if spent >= CALIBRATION_SHARE * budget_s:
            break
    spent = clock() - start
    return choose(seconds, budget_s - spent, candidates), spent
