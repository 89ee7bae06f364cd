"""Start-up against the floor: how much of `textgen sample --len 1` and of the REPL's first screen is textgen's own.

Three commands, run in turns (one of each per round, so a noisy neighbour slows all three alike), each timed from
spawning the process to its end (or, for the REPL, to its banner being drawn in a pseudo-terminal):

- **floor**: a bare python that imports numpy and safetensors (nothing of textgen's), reads the bundled model,
  widens it to float32 and runs one LSTM step and the softmax: the work a one-character sample cannot avoid;
- **sample**: ``textgen sample --prompt "The " --len 1`` on the bundled model;
- **banner**: ``textgen repl`` in a pseudo-terminal, until the banner's last part ("type /help") is on the screen.

It also counts the modules `textgen sample` imports. Medians of --runs rounds; the ratio is the medians', and
beside it the median of each round's own ratio (a neighbour's load moves it less).

    .venv/bin/python bench/bench_startup.py --runs 11
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from textgen_core.checkpoint import BUNDLED_NAME

ROOT = Path(__file__).resolve().parent.parent

#: The floor: what any program that samples one character from the bundled model must do (it imports nothing of
#: textgen's: the model's path is its argument).
FLOOR = """
import sys
import numpy as np
from safetensors.numpy import load_file
t = {k: v.astype(np.float32) for k, v in load_file(sys.argv[1]).items()}
x = t["embedding.weight"][0]
for k in range(2):
    h = np.zeros(t[f"lstm.weight_hh_l{k}"].shape[1], np.float32)
    z = t[f"lstm.weight_ih_l{k}"] @ x + t[f"lstm.weight_hh_l{k}"] @ h
    z += t[f"lstm.bias_ih_l{k}"] + t[f"lstm.bias_hh_l{k}"]
    i, f, g, o = np.split(z, 4)
    c = 1 / (1 + np.exp(-i)) * np.tanh(g)
    x = 1 / (1 + np.exp(-o)) * np.tanh(c)
logits = t["head.weight"] @ x + t["head.bias"]
p = np.exp(logits - logits.max())
print(int((p / p.sum()).argmax()))
"""

#: What `textgen sample --len 1` imports, counted in the process itself.
COUNT = """
import sys
from repl.cli import main
main(["sample", "--prompt", "The ", "--len", "1"])
print(len(sys.modules), file=sys.stderr)
"""


def textgen() -> list[str]:
    """The installed `textgen` console script beside this python, else the module."""
    script = Path(sys.executable).with_name("textgen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "repl.cli"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def banner(env: dict[str, str]) -> float:
    """Seconds from spawning `textgen repl` in a pseudo-terminal to its banner's last part on the screen."""
    start = time.perf_counter()
    child = pexpect.spawn(textgen()[0], [*textgen()[1:], "repl"], env=env, cwd=str(ROOT), dimensions=(40, 160))
    try:
        child.expect("type /help", timeout=30)
        return time.perf_counter() - start
    finally:
        child.terminate(force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="rounds (default 11)")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="textgen-startup-"))
    # PYTHONDONTWRITEBYTECODE dropped: the warm-up run writes the bytecode caches an installed package has, so
    # no round pays for compiling a module whose cache was stale.
    drop = ("NO_COLOR", "COLUMNS", "LINES", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(TERM="xterm-256color", XDG_STATE_HOME=str(state), PYTHONPATH=str(ROOT))
    counted = subprocess.run(
        [sys.executable, "-c", COUNT], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    modules = int(counted.stderr.strip().splitlines()[-1])
    sample = [*textgen(), "sample", "--prompt", "The ", "--len", "1"]
    floor = [sys.executable, "-c", FLOOR, str(ROOT / "textgen_core" / "models" / BUNDLED_NAME)]
    times: dict[str, list[float]] = {"floor": [], "sample": [], "banner": []}
    try:
        timed(floor, env)  # warm the page cache and the bytecode caches for all three
        timed(sample, env)
        banner(env)
        for _ in range(args.runs):
            times["floor"].append(timed(floor, env))
            times["sample"].append(timed(sample, env))
            times["banner"].append(banner(env))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.runs} rounds; medians (min–max):")
    for k, v in times.items():
        print(f"  {k:<7} {med[k]:.3f} s ({min(v):.3f}–{max(v):.3f})")
    # Each round's pair ran back to back, so its ratio is less moved by a neighbour's load than the medians are.
    paired = statistics.median(s / f for s, f in zip(times["sample"], times["floor"], strict=True))
    print(
        f"sample / floor: {med['sample'] / med['floor']:.2f}× (median of each round's ratio {paired:.2f}×)   "
        f"banner: {med['banner']:.3f} s"
    )
    print(f"modules imported by textgen sample --len 1: {modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
