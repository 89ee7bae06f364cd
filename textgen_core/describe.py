"""What a checkpoint is, as plain data: the facts `textgen info` prints (as a table or JSON), the REPL's /info
shows and its banner summarises. Front ends render the dict; they never read the metadata themselves, so every
view of a checkpoint agrees."""

from __future__ import annotations

from .checkpoint import WEIGHTS_NAME, Checkpoint
from .runfolder import read_metrics, run_step


def describe(c: Checkpoint) -> dict:
    """The facts about `c`, as a dict that JSON can hold. `step` is the run's progress (from its resume state
    when the checkpoint sits in a run folder); `best_step` is the step whose weights the checkpoint holds.
    `curve` is the run's learning curve from its metrics log (`LearningCurve.to_dict`), None for a checkpoint
    outside a run folder."""
    m = c.meta
    curve = read_metrics(c.path.parent) if c.path.name == WEIGHTS_NAME else None
    return {
        "path": str(c.path),
        "name": c.name,
        "config": m.config.to_dict(),
        "cell": m.config.cell_title,
        "params": m.config.num_params(),
        "vocab": "".join(m.vocab.tokens) if m.vocab.is_chars else m.vocab.tokens,
        "vocab_size": len(m.vocab),
        "tokens": m.vocab.kind,
        "vocab_label": m.vocab.describe(),
        "lowercase": m.lowercase,
        "corpus": [s.to_dict() for s in m.corpus],
        "step": max(m.step, run_step(c.path.parent) or 0),
        "best_step": m.step,
        "train_bpc": m.train_bpc,
        "val_bpc": m.val_bpc,
        "command": m.command,
        "precision": trained_precision(m.extra.get("precision")),
        "device": trained_on(m.extra.get("device")),
        "init": started_from(m.extra.get("init")),
        "window": m.window,
        "origin": imported_from(m.origin),
        "curve": None if curve is None else curve.to_dict(),
    }


def imported_from(record: object) -> dict | None:
    """Where weights textgen did not train came from (`textgen import`): the file's name, its format ("keras" or
    "h5") and the Keras version that wrote it; None for textgen's own models. Wrong types are dropped."""
    if not isinstance(record, dict) or not record:
        return None
    return {
        key: value if isinstance(value := record.get(key), str) else None for key in ("file", "format", "keras_version")
    }


def trained_precision(value: object) -> str | None:
    """The autocast precision the run trained in (`bf16`, `fp16`, `fp32`), None where unrecorded (checkpoints
    from before it was kept, imported ones) or not one of them."""
    return value if value in ("bf16", "fp16", "fp32") else None


def trained_on(record: object) -> dict | None:
    """Where the run trained, as its metadata records it (`training.hardware.device_record`): the device type
    (``cpu``, ``cuda``), its name, the CPU threads per process and the processes. None where unrecorded (older
    checkpoints did not keep it); wrong types dropped, as metadata is anyone's to write."""
    if not isinstance(record, dict) or record.get("type") not in ("cpu", "cuda"):
        return None
    name, threads, processes = record.get("name"), record.get("threads"), record.get("processes")
    return {
        "type": record["type"],
        "name": name if isinstance(name, str) else None,
        "threads": threads if type(threads) is int and threads > 0 else None,
        "processes": processes if type(processes) is int and processes > 0 else None,
    }


def started_from(record: object) -> dict | None:
    """The checkpoint a fine-tuned run started from (`textgen train --init`), as its metadata records it: its
    path, step, val bpc and training command. Metadata is anyone's to write, so wrong types are dropped."""
    if not isinstance(record, dict):
        return None
    kinds = {"checkpoint": str, "step": int, "val_bpc": float, "command": str}
    facts: dict[str, object] = {}
    for key, kind in kinds.items():
        value = record.get(key)
        fits = type(value) is kind or (kind is float and type(value) is int)
        facts[key] = value if fits else None
    return facts
