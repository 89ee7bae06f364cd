"""How much of a long seed priming needs: the next-character distribution after the last K characters against
the one after a much longer reference tail, at many end positions of a real text at once.

    python bench/bench_prime.py [--corpus PATH] [--positions 32] [--reference 20000] [--tails 500,1000,2000,5000,10000]

With the bundled model, for `--positions` end positions spread evenly over the corpus (lower-cased, as the model
was trained), feeds the last `--reference` characters before each position and, separately, the last K for each
tail, each from a zero state as `Generator.prime` does, and compares the distributions of the character that
follows: max |Δp| over the vocabulary and KL(reference ‖ tail) in bits, median and max over the positions.

All positions and tails advance together as parallel streams of one batched `NumpyLSTM.step` (a single stream
per position would be several times slower): the reference streams start first and each tail's streams join
when the reference has K characters left. Then it times `Generator.prime` (characters per second).
docs/record/long-seeds.md records its output and the tolerance `PRIME_TAIL` is chosen against.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from textgen_core import checkpoint
from textgen_core.generate import Generator
from textgen_core.inference import NumpyLSTM

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "nietzsche.txt"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def softmax64(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def final_logits(model: NumpyLSTM, ids: np.ndarray, ends: np.ndarray, lengths: list[int]) -> dict[int, np.ndarray]:
    """For each length L in `lengths`, the logits (P, V) after feeding ids[end-L:end] from a zero state, for every
    end in `ends`: one batched pass of max(lengths) steps, the streams of a length joining when L steps are left."""
    longest = max(lengths)
    order = sorted(lengths, reverse=True)
    state = model.initial_state(0)
    joined: list[int] = []
    logits = np.empty((0, model.vocab_size), np.float32)
    for t in range(longest):
        left = longest - t
        while len(joined) < len(order) and order[len(joined)] == left:
            fresh = model.initial_state(len(ends))
            state.h = np.concatenate([state.h, fresh.h], axis=1)
            state.c = np.concatenate([state.c, fresh.c], axis=1)
            joined.append(left)
        pos = ends - left  # the same character for every stream of a position: they differ only in when they began
        logits, _ = model.step(np.tile(ids[pos], len(joined)), state)
    p = len(ends)
    return {length: logits[i * p : (i + 1) * p] for i, length in enumerate(joined)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--positions", type=int, default=32)
    ap.add_argument("--reference", type=int, default=20_000)
    ap.add_argument("--tails", type=ints, default=[500, 1_000, 2_000, 5_000, 10_000])
    ap.add_argument("--rate-chars", type=int, default=4_000, help="seed length priming speed is timed on")
    args = ap.parse_args()

    ckpt = checkpoint.load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    text = args.corpus.read_text(encoding="utf-8").lower()
    ids = ckpt.vocab.encode(text).ids
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    size = f"{ckpt.config.num_layers}×{ckpt.config.hidden_size}"
    print(
        f"bundled model {size}; {args.positions} end positions in {args.corpus.name} ({len(ids):,} known chars); "
        f"reference: the last {args.reference:,} characters"
    )
    ends = np.linspace(args.reference, len(ids), args.positions).astype(np.int64)

    t = time.perf_counter()
    out = final_logits(model, ids, ends, [args.reference, *args.tails])
    print(f"batched pass: {time.perf_counter() - t:.0f} s")
    ref = softmax64(out[args.reference])
    print(f"{'tail K':>8} | {'max |Δp| median':>15} {'max':>9} | {'KL bits median':>14} {'max':>9}")
    for k in args.tails:
        p = softmax64(out[k])
        dp = np.abs(p - ref).max(axis=1)
        kl = (ref * (np.log2(np.maximum(ref, 1e-300)) - np.log2(np.maximum(p, 1e-300)))).sum(axis=1)
        print(f"{k:>8,} | {np.median(dp):15.2e} {dp.max():9.2e} | {np.median(kl):14.2e} {kl.max():9.2e}")

    # Priming is linear in the characters fed: time one seed and give the rate.
    seed = text[len(text) - args.rate_chars :]
    t = time.perf_counter()
    Generator.from_checkpoint(ckpt).prime(seed)
    rate = args.rate_chars / (time.perf_counter() - t)
    each = ", ".join(f"{k:,}: {k / rate:.1f} s" for k in [*args.tails, args.reference])
    print(f"Generator.prime: {rate:,.0f} chars/s ({each})")


if __name__ == "__main__":
    main()
