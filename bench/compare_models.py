"""Cells and token kinds side by side: LSTM, GRU and plain RNN; characters, words and word pieces; each trained
for the same time budget on one corpus.

    python bench/compare_models.py run --corpus ../shared/corpora/nietzsche.txt [--minutes 10] [--runs lstm,gru,…]
    python bench/compare_models.py report --corpus ../shared/corpora/nietzsche.txt [--runs …]

`run` trains, with the same seed and `--minutes` budget, exactly as a user would:

1. `--cell lstm`, `--cell gru`, `--cell rnn`, each at the size `--size auto` gives it;
2. `--cell gru` and `--cell rnn` at the LSTM's parameter count: the LSTM's chosen layers, the hidden size whose
   parameter count is nearest the LSTM's, and the settings `--size auto` gave the LSTM's size (its dropout,
   learning rate, warm-up, weight decay), so that only the cell differs (the question "which cell is best for
   the same weights");
3. `--tokens word` and `--tokens bpe` (LSTM, default vocabulary sizes, `--size auto`): the character run is
   `lstm`.

Runs go two at a time, one per core (`taskset -c 0` and `-c 1`; textgen's thread count follows the affinity), so
every run has one core and the pairs finish together; an odd run out goes alone on core 0. `report` prints, per
run, the best validation bits/char, the steps, what auto chose, generation speed (tokens and characters per
second streaming 2,000 characters, one model at a time in this process, greedy), and samples at 0.2 / 0.5 / 1.0
/ 1.2 (seed 1). docs/record/cells-compared.md and docs/record/tokens-compared.md record the output. The budget
is wall-clock time: name the machine with it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textgen_core import checkpoint  # noqa: E402
from textgen_core.config import ModelConfig, option  # noqa: E402
from textgen_core.generate import Generator  # noqa: E402
from textgen_core.runfolder import read_metrics  # noqa: E402
from textgen_core.sampling import SamplingSettings  # noqa: E402
from textgen_core.training.sizing import CANDIDATES  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"
TEMPERATURES = ("0.2", "0.5", "1.0", "1.2")


def textgen() -> list[str]:
    script = Path(sys.executable).with_name("textgen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "repl.cli"]


def folder(args: argparse.Namespace, name: str) -> Path:
    return args.out / f"{Path(args.corpus).stem}-{args.minutes:g}min" / name


def train(args: argparse.Namespace, name: str, flags: list[str], core: int) -> subprocess.Popen:
    out = folder(args, name)
    if out.exists():
        shutil.rmtree(out)  # a run cut short earlier
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*textgen(), "train", str(args.corpus), "--out", str(out), "--minutes", f"{args.minutes:g}"]
    cmd += [*flags, "--seed", str(args.seed), "--sample-len", "0"]
    log = open(out.parent / f"{name}.log", "w")  # noqa: SIM115 (closed when the process is waited for)
    print(f"core {core}: {' '.join(cmd)}", flush=True)
    return subprocess.Popen(["taskset", "-c", str(core), *cmd], stdout=log, stderr=subprocess.STDOUT)


def pairs(jobs: list[tuple[str, list[str]]], args: argparse.Namespace) -> None:
    for i in range(0, len(jobs), 2):
        running = [train(args, *job, (args.core + k) % 2) for k, job in enumerate(jobs[i : i + 2])]
        for p in running:
            p.wait()


def equal_hidden(lstm: ModelConfig, cell: str) -> int:
    """The hidden size at which `cell`, with the LSTM's layers, embedding and vocabulary, has the parameter count
    nearest the LSTM's."""
    base = lstm.to_dict() | {"cell": cell}
    return min(
        range(16, 4 * lstm.hidden_size),
        key=lambda h: abs(ModelConfig(**base | {"hidden_size": h}).num_params() - lstm.num_params()),
    )


