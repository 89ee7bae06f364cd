"""`textgen info`: what a checkpoint is (config, size, vocabulary, corpus, training record)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint

from . import argtypes

NAME = "info"
SUMMARY = "describe a checkpoint: config, parameters, vocabulary, corpus, steps, val bpc"
EXAMPLE = "textgen info -c runs/book --json"

#: Regularisers shown only when a model was trained with them (both are off by default).
REGULARISERS = (("embed_dropout", "embedding dropout"), ("weight_drop", "weight drop"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=SUMMARY, description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}. Example: {EXAMPLE}")
    argtypes.add_checkpoint(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def describe(c: Checkpoint) -> dict:
    """The facts `info` prints, as a dict. `step` is the run's progress (from its resume state when the
    checkpoint sits in a run folder); `best_step` is the step whose weights the checkpoint holds."""
    from textgen_core import checkpoint as ckpt

    m = c.meta
    return {
        "path": str(c.path),
        "name": c.name,
        "config": m.config.to_dict(),
        "params": m.config.num_params(),
        "vocab": "".join(m.vocab.chars),
        "vocab_size": len(m.vocab),
        "lowercase": m.lowercase,
        "corpus": [s.to_dict() for s in m.corpus],
        "step": max(m.step, ckpt.run_step(c.path.parent) or 0),
        "best_step": m.step,
        "train_bpc": m.train_bpc,
        "val_bpc": m.val_bpc,
        "command": m.command,
        "init": started_from(m.extra.get("init")),
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


def _after_parent(init: dict | None) -> str:
    """For a fine-tuned checkpoint, the steps of the one it started from: its own count restarts at 0."""
    if init is None or init["step"] is None:
        return ""
    return f" after the {init['step']:,} of the checkpoint it started from"


def main(args: argparse.Namespace) -> int:
    from textgen_core import checkpoint as ckpt

    from .safe import json_visible

    info = describe(ckpt.load(args.checkpoint))
    if args.json:
        print(json_visible(json.dumps(info, ensure_ascii=False)))
    else:
        print(render(info))
    return 0


def render(info: dict) -> str:
    """The human-readable table of `describe`'s facts (also what the REPL's /info shows)."""
    from .safe import visible

    cfg = info["config"]
    val = "—" if info["val_bpc"] is None else f"{info['val_bpc']:.3f}"
    corpus = ", ".join(f"{s['name']} ({s['chars']:,} chars, sha256 {s['sha256'][:12]}…)" for s in info["corpus"])
    rows = [
        ("checkpoint", info["path"]),
        (
            "model",
            f"{cfg['num_layers']}×{cfg['hidden_size']} LSTM, embedding {cfg['embed_dim']}, dropout {cfg['dropout']}"
            + "".join(f", {label} {cfg[key]}" for key, label in REGULARISERS if cfg[key])
            + f", {info['params']:,} parameters",
        ),
        (
            "vocabulary",
            f"{info['vocab_size']} characters{' (lower-case)' if info['lowercase'] else ''}: "
            f"{visible(info['vocab']).replace(chr(10), '⏎').replace(chr(9), '⇥')}",
        ),
        ("corpus", corpus or "—"),
        (
            "steps",
            f"{info['step']:,} trained{_after_parent(info['init'])}; these weights from step {info['best_step']:,}",
        ),
        ("val bpc", val),
        ("trained with", info["command"] or "—"),
    ]
    if info["init"] is not None:
        init = info["init"]
        parent = [f"step {init['step']:,}" if init["step"] is not None else None]
        parent.append(f"val bpc {init['val_bpc']:.3f}" if init["val_bpc"] is not None else None)
        rows.append(("started from", f"{init['checkpoint'] or '—'} ({', '.join(p for p in parent if p) or '—'})"))
        rows.append(("which was", f"trained with {init['command'] or '—'}"))
    # The path, corpus names and command come from the user or from the checkpoint's metadata, which anyone can
    # write: shown as text, never as terminal controls.
    return "\n".join(f"{k:>12}  {visible(v)}" for k, v in rows)
