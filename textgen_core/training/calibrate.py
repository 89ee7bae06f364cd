"""Timing training steps on this machine: candidate sizes for `--size auto` and the two precisions for `--precision
auto` (the rules are `sizing` and `precision`; this is the measuring)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .config import TrainConfig
from .model import CharLSTM
from .sizing import CALIBRATION_SHARE, CALIBRATION_STEPS, Candidate, Choice, choose
from .step import backward

#: Seconds per step of a candidate on this machine: `time_steps` in a precision here; tests inject their own.
StepTimer = Callable[[Candidate], float]
#: The seconds of each timed step of the model of a config, by precision: `time_steps` here; tests inject their own.
ConfigTimer = Callable[[TrainConfig, Sequence[str]], dict[str, list[float]]]


def time_steps(config: TrainConfig, vocab_size: int, tokens: np.ndarray, device: torch.device) -> ConfigTimer:
    """A timer of training steps: ``timer(c, precisions)`` builds the model of `c` as the run would once per
    precision, trains each one untimed step (the first allocates and picks kernels), then `CALIBRATION_STEPS`
    timed rounds of one step of each, on the start of the training text, and returns each precision's step times.
    The rounds alternate the precisions so that a busy moment of a shared machine slows both alike, not one.
    The weights are thrown away; the run then builds its model from its own seed. Shared by the timing of sizes
    and of precisions, so both measure the same step."""
    b, t = config.batch_size, config.seq_len
    chunk = torch.from_numpy(np.ascontiguousarray(tokens[: b * (t + 1)], dtype=np.int64)).reshape(b, t + 1)
    x, y = chunk[:, :-1].to(device), chunk[:, 1:].to(device)

    def timer(c: TrainConfig, precisions: Sequence[str]) -> dict[str, list[float]]:
        runs = []
        for precision in precisions:
            model = CharLSTM(c.model_config(vocab_size)).to(device).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
            scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
            runs.append((precision, model, optimizer, scaler, [model.initial_state(b, device)]))
        times: dict[str, list[float]] = {p: [] for p in precisions}
        for i in range(1 + CALIBRATION_STEPS):
            for precision, model, optimizer, scaler, state in runs:
                start = time.perf_counter()
                _, new = backward(model, model, optimizer, scaler, precision, x, y, state[0], c.clip)
                scaler.step(optimizer)
                scaler.update()
                state[0] = (new[0].detach().float(), new[1].detach().float())
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:
                    times[precision].append(time.perf_counter() - start)
        return times

    return timer


def median_step(timer: ConfigTimer, config: TrainConfig, precision: str) -> float:
    """The median seconds per step of the model of `config` in `precision`."""
    return float(np.median(timer(config, (precision,))[precision]))


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
