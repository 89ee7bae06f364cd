"""Scoring speed and accuracy: parallel streams against the exact sequential pass, on the same text in one run.

    python bench/bench_score.py [--corpus PATH] [--chars 100000] [--streams 32,64,128] [--burn-in 100,250,500]
                                [--repeats 3]
    python bench/bench_score.py --boundaries [--corpus PATH] [--chars 60090] [--burn-in 50,100]
    python bench/bench_score.py --short 24 [--corpus PATH] [--chars 60090]

Scores the last `--chars` characters of the corpus (default: Nietzsche from the benchmark corpora, see
docs/record/README.md) with the bundled model, with `exact=True` and once per (streams, burn-in) pair, `--repeats`
rounds in turn (so that a shared machine's drift falls on every variant alike), and prints the median chars/s, the
speed-up over exact's median and the bits/char difference. docs/record/benchmarks.md records its output.

`--boundaries` measures what `scoring.score_streams` is built on: the error each part boundary leaves, in bits
summed over the part (parallel minus exact), over the 563 boundaries of 60, 77, 91, 101, 113 and 127 streams, for each
`--burn-in`; it prints their mean, standard deviation and largest.

`--short N` checks the tolerance where it is hardest to keep, on short texts (few parts, so each part boundary's
error weighs more): N windows of 3,500 to 40,000 characters (log-uniform, fixed seed) from the last `--chars`
characters, each scored exactly and with the defaults (`score_streams` picks the streams), and prints each
difference, the largest and the r.m.s.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from textgen_core import checkpoint, scoring
from textgen_core.inference import NumpyLSTM

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "nietzsche.txt"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--streams", type=ints, default=[scoring.SCORE_STREAMS])
    ap.add_argument("--burn-in", type=ints, default=[scoring.SCORE_BURN_IN])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--boundaries", action="store_true", help="measure each part boundary's error (see above)")
    ap.add_argument("--short", type=int, metavar="N", help="check N short texts instead (see above)")
    args = ap.parse_args()
    ckpt = checkpoint.load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    text = args.corpus.read_text(encoding="utf-8")[-args.chars :]
    if args.boundaries:
        boundaries(model, ckpt, text, args.burn_in)
        return
    if args.short:
        short_texts(model, ckpt, text, args.short)
        return

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    size = f"{ckpt.config.num_layers}×{ckpt.config.hidden_size}"
    print(f"bundled model {size}; {len(text):,} chars of {args.corpus.name}")

    variants = [(s, b) for s in args.streams for b in args.burn_in]
    times: dict[tuple[int, int] | None, list[float]] = {v: [] for v in [None, *variants]}
    bpc: dict[tuple[int, int] | None, float] = {}
    saved = scoring.SCORE_STREAMS, scoring.SCORE_BURN_IN
    try:
        for _ in range(args.repeats):
            for v in times:
                if v is not None:
                    scoring.SCORE_STREAMS, scoring.SCORE_BURN_IN = v
                t = time.perf_counter()
                result = scoring.score(model, ckpt.vocab, text, ckpt.meta.lowercase, exact=v is None)
                times[v].append(time.perf_counter() - t)
                bpc[v] = result.bpc
    finally:
        scoring.SCORE_STREAMS, scoring.SCORE_BURN_IN = saved
    n = len(text)
    t_exact = float(np.median(times[None]))
    print(f"exact: {bpc[None]:.5f} bits/char, {n / t_exact:,.0f} chars/s (median of {args.repeats}: {t_exact:.1f} s)")
    for v in variants:
        dt = float(np.median(times[v]))
        print(
            f"streams {v[0]:4d} burn-in {v[1]:5d}: {bpc[v]:.5f} bits/char (diff {bpc[v] - bpc[None]:+.5f}),"
            f" {n / dt:,.0f} chars/s, {t_exact / dt:.1f}× exact (each round: "
            + ", ".join(f"{e / d:.1f}×" for e, d in zip(times[None], times[v], strict=True))
            + ")"
        )


def boundaries(model: NumpyLSTM, ckpt: checkpoint.Checkpoint, text: str, burn_ins: list[int]) -> None:
    enc, inputs = scoring._score_inputs(model, ckpt.vocab, text, ckpt.meta.lowercase)
    exact = scoring._score_sequential(model, inputs, enc.ids, None)
    n = len(exact)
    for burn_in in burn_ins:
        errors = []
        for streams in (60, 77, 91, 101, 113, 127):
            fast = scoring._score_parallel(model, inputs, enc.ids, streams, burn_in, None)
            bounds = np.linspace(0, n, streams + 1).astype(np.int64)
            extra = (exact - fast) / np.log(2)  # bits the parallel pass spends beyond the exact one
            errors += [extra[bounds[i] : bounds[i + 1]].sum() for i in range(1, streams)]
        e = np.array(errors)
        print(
            f"burn-in {burn_in}: {len(e)} boundaries, error per boundary mean {e.mean():+.3f} bits,"
            f" standard deviation {e.std():.3f}, largest |error| {np.abs(e).max():.3f}"
        )


def short_texts(model: NumpyLSTM, ckpt: checkpoint.Checkpoint, text: str, count: int) -> None:
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(count):
        n = int(np.exp(rng.uniform(np.log(3_500), np.log(40_000))))
        start = int(rng.integers(0, len(text) - n))
        window = text[start : start + n]
        exact = scoring.score(model, ckpt.vocab, window, ckpt.meta.lowercase, exact=True).bpc
        fast = scoring.score(model, ckpt.vocab, window, ckpt.meta.lowercase).bpc
        diffs.append(fast - exact)
        print(f"{n:7,d} chars, {scoring.score_streams(n):3d} streams: diff {fast - exact:+.5f}", flush=True)
    d = np.abs(diffs)
    print(f"{count} texts: largest |diff| {d.max():.5f}, r.m.s. {np.sqrt(np.mean(d**2)):.5f} bits/char")


if __name__ == "__main__":
    main()
