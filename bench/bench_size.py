"""`--size auto` against the default size, for a --minutes budget, in three machine conditions.

    python bench/bench_size.py run [--corpus ../shared/corpora/nietzsche.txt] [--minutes 10] [--out runs/size-ab]
                                   [--conditions as-is,fp32,fp32-1core] [--seed 1337]
    python bench/bench_size.py report [--out runs/size-ab]

Each condition trains the same corpus twice with the same seed, `textgen train CORPUS --minutes M --size fixed`
(the default 2×640) and the same with `--size auto`, one after the other (default first, then auto; conditions in
turn), exactly as a user would run them. The conditions simulate slower machine classes on this one:

- `as-is`: the machine as it is (bf16 where the CPU has it natively);
- `fp32`: `--precision fp32`, as on a CPU without native bf16 (most laptops);
- `fp32-1core`: fp32 on one core (`taskset -c 0`, which textgen's thread count follows). The two runs of this
  condition go side by side, one per core (`taskset -c 0` and `-c 1`), since each uses one core only.

`report` prints, per condition, each run's best validation bits/char, the step it came at and the steps it took,
what auto chose, and auto minus default (negative: auto is better). docs/record/sizing.md records the output. Run it on
an otherwise idle machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textgen_core.runfolder import read_metrics  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"
CONDITIONS = {"as-is": [], "fp32": ["--precision", "fp32"], "fp32-1core": ["--precision", "fp32"]}


def command(args: argparse.Namespace, condition: str, auto: bool, core: int | None) -> tuple[list[str], Path]:
    out = args.out / f"{Path(args.corpus).stem}-{args.minutes:g}min" / condition / ("auto" if auto else "default")
    argv = [sys.executable, "-m", "repl.cli", "train", str(args.corpus), "--out", str(out)]
    argv += ["--minutes", f"{args.minutes:g}", "--seed", str(args.seed), *CONDITIONS[condition]]
    argv += ["--size", "auto" if auto else "fixed"]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    return argv, out


def done(out: Path) -> bool:
    return (out / "done.json").exists()


def run(args: argparse.Namespace) -> None:
    for condition in args.conditions.split(","):
        side_by_side = condition == "fp32-1core"  # one core each: the pair runs at once, one per core
        pairs = [
            command(args, condition, auto, core if side_by_side else None) for auto, core in ((False, 0), (True, 1))
        ]
        todo = [(argv, out) for argv, out in pairs if not done(out)]
        for _, out in todo:
            if out.exists():  # an interrupted run: its budget was wall-clock time, so it starts again
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
        procs = []
        for argv, out in todo:
            print(" ".join(argv), flush=True)
            log = (out.parent / f"{out.name}.log").open("w")
            p = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            procs.append((p, out, log))
            if not side_by_side:
                p.wait()
        for p, out, log in procs:
            if p.wait() != 0:
                raise SystemExit(f"{out}: training failed, see {out.parent / (out.name + '.log')}")
            log.close()
            choice = next(
                (ln for ln in (out.parent / f"{out.name}.log").read_text().splitlines() if "--size auto:" in ln), ""
            )
            curve = read_metrics(out)
            assert curve is not None
            record = {
                "best_val": curve.best_val_bpc,
                "best_step": curve.best_step,
                "steps": curve.steps[-1],
                "choice": choice,
            }
            (out / "done.json").write_text(json.dumps(record))
            print(f"  {condition} {out.name}: {record}", flush=True)


def report(args: argparse.Namespace) -> None:
    for folder in sorted(args.out.iterdir()):
        print(f"\n{folder.name}")
        print(
            "| condition | default: best (at step / of steps) | auto: choice, best (at step / of steps) | auto − def. |"
        )
        print("| --- | --- | --- | --- |")
        for condition in CONDITIONS:
            runs = {k: folder / condition / k / "done.json" for k in ("default", "auto")}
            if not all(p.exists() for p in runs.values()):
                continue
            d, a = (json.loads(p.read_text()) for p in runs.values())
            label = a["choice"].split("--size auto: ")[-1].split(" ")[0]
            print(
                f"| {condition} | {d['best_val']:.4f} ({d['best_step']:,} / {d['steps']:,}) | {label}, "
                f"{a['best_val']:.4f} ({a['best_step']:,} / {a['steps']:,}) | {a['best_val'] - d['best_val']:+.4f} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    r.add_argument("--minutes", type=float, default=10.0)
    r.add_argument("--conditions", default=",".join(CONDITIONS))
    r.add_argument("--seed", type=int, default=1337)
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "size-ab")
    p = sub.add_parser("report")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "size-ab")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
