"""--ema: an exponential moving average of the weights, which is what such a run evaluates, saves and samples.

It averages away the noise of steps taken at a high learning rate and changes next to nothing once the rate has
annealed (README, "Choosing the defaults")."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel


def ema_update(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """`AveragedModel`'s update for an exponential moving average of the weights.

    The decay ramps up as (1 + n) / (10 + n) over the first updates (as TensorFlow's ExponentialMovingAverage
    does with `num_updates`), so a short run's average is not dominated by its first, untrained weights."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


def moving_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """A moving average of `model`'s weights, starting from them."""
    return AveragedModel(model, multi_avg_fn=ema_update(decay))
