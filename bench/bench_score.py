"""Scoring speed and accuracy: parallel streams against the exact sequential pass, on the same text in one run.

    python bench/bench_score.py [--corpus PATH] [--chars 100000] [--streams 32,64,128] [--burn-in 100,250,500]

Scores the last `--chars` characters of the corpus (default: Nietzsche from the benchmark corpora, see
docs/README.md) with the bundled model, once with `exact=True` and once per (streams, burn-in) pair, and prints
chars/s, the speed-up over exact and the bits/char difference. docs/benchmarks.md records its output.
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
    args = ap.parse_args()

    ckpt = checkpoint.load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    text = args.corpus.read_text(encoding="utf-8")[-args.chars :]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    size = f"{ckpt.config.num_layers}×{ckpt.config.hidden_size}"
    print(f"bundled model {size}; {len(text):,} chars of {args.corpus.name}")

    t = time.perf_counter()
    exact = generate.score(model, ckpt.vocab, text, ckpt.meta.lowercase, exact=True)
    t_exact = time.perf_counter() - t
    print(f"exact: {exact.bpc:.5f} bits/char, {exact.chars / t_exact:,.0f} chars/s ({t_exact:.1f} s)")
    saved = generate.SCORE_STREAMS, generate.SCORE_BURN_IN
    for streams in args.streams:
        for burn in args.burn_in:
            generate.SCORE_STREAMS, generate.SCORE_BURN_IN = streams, burn
            t = time.perf_counter()
            fast = generate.score(model, ckpt.vocab, text, ckpt.meta.lowercase)
            dt = time.perf_counter() - t
            print(
                f"streams {streams:4d} burn-in {burn:5d}: {fast.bpc:.5f} bits/char (diff {fast.bpc - exact.bpc:+.5f}),"
                f" {fast.chars / dt:,.0f} chars/s, {t_exact / dt:.1f}× exact"
            )
    generate.SCORE_STREAMS, generate.SCORE_BURN_IN = saved


if __name__ == "__main__":
    main()
