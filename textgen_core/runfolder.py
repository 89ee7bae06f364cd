"""A run folder: its files, the checks before a run starts in one, and the one reader of its resume file.

A run folder holds:

- ``model.safetensors``: the weights with the best validation bpc so far (what users sample from);
- ``resume.safetensors``: the latest weights (and their moving average with ``ema``), Adam moments, LSTM stream
  state, RNG state and progress, with the run's settings as JSON metadata under the key ``resume``;
- ``metrics.jsonl``: one line per evaluation.

Here rather than in `training`, and free of torch: `textgen info` and the REPL read a run's progress
(`run_step`) and learning curve (`read_metrics`) where torch may not be installed, while training writes the
folder through the same functions, so the layout is known in one place.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .atomic import append_text
from .checkpoint import RESUME_NAME, WEIGHTS_NAME
from .errors import TextgenError

#: Metadata every resume file holds; a file lacking one was damaged or hand-edited.
RESUME_KEYS = ("config", "sources", "vocab", "step", "elapsed", "best_val", "best_step", "param_groups")
#: Tensors every resume file holds besides the weights (whose names depend on the model's size).
RESUME_TENSORS = ("stream/h", "stream/c", "rng/torch")
METRICS_NAME = "metrics.jsonl"


def check_new_run(out: Path) -> None:
    """Refuse to start a new run in a folder that holds one: its first evaluation would replace the trained model.

    A folder with only `model.safetensors` (a finished run whose resume file was deleted to save space, or a copied
    checkpoint) is refused too, as it cannot be resumed either."""
    if (out / RESUME_NAME).exists():
        raise TextgenError(f"--out {out} already holds a run; add --resume to continue it, or choose another --out")
    if (out / WEIGHTS_NAME).exists():
        raise TextgenError(
            f"--out {out} already holds a trained model ({WEIGHTS_NAME}); choose another --out, or move the model away"
        )


def _open_resume(path: Path, with_tensors: bool) -> tuple[dict, dict[str, np.ndarray]]:
    """The resume file's metadata (and its tensors if asked). The one place that knows how the file is laid out;
    raises whatever the file's damage makes safetensors or json raise."""
    from safetensors import safe_open

    # Tensor by tensor from the file: reading it whole first would hold the resume state twice. The metadata
    # comes from the header alone.
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {})["resume"])
        tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}  # noqa: SIM118 (not a mapping)
    return meta, tensors


def read_resume(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The tensors and metadata of `out`'s resume file, checked to hold what a resume needs."""
    path = out / RESUME_NAME
    if not path.exists():
        raise TextgenError(f"{out}: nothing to resume (no {RESUME_NAME}); drop --resume to start a new run")
    try:
        meta, tensors = _open_resume(path, with_tensors=True)
    except Exception as e:  # corrupt resume state: say so, never traceback
        raise TextgenError(f"{path}: resume state is unreadable ({str(e).splitlines()[0][:100]})") from None
    missing = [k for k in RESUME_KEYS if not isinstance(meta, dict) or k not in meta]
    missing += [k for k in RESUME_TENSORS if k not in tensors]
    if missing or not isinstance(meta.get("config"), dict):
        raise TextgenError(
            f"{path}: resume state is incomplete (lacks {', '.join(missing) or 'config'}); "
            "start a new --out (model.safetensors there is still usable)"
        )
    return tensors, meta


def run_step(folder: str | os.PathLike) -> int | None:
    """Steps trained so far by the run in `folder` (from its resume state), or None if it has none/unreadable."""
    path = Path(folder) / RESUME_NAME
    if not path.is_file():
        return None
    try:
        return int(_open_resume(path, with_tensors=False)[0]["step"])
    except Exception:  # a damaged resume file must not stop `info` from describing the weights
        return None


def append_metrics(out: Path, record: dict) -> None:
    """Add one evaluation's line to the run's metrics log."""
    # A full disk must not end in a traceback; the checkpoints were written atomically before.
    append_text(out / METRICS_NAME, json.dumps(record) + "\n", kept="the checkpoints are intact", retry="--resume")


@dataclass(frozen=True)
class LearningCurve:
    """A run's evaluations from its metrics log: bits/char by step, and the best validation.

    `train_bpc[i]` is None where an evaluation had no training loss to report (the first one of a run)."""

    steps: list[int]
    train_bpc: list[float | None]
    val_bpc: list[float]
    best_step: int
    best_val_bpc: float

    @property
    def evaluations(self) -> int:
        return len(self.steps)

    def to_dict(self) -> dict:
        return {"evaluations": self.evaluations, **asdict(self)}


def read_metrics(folder: str | os.PathLike) -> LearningCurve | None:
    """The learning curve of the run in `folder`, or None when it has no metrics log or no evaluation in it.

    The log is read as a training run may be writing it: a line that does not parse (the one being written, or
    damage) is skipped. A resumed run that went back to an earlier state evaluates its steps again: a step at or
    before one already read replaces the records from that step on, so the curve is the run's history as it
    stands. The best is the lowest validation bits/char (the earliest, on a tie), the one `model.safetensors` holds.
    """
    try:
        lines = (Path(folder) / METRICS_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    points: list[tuple[int, float | None, float]] = []
    for line in lines:
        try:
            record = json.loads(line)
            step, val, train = record["step"], float(record["val_bpc"]), record.get("train_bpc")
            train = None if train is None else float(train)
        except (ValueError, TypeError, KeyError):
            continue
        if type(step) is not int or not math.isfinite(val) or (train is not None and not math.isfinite(train)):
            continue
        while points and points[-1][0] >= step:
            points.pop()
        points.append((step, train, val))
    if not points:
        return None
    best = min(range(len(points)), key=lambda i: points[i][2])
    return LearningCurve(
        steps=[p[0] for p in points],
        train_bpc=[p[1] for p in points],
        val_bpc=[p[2] for p in points],
        best_step=points[best][0],
        best_val_bpc=points[best][2],
    )
