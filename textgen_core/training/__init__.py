"""Training: the only part of textgen that needs torch (`pip install 'textgen[train]'`).

The modules, one job each: `config` (TrainConfig and how a resume combines settings), `hardware` (device,
precision, threads, memory), `batching` (streams and batches), `schedule` (budget and learning rate),
`finetune` (--init), `evaluation` (bpc and
samples), `averaging` (--ema), `events` (what a run reports), `model` (the torch CharLSTM), `distributed`
(torchrun) and `loop` (the Trainer).

The names below are imported on first use, not with the package: `config`, `events` and `finetune` need no
torch. The run folder's files are read and written by `textgen_core.runfolder`, outside this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

#: Public name → the module (in this package) that defines it.
_EXPORTS = {
    "TrainConfig": "config",
    "Trainer": "loop",
    "Reporter": "events",
    "StepStats": "events",
    "EvalStats": "events",
    "CharLSTM": "model",
    "evaluate_bpc": "evaluation",
    "make_streams": "batching",
    "stream_batch": "batching",
    "pick_device": "hardware",
    "cpu_threads": "hardware",
    "cpu_supports_bf16": "hardware",
    "max_processes": "hardware",
}

__all__ = [
    "CharLSTM",
    "EvalStats",
    "Reporter",
    "StepStats",
    "TrainConfig",
    "Trainer",
    "cpu_supports_bf16",
    "cpu_threads",
    "evaluate_bpc",
    "make_streams",
    "max_processes",
    "pick_device",
    "stream_batch",
]

if TYPE_CHECKING:
    from .batching import make_streams, stream_batch
    from .config import TrainConfig
    from .evaluation import evaluate_bpc
    from .events import EvalStats, Reporter, StepStats
    from .hardware import cpu_supports_bf16, cpu_threads, max_processes, pick_device
    from .loop import Trainer
    from .model import CharLSTM


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next look-up is an ordinary attribute
    return value
