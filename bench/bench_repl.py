"""The REPL's numbers: start to prompt, Enter to first character, and streaming speed against raw generation.

Everything runs the real `textgen repl` in a pseudo-terminal (pexpect), as a user's terminal would:

- start to prompt: from spawning the process to the prompt being drawn (median of --runs);
- Enter to first character for a 100-character seed: the seed is typed first, then the time from Enter to
  the end of a one-character run (so an upper bound: it includes priming, the first character and the stats
  line);
- streaming: Enter to the stats line of a --chars run, against `Generator.stream` in this process on the same
  model with nothing printed (ratio; the target is ≥ 80%).

Targets: start ≤ 0.5 s, first character ≤ 50 ms, streaming ≥ 80% of raw (docs/record/benchmarks.md, The REPL).

    .venv/bin/python bench/bench_repl.py            # a 2×512 random-weights model it creates
    .venv/bin/python bench/bench_repl.py -c runs/book/model.safetensors --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pexpect  # noqa: E402
from conftest import Terminal, write_random_checkpoint  # noqa: E402

from repl.values import positive_int  # noqa: E402
from textgen_core.checkpoint import load  # noqa: E402
from textgen_core.generate import Generator  # noqa: E402
from textgen_core.sampling import SamplingSettings  # noqa: E402

SEED = ("the will to power is the will to life and the life of the spirit is a long question of truth " * 2)[:100]


def spawn(ckpt: Path, state: Path) -> tuple[Terminal, float]:
    """Start the REPL; returns the terminal and the seconds until the prompt was drawn."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", XDG_STATE_HOME=str(state))
    start = time.perf_counter()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "repl.cli", "repl", "-c", str(ckpt)],
        env=env,
        cwd=str(ROOT),
        encoding="utf-8",
        dimensions=(50, 160),
    )
    term = Terminal(child)
    term.wait_for("›", timeout=30)
    return term, time.perf_counter() - start


def start_to_prompt(ckpt: Path, state: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        term, seconds = spawn(ckpt, state)
        times.append(seconds)
        term.child.sendcontrol("d")
        term.child.expect(pexpect.EOF, timeout=10)
    return times


def enter_to_first_char(term: Terminal, runs: int) -> list[float]:
    term.command("/len 1", "length")
    times = []
    for _ in range(runs):
        term.child.send(SEED)
        term.wait_for(SEED[-20:])  # the prompt has the whole seed
        time.sleep(0.2)
        start = time.perf_counter()
        term.child.send("\r")
        term.wait_for("chars/s")
        times.append(time.perf_counter() - start)
    return times


def repl_run_rate(term: Terminal, chars: int) -> float:
    """One --chars run in the REPL, Enter to stats line, in chars/s."""
    time.sleep(0.2)
    start = time.perf_counter()
    term.child.send("the will\r")
    term.wait_for(f"{chars:,} chars ·", timeout=120)
    return chars / (time.perf_counter() - start)


def raw_run_rate(gen: Generator, chars: int, alternatives: int) -> float:
    """The same run with nothing printed: `Generator.stream` in this process."""
    gen.prime("the will")
    start = time.perf_counter()
    for _ in gen.stream(chars, alternatives=alternatives):
        pass
    return chars / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--checkpoint", type=Path, help="model to use (default: a 2×512 random one)")
    parser.add_argument("--runs", type=positive_int, default=5)
    parser.add_argument("--chars", type=positive_int, default=4000, help="characters per streaming run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or write_random_checkpoint(
            Path(tmp) / "bench-2x512.safetensors", hidden=512, layers=2, embed=64
        )
        state = Path(tmp) / "state"
        starts = start_to_prompt(ckpt, state, args.runs)
        term, _ = spawn(ckpt, state)
        firsts = enter_to_first_char(term, args.runs)
        term.command(f"/len {args.chars}", "length")
        gen = Generator.from_checkpoint(load(ckpt), settings=SamplingSettings(temperature=0.8))
        repl, raw, raw_alts = [], [], []
        for _ in range(args.runs):  # interleaved, so that a busy moment on a shared machine hits all three
            repl.append(repl_run_rate(term, args.chars))
            raw.append(raw_run_rate(gen, args.chars, alternatives=0))
            raw_alts.append(raw_run_rate(gen, args.chars, alternatives=5))
        term.child.sendcontrol("d")
    med = statistics.median
    print(f"model: {ckpt if args.checkpoint else '2×512 random weights'}; {args.runs} runs; medians")
    print(
        f"start to prompt           {med(starts) * 1000:7.0f} ms   (target ≤ 500; all: "
        f"{', '.join(f'{t * 1000:.0f}' for t in starts)})"
    )
    print(
        f"Enter to first character  {med(firsts) * 1000:7.1f} ms   (100-char seed; upper bound incl. stats "
        "line; target ≤ 50)"
    )
    print(f"raw generation            {med(raw):7.0f} chars/s (Generator.stream, no output)")
    print(f"raw + top-5 alternatives  {med(raw_alts):7.0f} chars/s (what the REPL asks for, for /alts)")
    print(
        f"REPL streaming to a pty   {med(repl):7.0f} chars/s = {med(repl) / med(raw):.0%} of raw (target ≥ 80%; "
        f"per run: {', '.join(f'{r / w:.0%}' for r, w in zip(repl, raw, strict=True))})"
    )


if __name__ == "__main__":
    main()
