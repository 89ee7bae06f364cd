"""Scoring speed and accuracy: parallel streams against the exact sequential pass, on the same text in one run.

    python bench/bench_score.py [--corpus PATH] [--chars 100000] [--streams 32,64,128] [--burn-in 100,250,500]
                                [--repeats 3]

Scores the last `--chars` characters of the corpus (default: Nietzsche from the benchmark corpora, see
docs/README.md) with the bundled model, with `exact=True` and once per (streams, burn-in) pair, `--repeats` rounds
in turn (so that a shared machine's drift falls on every variant alike), and prints the median chars/s, the
speed-up over exact's median and the bits/char difference. docs/benchmarks.md records its output.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from textgen_core import checkpoint, generate
from textgen_core.inference import NumpyLSTM

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "nietzsche.txt"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--streams", type=ints, default=[generate.SCORE_STREAMS])
    ap.add_argument("--burn-in", type=ints, default=[generate.SCORE_BURN_IN])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    ckpt = checkpoint.load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    text = args.corpus.read_text(encoding="utf-8")[-args.chars :]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    size = f"{ckpt.config.num_layers}×{ckpt.config.hidden_size}"
    print(f"bundled model {size}; {len(text):,} chars of {args.corpus.name}")

    variants = [(s, b) for s in args.streams for b in args.burn_in]
    times: dict[tuple[int, int] | None, list[float]] = {v: [] for v in [None, *variants]}
    bpc: dict[tuple[int, int] | None, float] = {}
    saved = generate.SCORE_STREAMS, generate.SCORE_BURN_IN
    try:
        for _ in range(args.repeats):
            for v in times:
                if v is not None:
                    generate.SCORE_STREAMS, generate.SCORE_BURN_IN = v
                t = time.perf_counter()
                result = generate.score(model, ckpt.vocab, text, ckpt.meta.lowercase, exact=v is None)
                times[v].append(time.perf_counter() - t)
                bpc[v] = result.bpc
    finally:
        generate.SCORE_STREAMS, generate.SCORE_BURN_IN = saved
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


if __name__ == "__main__":
    main()
