"""One training step's forward and backward pass: shared by the loop and by `--size auto`'s timing of sizes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .hardware import AUTOCAST_DTYPES
from .model import CharLSTM


def backward(
    net: torch.nn.Module,
    model: CharLSTM,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: str,
    x: torch.Tensor,
    y: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    clip: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The forward and backward pass of one step, gradients unscaled and clipped: what a training step costs, shared
    by the loop and by `--size auto`'s timing of candidate sizes (`calibrate`). Returns the loss (nats) and the new
    stream state; the caller steps the optimiser."""
    dtype = AUTOCAST_DTYPES.get(precision)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        logits, new_state = net(x, state)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    return loss, new_state
