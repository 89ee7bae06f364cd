"""Which cells of the bundled model follow each built-in feature over the Nietzsche validation tenth, and what
watching one cell costs while streaming.

    .venv/bin/python bench/bench_cells.py                      # run it on an idle machine
    .venv/bin/python bench/bench_cells.py --one-stream-check   # also runs the text in one exact stream (slow)
    .venv/bin/python bench/bench_cells.py --stream-only        # only what watching a cell costs (no corpus)

The validation tenth is the last 10% of the corpus (`corpus.val_start`), the part the model never trained on.
It is run as `cells.trace_cells` runs any text (parallel streams, burn-in: see textgen_core/cells.py), with the cap
lifted so the whole tenth counts. The streaming part times `Generator.stream` alone and with a `CellTracker` read
after every character, then a whole REPL run (`Session`, printing into a colour console) coloured by probability
and by a cell, each pair alternating so that a busy machine slows both alike; medians are reported. On a
machine shared with other work the difference of two speeds is noise, so the cost of one read is also timed
against one model step in two tight loops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core.cells import BURN_IN, FEATURES, STREAMS, CellTracker, rank_cells, trace_cells  # noqa: E402
from textgen_core.checkpoint import load  # noqa: E402
from textgen_core.config import DEFAULT_VAL_FRACTION  # noqa: E402
from textgen_core.corpus import val_start  # noqa: E402
from textgen_core.generate import Generator  # noqa: E402
from textgen_core.inference import NumpyLSTM  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"
#: The bar: a cell view may cost at most this fraction of the normal streaming speed (docs/record/cells.md).
MAX_COST = 0.10


def feature_table(trace, top: int) -> None:
    print(f"| feature | best cells (layer:index r) over {trace.chars:,} characters |")
    print("|---|---|")
    for name in FEATURES:
        try:
            ranking = rank_cells(trace, FEATURES[name].compute(trace.text), name=name, top=top)
        except Exception as e:  # a feature absent from the text: say so in the table
            print(f"| {name} | {e} |")
            continue
        print(f"| {name} | " + ", ".join(f"{c.label} {c.r:+.3f}" for c in ranking.cells) + " |")


def stream_speed(ckpt, chars: int, repeats: int) -> tuple[float, float]:
    """Median chars/s of `Generator.stream` without and with reading one cell after every character."""
    gen = Generator.from_checkpoint(ckpt, seed=0)
    tracker = CellTracker(gen.model, gen.model.layers - 1, 0)

    def plain() -> float:
        gen.reset()
        t = time.perf_counter()
        for _ in gen.stream(chars):
            pass
        return chars / (time.perf_counter() - t)

    def watched() -> float:
        gen.reset()
        values = []
        t = time.perf_counter()
        for _ in gen.stream(chars):  # as the REPL reads it: the live state, no copy
            values.append(tracker.value(gen.lstm_state))
        return chars / (time.perf_counter() - t)

    plain(), watched()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(plain())
        b.append(watched())
    return statistics.median(a), statistics.median(b)


def session_speed(ckpt, chars: int, repeats: int) -> tuple[float, float]:
    """Median chars/s of a whole REPL run (`Session._run`: sampling, alternatives, colouring, printing into a
    colour console) coloured by probability and by cell `layers-1:0`, alternating the two."""
    import io

    from repl.commands import REGISTRY
    from repl.render import make_console
    from repl.session import Session
    from textgen_core.sampling import SamplingSettings

    session = Session(
        ckpt,
        make_console(io.StringIO(), color=True),
        settings=SamplingSettings(),
        length=chars,
        seed=0,
        dispatch=REGISTRY.dispatch,
    )
    session.submit(f"/cell {session.generator.model.layers - 1}:0")

    def run(colour: str) -> float:
        session.color = colour
        session.console.file = io.StringIO()
        t = time.perf_counter()
        session.submit("the ")
        return chars / (time.perf_counter() - t)

    run("prob"), run("cell")  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(run("prob"))
        b.append(run("cell"))
    return statistics.median(a), statistics.median(b)


def tracker_cost(ckpt, calls: int = 20_000) -> tuple[float, float]:
    """Seconds per `CellTracker.value` call and per plain `NumpyLSTM.step`: on a busy machine the ratio of these
    two short loops is steadier than the difference of two streaming speeds."""
    model = NumpyLSTM.from_checkpoint(ckpt)
    state = model.initial_state(1)
    tracker = CellTracker(model, model.layers - 1, 0)
    ids = np.zeros(1, np.int64)
    t = time.perf_counter()
    for _ in range(calls):
        tracker.value(state)
    read = (time.perf_counter() - t) / calls
    t = time.perf_counter()
    for _ in range(calls // 20):
        model.step(ids, state)
    step = (time.perf_counter() - t) / (calls // 20)
    return read, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--stream-chars", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--one-stream-check", action="store_true", help="compare with the text run in one stream")
    ap.add_argument("--stream-only", action="store_true", help="only the streaming cost (no corpus needed)")
    args = ap.parse_args()

    ckpt = load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    if not args.stream_only:
        features(args, ckpt, model)
    plain, watched = stream_speed(ckpt, args.stream_chars, args.repeats)
    cost = 1 - watched / plain
    verdict = "within" if cost <= MAX_COST else "OVER"
    print(
        f"streaming: {plain:,.0f} chars/s plain, {watched:,.0f} chars/s watching one cell: cost {cost:+.1%} "
        f"({verdict} the {MAX_COST:.0%} bar; median of {args.repeats} × {args.stream_chars} chars)"
    )
    plain, watched = session_speed(ckpt, args.stream_chars, args.repeats)
    cost = 1 - watched / plain
    verdict = "within" if cost <= MAX_COST else "OVER"
    print(
        f"REPL run: {plain:,.0f} chars/s coloured by probability, {watched:,.0f} chars/s by a cell: cost {cost:+.1%} "
        f"({verdict} the {MAX_COST:.0%} bar; median of {args.repeats} × {args.stream_chars} chars)"
    )
    read, step = tracker_cost(ckpt)
    print(f"one cell read: {read * 1e6:.2f} µs against {step * 1e6:.0f} µs per model step: {read / step:.2%}")


def features(args: argparse.Namespace, ckpt, model: NumpyLSTM) -> None:
    """The best cells per built-in feature over the validation tenth (and, if asked, the one-stream check)."""
    text = args.corpus.read_text(encoding="utf-8")
    val = text[val_start(len(text), DEFAULT_VAL_FRACTION) :]
    print(f"bundled model {model.layers}×{model.hidden}; validation tenth of {args.corpus.name}: {len(val):,} chars")

    t = time.perf_counter()
    trace = trace_cells(model, ckpt.vocab, val, lowercase=ckpt.meta.lowercase, max_chars=len(val))
    dt = time.perf_counter() - t
    print(f"trace: {STREAMS} streams, burn-in {BURN_IN}: {dt:.1f} s, {trace.chars / dt:,.0f} chars/s")
    feature_table(trace, args.top)

    if args.one_stream_check:
        t = time.perf_counter()
        exact = trace_cells(model, ckpt.vocab, val, lowercase=ckpt.meta.lowercase, max_chars=len(val), streams=1)
        dt = time.perf_counter() - t
        diff = np.abs(exact.values - trace.values)
        print(
            f"one stream: {dt:.1f} s, {exact.chars / dt:,.0f} chars/s; |difference| max {diff.max():.3f}, "
            f"mean {diff.mean():.2e}, share of values off by > 0.01: {(diff > 0.01).mean():.2e}"
        )
        feature_table(exact, args.top)


if __name__ == "__main__":
    main()