def equal_flags(args: argparse.Namespace, cell: str) -> list[str]:
    """The flags of the run of `cell` at the LSTM's parameter count: its layers and nearest hidden size, and the
    settings of the `--size auto` candidate the LSTM trained (`sizing.CANDIDATES`)."""
    lstm = checkpoint.load(folder(args, "lstm")).config
    chosen = next(c for c in CANDIDATES if (c.num_layers, c.hidden_size) == (lstm.num_layers, lstm.hidden_size))
    flags = ["--num-layers", str(lstm.num_layers), "--hidden-size", str(equal_hidden(lstm, cell))]
    for name, value in chosen.settings().items():
        if name not in ("num_layers", "hidden_size"):
            flags += [option(name), f"{value:g}"]
    return flags


#: Every run: its name and flags; the equal-parameter runs need the LSTM's first.
RUNS = {
    "lstm": ["--cell", "lstm"],
    "gru": ["--cell", "gru"],
    "rnn": ["--cell", "rnn"],
    "gru-equal": ["--cell", "gru"],
    "rnn-equal": ["--cell", "rnn"],
    "word": ["--tokens", "word"],
    "bpe": ["--tokens", "bpe"],
}
#: What `run` and `report` take without --runs: the cells' comparison (the token kinds are asked for by name).
CELL_RUNS = ("lstm", "gru", "rnn", "gru-equal", "rnn-equal")


def names(args: argparse.Namespace) -> list[str]:
    return args.runs.split(",") if args.runs else list(CELL_RUNS)


def run(args: argparse.Namespace) -> None:
    jobs = [
        (name, RUNS[name] + (equal_flags(args, RUNS[name][1]) if name.endswith("-equal") else ["--size", "auto"]))
        for name in names(args)
    ]
    pairs(jobs, args)


def speed(ckpt: checkpoint.Checkpoint, n: int = 2000) -> tuple[float, float]:
    """Tokens and characters per second streaming `n` characters, greedy."""
    gen = Generator.from_checkpoint(ckpt, settings=SamplingSettings(temperature=0.0), seed=1)
    gen.prime("The")
    start = time.perf_counter()
    tokens = chars = 0
    for token in gen.stream(n):
        tokens, chars = tokens + 1, chars + len(token.char)
    took = time.perf_counter() - start
    return tokens / took, chars / took


def report(args: argparse.Namespace) -> None:
    rows = []
    for name in names(args):
        out = folder(args, name)
        if not (out / checkpoint.WEIGHTS_NAME).exists():
            print(f"{name}: no model (not run yet?)")
            continue
        ckpt = checkpoint.load(out)
        curve = read_metrics(out)
        log = (out.parent / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        chose = next((line.strip() for line in log.splitlines() if "--size auto:" in line), "—")
        tokens_per_s, chars_per_s = speed(ckpt)
        rows.append(
            {
                "run": name,
                "model": ckpt.config.describe(),
                "params": ckpt.config.num_params(),
                "best_val_bpc": ckpt.meta.val_bpc,
                "best_step": ckpt.meta.step,
                "steps": curve.steps[-1] if curve is not None and curve.steps else ckpt.meta.step,
                "vocab": ckpt.vocab.describe(),
                "tokens_per_s": round(tokens_per_s),
                "chars_per_s": round(chars_per_s),
                "auto": chose,
            }
        )
        samples = subprocess.run(
            [
                *textgen(),
                "sample",
                "-c",
                str(out),
                "--prompt",
                "The",
                "--len",
                "160",
                "--seed",
                "1",
                "--temp",
                *TEMPERATURES,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        print(f"\n### {name}: {ckpt.config.describe()}\n\n```\n{samples.rstrip()}\n```")
    print()
    print("| run | model | vocabulary | params | best val bpc | at step | steps | generation tokens/s | chars/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['model']} | {r['vocab']} | {r['params']:,} | {r['best_val_bpc']:.4f} | "
            f"{r['best_step']:,} | {r['steps']:,} | {r['tokens_per_s']:,} | {r['chars_per_s']:,} |"
        )
    print()
    for r in rows:
        print(f"{r['run']}: {r['auto']}")
    print(json.dumps(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compared")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--core", type=int, default=0, help="the core of a round's first run (default 0)")
    parser.add_argument(
        "--runs", help=f"comma-separated, of {', '.join(RUNS)} (default {','.join(CELL_RUNS)}; two at a time)"
    )
    args = parser.parse_args()
    run(args) if args.action == "run" else report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
