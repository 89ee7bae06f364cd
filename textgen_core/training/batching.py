"""The training text as batches: contiguous streams, one chunk of each per step, a new start offset per epoch.

The text is cut into (world size × batch) contiguous streams and each rank takes its own block of them, so N
ranks see the data exactly as one process with batch N × batch would. Each step feeds the next ``seq_len``
characters of every stream; the LSTM state carries over between chunks of the same stream. The streams stay in
the corpus's narrow integer type on the host (a view of the corpus or of its memory map): each step copies out
one (batch, seq_len + 1) window as int64.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Rows = TypeVar("Rows", np.ndarray, torch.Tensor)


def make_streams(tokens: np.ndarray, n_streams: int) -> np.ndarray:
    """Cut `tokens` into `n_streams` equal contiguous rows (the tail that does not divide evenly is dropped)."""
    length = len(tokens) // n_streams
    return np.ascontiguousarray(tokens[: n_streams * length].reshape(n_streams, length))


def rank_streams(tokens: np.ndarray, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """This rank's `batch_size` streams: its contiguous block of the world's."""
    return make_streams(tokens, world_size * batch_size)[rank * batch_size : (rank + 1) * batch_size]


def steps_per_epoch(streams: np.ndarray, seq_len: int) -> int:
    """Whole chunks per stream, leaving room for the per-epoch offset (< seq_len) and the one-character shift."""
    return (streams.shape[1] - 1 - seq_len) // seq_len


def stream_batch(streams: Rows, offset: int, index: int, seq_len: int) -> tuple[Rows, Rows]:
    """Inputs and targets (inputs shifted by one) for chunk `index` of every stream, starting at `offset`."""
    start = offset + index * seq_len
    return streams[:, start : start + seq_len], streams[:, start + 1 : start + seq_len + 1]


def epoch_offset(seed: int, epoch: int, seq_len: int) -> int:
    """Deterministic per-epoch start offset, so a resumed run sees the same chunks as an uninterrupted one."""
    return int(np.random.default_rng([seed, epoch]).integers(0, seq_len))


def ids_to_device(ids: np.ndarray, device: torch.device) -> torch.Tensor:
    """A copy of `ids` (any integer array, a memory map's slice included) as int64 on `device`.

    On CUDA the copy goes through pinned host memory, so the transfer is asynchronous."""
    t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t
