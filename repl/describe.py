"""A checkpoint's facts (`textgen_core.describe`) as text: the table `textgen info` and /info print, and the
short summary the REPL's banner shows. Every string from the checkpoint (its path, corpus names, training
command) passes through `flat`: metadata is anyone's to write, and it is shown as text, never as terminal
controls or extra lines."""

from __future__ import annotations

from textgen_core.config import ModelConfig

from .safe import flat

#: Regularisers shown only when a model was trained with them (both are off by default).
REGULARISERS = (("embed_dropout", "embedding dropout"), ("weight_drop", "weight drop"))


def table(info: dict) -> str:
    """The human-readable table of the facts, one `name  value` row each."""
    cfg = info["config"]
    val = "—" if info["val_bpc"] is None else f"{info['val_bpc']:.3f}"
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
            f"{info['vocab_size']} characters{' (lower-case)' if info['lowercase'] else ''}: {info['vocab']}",
        ),
        ("corpus", corpus(info, sha=True) or "—"),
    ]
    if info["origin"] is not None:
        rows.append(("imported", f"from {origin(info['origin'])}"))
    else:
        steps = f"{info['step']:,} trained{_after_parent(info['init'])}; these weights from step {info['best_step']:,}"
        rows.append(("steps", steps))
    if info["window"] is not None:
        w = info["window"]
        rows.append(
            ("window", f"{w} characters: each predicted from the last {w}, from a zero state (off: statefully)")
        )
    rows += [("val bpc", val), ("trained with", info["command"] or "—")]
    if info["init"] is not None:
        init = info["init"]
        parent = [f"step {init['step']:,}" if init["step"] is not None else None]
        parent.append(f"val bpc {init['val_bpc']:.3f}" if init["val_bpc"] is not None else None)
        rows.append(("started from", f"{init['checkpoint'] or '—'} ({', '.join(p for p in parent if p) or '—'})"))
        rows.append(("which was", f"trained with {init['command'] or '—'}"))
    return "\n".join(f"{k:>12}  {flat(v)}" for k, v in rows)


def summary(info: dict) -> list[str]:
    """The banner's parts after the name: the model's size, what it was trained on, its val bits/char."""
    trained_on = corpus(info, sha=False) or "an unrecorded corpus"
    bpc = "val bpc —" if info["val_bpc"] is None else f"val {info['val_bpc']:.3f} bits/char"
    where = f"trained on {flat(trained_on)}"
    if info["origin"] is not None:
        where = f"imported from {flat(origin(info['origin']))}"
    window = [] if info["window"] is None else [f"window {info['window']}"]
    return [ModelConfig.from_dict(info["config"]).describe(), where, *window, bpc]


def origin(record: dict) -> str:
    """An imported model's source: ``book.keras (Keras 3.5.0, .keras)``."""
    version = f"Keras {record['keras_version']}" if record["keras_version"] else "Keras version unrecorded"
    fmt = f", .{record['format']}" if record["format"] else ""
    return f"{record['file'] or '—'} ({version}{fmt})"


def corpus(info: dict, *, sha: bool) -> str:
    """The training texts with their sizes (and the start of their hashes), "" when none was recorded."""
    digest = (lambda s: f", sha256 {s['sha256'][:12]}…") if sha else (lambda s: "")
    return ", ".join(f"{s['name']} ({s['chars']:,} chars{digest(s)})" for s in info["corpus"])


def _after_parent(init: dict | None) -> str:
    """For a fine-tuned checkpoint, the steps of the one it started from: its own count restarts at 0."""
    if init is None or init["step"] is None:
        return ""
    return f" after the {init['step']:,} of the checkpoint it started from"
