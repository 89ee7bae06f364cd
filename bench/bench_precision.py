"""`--precision auto` on this CPU: the step times it compares, what its decision costs, and the cache hit.

    .venv/bin/python bench/bench_precision.py steps      # fp32 and bf16 step of every --size auto candidate (~1 min)
    .venv/bin/python bench/bench_precision.py decision   # the set-up of `textgen train CORPUS --minutes 10`, cold
                                                         # cache then warm, with --size auto and with --size fixed

`steps` times each candidate in both precisions with the timer the run uses (`calibrate.time_steps`: one untimed
step of each, then two rounds of one step of each; the median), `--repeats` times, and prints the medians, bf16's
speed as a multiple of fp32's and what `precision.choose` makes of them at each size. `decision` builds the run as
`textgen train` does (every timing, no training) in a fresh cache folder, then again with that cache, `--runs`
times each, and prints the medians of the seconds the timing took out of the budget: the difference is what the
precision decision costs.
Results are in docs/record/README.md (machine classes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.values import positive_float, positive_int  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"


def cmd_steps(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from textgen_core.corpus import load_corpus
    from textgen_core.training.calibrate import time_steps
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.hardware import cpu_name, cpu_threads
    from textgen_core.training.precision import PRECISIONS, choose
    from textgen_core.training.sizing import CANDIDATES

    torch.set_num_threads(cpu_threads())
    corpus = load_corpus([str(args.corpus)])
    base = TrainConfig([str(args.corpus)], "")
    timer = time_steps(base, len(corpus.vocab), corpus.tokens, torch.device("cpu"))
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {torch.get_num_threads()} threads; batch 32×128")
    print(f"{'candidate':>10}  {'fp32 s/step':>11}  {'bf16 s/step':>11}  bf16 speed  auto")
    for c in CANDIDATES:
        config = replace(base, **c.settings())
        runs = [timer(config, PRECISIONS) for _ in range(args.repeats)]  # each the precisions' steps interleaved
        seconds = {p: statistics.median(statistics.median(r[p]) for r in runs) for p in PRECISIONS}
        speed = seconds["fp32"] / seconds["bf16"]
        print(f"{c.label:>10}  {seconds['fp32']:11.3f}  {seconds['bf16']:11.3f}  {speed:9.2f}×  {choose(seconds)}")
    return 0


def setup(corpus: Path, work: Path, size: str | None, minutes: float) -> tuple[float, str, str]:
    """Build the run of `textgen train CORPUS --minutes M` (with `size`) and return the seconds all its timing took
    out of the budget, and the lines it says."""
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer
    from textgen_core.training.prepare import Fitted

    out = Path(tempfile.mkdtemp(dir=work))
    t = Trainer(TrainConfig([str(corpus)], str(out), size=size, minutes=minutes, sample_len=0))
    if t.precision_choice is None:
        raise SystemExit(f"--precision auto was not timed here (trains {t.precision}): nothing to measure")
    lines = Fitted(t.config, t.precision, t.size_choice, t.precision_choice, t.calibration_s).lines()
    return t.calibration_s, " / ".join(lines), t.precision


def cmd_decision(args: argparse.Namespace) -> int:
    """Each run in a fresh cache folder, then again with it: with --size auto the difference is what timing the
    second precision costs; with a fixed size the first is the decision and the second the cache hit."""
    for size in ("auto", None):
        cold, warm = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as work:
                os.environ["XDG_CACHE_HOME"] = str(Path(work) / "cache")
                for kept, name in ((cold, "cold"), (warm, "warm")):
                    seconds, lines, _ = setup(args.corpus, Path(work), size, args.minutes)
                    kept.append(seconds)
                    print(f"  {name}: {lines}", flush=True)
        what = "--size auto" if size else "--size fixed (2×640)"
        c, w = statistics.median(cold), statistics.median(warm)
        print(
            f"{what}: the timing took {c:.2f} s with an empty cache and {w:.3f} s with the cache: the precision "
            f"decision cost {c - w:.2f} s (medians of {args.runs})",
            flush=True,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("steps", help="fp32 and bf16 step time of every --size auto candidate")
    st.add_argument("--repeats", type=positive_int, default=3)
    st.set_defaults(func=cmd_steps)
    de = sub.add_parser("decision", help="what the decision costs, with an empty cache and with the cache")
    de.add_argument("--runs", type=positive_int, default=3)
    de.add_argument("--minutes", type=positive_float, default=10.0)
    de.set_defaults(func=cmd_decision)
    for q in (st, de):
        q.add_argument("--corpus", type=Path, default=CORPUS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
