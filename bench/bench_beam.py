"""How often a beam finds a continuation at least as likely as greedy decoding, and how fast it runs.

    .venv/bin/python bench/bench_beam.py                      # bundled model, 200 Nietzsche prompts, ~2 CPU-min
    .venv/bin/python bench/bench_beam.py -c RUN --corpus FILE --prompts 100 --length 80

Prompts are `--prompt-len` characters cut from the corpus at evenly spaced offsets, each starting after a space
so a prompt begins with a word. For each prompt greedy decoding (width 1) and beams of each width continue it
for `--length` characters; a beam "holds" when its total bits are ≤ greedy's. A beam is not an exact search,
so it can lose to greedy: a path that looked worse early is dropped before it pays off.
chars/s counts the characters of the result (not W times that), so it compares with sampling's speed directly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS thread unless told otherwise: a step's products are small, and on cores shared with other work BLAS
# threads that spin-wait for each other slow them down several times, which would be measured instead of the beam.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core import checkpoint  # noqa: E402
from textgen_core.beam import BeamSearch  # noqa: E402
from textgen_core.generate import Generator  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"


def prompts(text: str, count: int, length: int) -> list[str]:
    """`count` prompts of `length` characters at evenly spaced offsets, each moved to just after a space."""
    out = []
    for start in np.linspace(0, len(text) - 2 * length - 1, count).astype(int):
        at = text.find(" ", start) + 1
        out.append(text[at : at + length])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--prompt-len", type=int, default=40)
    parser.add_argument("--length", type=int, default=30, help="continuation length")
    parser.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()

    ckpt = checkpoint.load(args.checkpoint)
    gen = Generator.from_checkpoint(ckpt)
    text = args.corpus.read_text(encoding="utf-8", errors="replace")
    widths = [1, *args.widths]
    bits = {w: [] for w in widths}
    seconds = dict.fromkeys(widths, 0.0)
    for prompt in prompts(text, args.prompts, args.prompt_len):
        gen.prime(prompt)
        start = gen.get_state()
        for w in widths:
            t0 = time.perf_counter()
            result = BeamSearch(gen.model, gen.vocab, start, w, args.length).run()
            seconds[w] += time.perf_counter() - t0
            bits[w].append(result.total_bits)

    greedy = np.array(bits[1])
    n = len(greedy)
    print(f"{ckpt.name} ({ckpt.config.num_layers}×{ckpt.config.hidden_size}), {n} prompts of {args.prompt_len} chars")
    print(f"from {args.corpus.name}, continuations of {args.length} chars; bits are totals under the model (T=1)\n")
    print(
        f"{'width':>5} {'≥ greedy':>9} {'better':>7} {'worse':>6} {'mean bits':>10} {'Δ vs greedy':>12} {'chars/s':>8}"
    )
    for w in widths:
        b = np.array(bits[w])
        holds, better, worse = (b <= greedy + 1e-9).mean(), (b < greedy - 1e-9).mean(), (b > greedy + 1e-9).mean()
        rate = n * args.length / seconds[w]
        print(
            f"{w:>5} {holds:>9.1%} {better:>7.1%} {worse:>6.1%} {b.mean():>10.2f} {(b - greedy).mean():>+12.2f}"
            f" {rate:>8.0f}"
        )


if __name__ == "__main__":
    main()
