"""A checkpoint's facts (`textgen_core.describe`) as text: the table `textgen info` and /info print, and the
short summary the REPL's banner shows. Every string from the checkpoint (its path, corpus names, training
command) passes through `flat`: metadata is anyone's to write, and it is shown as text, never as terminal
controls or extra lines."""

from __future__ import annotations

import itertools

from rich.text import Text

from textgen_core.config import ModelConfig

from .safe import flat, shown_char

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
            f"{cfg['num_layers']}×{cfg['hidden_size']} {info['cell']}, embedding {cfg['embed_dim']}, "
            f"dropout {cfg['dropout']}"
            + "".join(f", {label} {cfg[key]}" for key, label in REGULARISERS if cfg[key])
            + f", {info['params']:,} parameters",
        ),
        ("vocabulary", vocabulary(info)),
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
    rows += [("val bpc", val), ("trained with", info["command"] or "—"), ("trained on", hardware(info))]
    rows.append(("metrics", _metrics(info["curve"])))
    if info["init"] is not None:
        init = info["init"]
        parent = [f"step {init['step']:,}" if init["step"] is not None else None]
        parent.append(f"val bpc {init['val_bpc']:.3f}" if init["val_bpc"] is not None else None)
        rows.append(("started from", f"{init['checkpoint'] or '—'} ({', '.join(p for p in parent if p) or '—'})"))
        rows.append(("which was", f"trained with {init['command'] or '—'}"))
    return "\n".join(f"{k:>12}  {flat(v)}" for k, v in rows)


#: How many of a word or word-piece vocabulary's longer tokens `info` lists.
SHOWN_TOKENS = 12


def vocabulary(info: dict) -> str:
    """The vocabulary row: its size and kind, then its characters, or a word or word-piece model's first longer
    tokens (its most frequent words, its first merges)."""
    case = " (lower-case)" if info["lowercase"] else ""
    if isinstance(info["vocab"], str):
        return f"{info['vocab_size']} characters{case}: {info['vocab']}"
    longer = [shown_char(t) for t in info["vocab"] if len(t) > 1]
    more = ", …" if len(longer) > SHOWN_TOKENS else ""
    return f"{info['vocab_label']}{case}: {', '.join(longer[:SHOWN_TOKENS])}{more}"


def summary(info: dict) -> list[str]:
    """The banner's parts after the name: the model's size, what it was trained on, its val bits/char."""
    trained_on = corpus(info, sha=False) or "an unrecorded corpus"
    bpc = "val bpc —" if info["val_bpc"] is None else f"val {info['val_bpc']:.3f} bits/char"
    where = f"trained on {flat(trained_on)}"
    if info["origin"] is not None:
        where = f"imported from {flat(origin(info['origin']))}"
    window = [] if info["window"] is None else [f"window {info['window']}"]
    tokens = [] if info["tokens"] == "char" else [info["vocab_label"]]
    return [ModelConfig.from_dict(info["config"]).describe(), *tokens, where, *window, bpc]


def hardware(info: dict) -> str:
    """Where and in what precision the run trained: ``cpu (AMD EPYC 9R14, 2 threads), bf16``; "—" for what a
    checkpoint does not record (older ones kept neither)."""
    d, precision = info["device"], info["precision"] or "—"
    if d is None:
        return "—" if info["precision"] is None else f"—, {precision}"
    details = [d["name"] or "unnamed"]
    if d["threads"] is not None:
        details.append(f"{d['threads']} thread{'s' if d['threads'] != 1 else ''}")
    if d["processes"] is not None and d["processes"] > 1:
        details.append(f"× {d['processes']} processes")
    return f"{d['type']} ({', '.join(details)}), {precision}"


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


def _metrics(curve: dict | None) -> str:
    if curve is None:
        return "none (no metrics.jsonl: a learning curve needs the run folder, not only its checkpoint file)"
    return (
        f"{curve['evaluations']:,} evaluations, best val {curve['best_val_bpc']:.3f} at step {curve['best_step']:,}"
        " (learning curve below)"
    )


#: The chart's marks: validation (the curve that decides the best), training, and the best evaluation.
VAL_MARK, TRAIN_MARK, BEST_MARK = ("●", "cyan"), ("·", "magenta"), ("★", "bold green")


def curve_chart(curve: dict, width: int, height: int = 12) -> Text:
    """Train and validation bits/char by step as a character chart `width` cells wide: a y axis in bits/char,
    the steps along x, consecutive evaluations joined column by column, and the best validation starred.

    Drawn with rich's `Text` alone, so that it needs no plotting library and renders the same on a terminal,
    in a pipe (no colour) and in an SVG."""
    steps, val = curve["steps"], curve["val_bpc"]
    train = curve["train_bpc"]
    values = [x for x in (*val, *train) if x is not None]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    label_w = max(len(f"{hi:.2f}"), len(f"{lo:.2f}")) + 2
    cols = max(10, width - label_w - 1)
    first, last = steps[0], steps[-1]

    def col(step: int) -> int:
        return 0 if last == first else round((step - first) / (last - first) * (cols - 1))

    def row(value: float) -> int:
        return round((hi - value) / (hi - lo) * (height - 1))

    grid: list[list[tuple[str, str] | None]] = [[None] * cols for _ in range(height)]
    for series, mark in ((train, TRAIN_MARK), (val, VAL_MARK)):  # validation drawn last: it wins a shared cell
        points = [(col(s), x) for s, x in zip(steps, series, strict=True) if x is not None]
        for (c0, y0), (c1, y1) in itertools.pairwise(points):
            for c in range(c0, c1 + 1):  # the segment sampled once per column between two evaluations
                grid[row(y0 + (y1 - y0) * (c - c0) / max(1, c1 - c0))][c] = mark
        for c, y in points:  # the evaluations themselves (a run with one has no segment)
            grid[row(y)][c] = mark
    grid[row(curve["best_val_bpc"])][col(curve["best_step"])] = BEST_MARK

    out = Text()
    ticks = {0: hi, (height - 1) // 2: (hi + lo) / 2, height - 1: lo}
    for r, cells in enumerate(grid):
        label = f"{ticks[r]:.2f}" if r in ticks else ""
        out.append(f"{label:>{label_w - 2}} {'┤' if r in ticks else '│'}", style="dim")
        for cell in cells:
            out.append(" ") if cell is None else out.append(*cell)
        out.append("\n")
    out.append(" " * (label_w - 1) + "└" + "─" * cols + "\n", style="dim")
    left, right = f"step {first:,}", f"{last:,}"
    out.append(" " * label_w + left + right.rjust(max(1, cols - len(left))) + "\n", style="dim")
    out.append(" " * label_w)
    out.append(VAL_MARK[0] + " val", style=VAL_MARK[1])
    out.append("  ")
    out.append(TRAIN_MARK[0] + " train", style=TRAIN_MARK[1])
    out.append("  ")
    best = f"{BEST_MARK[0]} best val {curve['best_val_bpc']:.3f} at step {curve['best_step']:,}"
    out.append(best, style=BEST_MARK[1])
    n = curve["evaluations"]
    out.append(f"  ({n:,} evaluation{'s' if n != 1 else ''} plotted, bits/char by step)", style="dim")
    return out


def info_renderables(info: dict, width: int) -> list[Text]:
    """What `textgen info` and /info print: the table, then the learning curve when the run has one."""
    parts = [Text(table(info))]
    if info["curve"] is not None:
        parts.append(curve_chart(info["curve"], width))
    return parts
