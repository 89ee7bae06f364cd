"""The sweep behind `--size auto`'s rule: every candidate size trained for equal time on each corpus.

    python bench/sweep_size.py run [--corpora ../shared/corpora] [--out runs/sizes] [--seconds 60,240]
                                   [--corpus nietzsche.txt,tinyshakespeare.txt] [--only 1x512,2x384]
    python bench/sweep_size.py report [--out runs/sizes]

`run` first times a training step of every candidate on this machine (`calibrate.time_steps`, in the precision
`textgen train` would train it in here, the best of three; saved in OUT/timings.json and reused, so an interrupted
sweep goes on with the same numbers), then trains each
(corpus, candidate, level) with `textgen train … --steps N` and the candidate's own settings
(`textgen_core/training/sizing.py`), N being the steps the candidate takes in that many seconds here. Runs already
finished are skipped. Fixing steps rather than minutes makes each result independent of the machine's load while
the sweep runs; the timings say which step counts are worth the same time. `report` prints, per corpus and level,
each candidate's steps and best validation bits/char (docs/record/sizing.md records the output).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textgen_core.runfolder import read_metrics  # noqa: E402
from textgen_core.training.sizing import CANDIDATES, Candidate  # noqa: E402

DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def folder(out: Path, corpus: str, cand: Candidate, steps: int) -> Path:
    return out / Path(corpus).stem / f"{cand.num_layers}x{cand.hidden_size}-{steps}"


def flags(cand: Candidate) -> list[str]:
    return [x for f, v in cand.settings().items() for x in (f"--{f.replace('_', '-')}", f"{v:g}")]


def best_val(run: Path, steps: int) -> float | None:
    """The run's best validation bits/char, once it has evaluated at its last step."""
    curve = read_metrics(run)
    if curve is None or curve.steps[-1] < steps:
        return None
    return curve.best_val_bpc


def timings(args: argparse.Namespace) -> dict[str, float]:
    """Seconds per step of each candidate here, measured once per sweep folder."""
    path = args.out / "timings.json"
    if path.exists():
        return json.loads(path.read_text())
    from dataclasses import replace

    import torch

    from textgen_core.corpus import load_corpus
    from textgen_core.training.calibrate import median_step, time_steps
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.hardware import pick_precision
    from textgen_core.training.prepare import choose_precision

    corpus = load_corpus([str(args.corpora / args.corpus.split(",")[0])])
    device = torch.device("cpu")
    default, n = TrainConfig([], ""), len(corpus.vocab)
    timer = time_steps(default, n, corpus.tokens, device)
    auto = pick_precision("auto", device)

    def seconds(c: Candidate) -> float:
        """The best of three, in the precision `textgen train` trains this candidate in here."""
        config = replace(default, **c.settings())
        precision = auto if auto != "auto" else choose_precision(config, n, timer).precision
        return min(median_step(timer, config, precision) for _ in range(3))

    result = {c.label: seconds(c) for c in CANDIDATES}
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def run(args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else None
    seconds = timings(args)
    print("seconds per step:", seconds, flush=True)
    for level in args.seconds:
        for corpus in args.corpus.split(","):
            for cand in CANDIDATES:
                if only and f"{cand.num_layers}x{cand.hidden_size}" not in only:
                    continue
                steps = max(1, round(level / seconds[cand.label]))
                where = folder(args.out, corpus, cand, steps)
                if best_val(where, steps) is not None:
                    continue
                cmd_resume = ["--resume"] if (where / "resume.safetensors").exists() else []
                cmd = [
                    sys.executable, "-m", "repl.cli", "train", str(args.corpora / corpus), "--out", str(where),
                    "--steps", str(steps), "--eval-every", str(max(25, steps // 6)), "--sample-len", "0",
                    *flags(cand), *cmd_resume,
                ]  # fmt: skip
                print(" ".join(cmd[2:]), flush=True)
                subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                print(f"  {corpus} {cand.label} {steps}: {best_val(where, steps)}", flush=True)


def report(args: argparse.Namespace) -> None:
    seconds = json.loads((args.out / "timings.json").read_text())
    corpora = sorted(p.name for p in args.out.iterdir() if p.is_dir())
    for stem in corpora:
        cells: dict[tuple[str, int], tuple[int, float]] = {}
        for run_dir in sorted((args.out / stem).iterdir()):
            label, steps = run_dir.name.rsplit("-", 1)
            label = label.replace("x", "×")
            value = best_val(run_dir, int(steps))
            if value is not None:
                level = round(int(steps) * seconds[label] / 10) * 10  # the level it was run for, in seconds
                cells[label, level] = (int(steps), value)
        levels = sorted({lv for _, lv in cells})
        print(f"\n{stem}: best validation bits/char (steps) for the same time here")
        print("| size | " + " | ".join(f"{lv:g} s" for lv in levels) + " |")
        print("| --- |" + " --- |" * len(levels))
        for cand in CANDIDATES:
            row = [cells.get((cand.label, lv)) for lv in levels]
            text = [f"{c[1]:.3f} ({c[0]:,})" if c else "" for c in row]
            print(f"| {cand.label} | " + " | ".join(text) + " |")
        for lv in levels:
            here = {k: cells[k, lv] for k in (c.label for c in CANDIDATES) if (k, lv) in cells}
            best = min(here, key=lambda k: here[k][1])
            print(f"{lv:g} s: best {best} at {here[best][0]:,} steps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "sizes")
    r.add_argument("--seconds", type=ints, default=[60, 240])
    r.add_argument("--corpus", default="nietzsche.txt,tinyshakespeare.txt")
    r.add_argument("--only", help="comma-separated sizes such as 1x512,2x384")
    p = sub.add_parser("report")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "sizes")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
