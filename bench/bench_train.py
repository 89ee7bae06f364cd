"""Training numbers: hardware peak vs the training step, the 10-minute runs, and the report.

    .venv/bin/python bench/bench_train.py peak                 # ~1 minute: matmul peak, step FLOP/s, dropout cost
    .venv/bin/python bench/bench_train.py runs --minutes 10    # ~45 minutes: (a)-(c), (e) 10 minutes each, (d) 1 minute
    .venv/bin/python bench/bench_train.py report               # reads the run folders, prints the numbers

Run them on an otherwise idle machine: with both cores shared, multi-threaded torch collapses (small LSTM ops
were ~60× slower with 2 threads on a loaded 2-core machine than on an idle one), and the numbers mean nothing.

`runs` starts each training as a subprocess, exactly as a user would (`python -m repl.cli train …` is
`textgen train …`), so the numbers include everything the product does (evaluation, samples, checkpoints):

- (a) Nietzsche, default config (the 2×640 model: `--size fixed`, as for (b) and (e));
- (b) tiny-shakespeare, default config (also reported in nats/char, the unit nanoGPT quotes);
- (e) tiny-shakespeare with less dropout (`E_FLAGS`): within 10 minutes its validation rewards less dropout
  than Nietzsche's, whose text comes from another book (docs/record/defaults.md);
- (c) the book's recipe (bench/book_recipe.py) on lower-cased Nietzsche, for the same minutes;
- (d) textgen on the same lower-cased Nietzsche task (`--lowercase`), with `--size auto` (`D_FLAGS`: it picks the
  size and the settings that go with it for the budget on this machine, docs/sizing.md) and `--d-minutes`
  (default 1), so that the cosine schedule anneals within that budget. It evaluates every 50 steps without
  samples: the evaluations give the time to the recipe's quality its resolution and count on textgen's clock.
  (docs/record/benchmarks.md's 18.5× record ran before `--size auto`, with `--lower-args "--eval-every 25 --hidden-size
  512 --num-layers 1 --dropout 0.1 --embed-dropout 0 --weight-drop 0 --weight-decay 0 --warmup-steps 20 --lr
  4e-3"`.)

`report` compares (c) and (d) by time to quality: the recipe's best validation bpc after its whole budget, the
time the recipe first reached it, the time textgen first reached it, and the ratio (the target is ≥ 10×).
textgen's time is its wall-clock `elapsed` from metrics.jsonl, which includes its own evaluations and samples;
the recipe's is its training clock, which excludes the evaluations this benchmark adds (the book's recipe does
not evaluate). Both choices are in the recipe's favour, so the ratio is conservative.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.values import nonneg_int, positive_float, positive_int  # noqa: E402
from textgen_core.sampling import LN2  # noqa: E402

DEFAULT_WORK = Path("/tmp/textgen-bench")
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
MARKER = "bench.json"  # written into every run folder; `runs` only ever deletes folders that hold it

#: The targets the report checks against (docs/record/benchmarks.md, Training).
TARGET_NIETZSCHE_BPC = 1.82
TARGET_SHAKESPEARE_NATS = 1.40
TARGET_SPEEDUP = 10.0


# ----- peak ------------------------------------------------------------------------------------------------------
def train_flops_per_char(layers: int, hidden: int, embed: int, vocab: int) -> float:
    """Matmul FLOPs of one training character: forward 2·4H·(in+H) per layer + 2·H·V head; backward ≈ 2× forward.

    Element-wise gate maths, the embedding lookup and the optimizer are left out: they are not matmuls, so the
    fraction of matmul peak says how well the step uses the hardware's fast path.
    """
    fwd = sum(2 * 4 * hidden * ((embed if k == 0 else hidden) + hidden) for k in range(layers)) + 2 * hidden * vocab
    return 3.0 * fwd


def _median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dropout_step_ratio(step: Callable[[], None], rounds: int) -> float:
    """Step time with `textgen_core.training.model.dropout` over the same step with torch's `F.dropout`, timed in
    alternating blocks of three steps so that machine noise hits both alike: the median of `rounds` ratios."""
    import torch.nn.functional as F

    import textgen_core.training.model as model_module

    ours = model_module.dropout
    variants = {"ours": ours, "torch": F.dropout}
    ratios = []
    try:
        for _ in range(rounds):
            took = {}
            for name, fn in variants.items():
                model_module.dropout = fn
                step()
                t = time.perf_counter()
                for _ in range(3):
                    step()
                took[name] = time.perf_counter() - t
            ratios.append(took["ours"] / took["torch"])
    finally:
        model_module.dropout = ours
    return statistics.median(ratios)


def cmd_peak(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from textgen_core.training.config import TrainConfig
    from textgen_core.training.hardware import cpu_name, cpu_supports_bf16, cpu_threads
    from textgen_core.training.model import CharLSTM

    threads = args.threads or cpu_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    native = cpu_supports_bf16()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {threads} threads; native bf16 (AVX-512 BF16/AMX): {native}")
    if not native:
        print("  note: without native bf16, torch emulates it and the bf16 numbers below are not representative")

    # Two kernels per precision: torch.mm (MKL sgemm for fp32, which takes a slow path on AMD CPUs; oneDNN for
    # bf16) and oneDNN directly (the library nn.LSTM runs on). On an AMD EPYC here MKL gave ~100 GFLOP/s per
    # thread in fp32 and oneDNN ~230, so the fraction of "peak" is against the faster of the two; both are printed.
    n = args.size
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    flop = 2.0 * n**3
    kernels: dict[str, dict[str, float]] = {}
    for name, (a, b) in {"fp32": (a32, b32), "bf16": (a32.bfloat16(), b32.bfloat16())}.items():
        kernels[name] = {"torch.mm": flop / _median_time(lambda a=a, b=b: torch.mm(a, b), args.repeats)}
        try:
            am, bm = a.to_mkldnn(), b.to_mkldnn()
            linear = torch._C._nn.mkldnn_linear  # x @ w.T: the same FLOPs

            def onednn(am=am, bm=bm, linear=linear) -> object:
                return linear(am, bm, None)

            kernels[name]["oneDNN"] = flop / _median_time(onednn, args.repeats)
        except (AttributeError, RuntimeError):  # a torch build without oneDNN
            pass
    peak = {name: max(k.values()) for name, k in kernels.items()}
    print(f"matmul {n}×{n} (median of {args.repeats}):")
    for name, k in kernels.items():
        print(f"  {name}: " + "   ".join(f"{kind} {flops / 1e9:7.1f} GFLOP/s" for kind, flops in k.items()))

    # The default textgen model and step: CharLSTM with the default config, AdamW, clipping, the same loss as
    # Trainer._train_step, LSTM state carried (detached) across steps. Random tokens: speed does not depend on data.
    tc = TrainConfig(corpus=[], out="")
    vocab = args.vocab
    cfg = tc.model_config(vocab)
    bsz, seq = tc.batch_size, tc.seq_len
    per_char = train_flops_per_char(cfg.num_layers, cfg.hidden_size, cfg.embed_dim, vocab)
    results: dict[str, float] = {}
    steps: dict[str, Callable[[], None]] = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = CharLSTM(cfg)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        data = torch.randint(0, vocab, (bsz, seq + 1))
        state = [model.initial_state(bsz)]

        def step(model=model, opt=opt, data=data, state=state, precision=precision) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits, st = model(data[:, :-1], state[0])
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), data[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
            opt.step()
            state[0] = (st[0].detach().float(), st[1].detach().float())

        steps[precision] = step
        results[precision] = _median_time(step, args.steps, warmup=3)
    chars = bsz * seq
    print(
        f"training step, default model ({cfg.describe()}, embed {cfg.embed_dim}, vocab {vocab}), batch {bsz}×{seq}, "
        f"median of {args.steps}; {per_char / 1e6:.1f} MFLOP/char (matmuls, fwd+bwd):"
    )
    summary: dict[str, object] = {"cpu": cpu_name(), "threads": threads, "native_bf16": native}
    for precision, t in results.items():
        achieved = per_char * chars / t
        frac = achieved / peak[precision]
        frac_mm = achieved / kernels[precision]["torch.mm"]
        print(
            f"  {precision}: {t * 1e3:7.1f} ms/step  {chars / t:9,.0f} chars/s  {achieved / 1e9:7.1f} GFLOP/s  "
            f"= {100 * frac:4.1f}% of the best {precision} matmul ({100 * frac_mm:.0f}% of torch.mm's)"
        )
        summary[precision] = {
            "matmul_gflops": {kind: flops / 1e9 for kind, flops in kernels[precision].items()},
            "fraction_of_torch_mm": frac_mm,
            "step_ms": t * 1e3,
            "chars_per_s": chars / t,
            "gflops": achieved / 1e9,
            "fraction_of_best_matmul": frac,
        }
    ratio = results["bf16"] / results["fp32"]
    print(f"bf16/fp32 step-time ratio: {ratio:.2f} (bf16 is {1 / ratio:.2f}× as fast)")
    summary["bf16_over_fp32_step_time"] = ratio
    dropout_ratio = dropout_step_ratio(steps["bf16"], args.steps)
    print(
        "bf16 step time with textgen's dropout masks / with torch's F.dropout (bernoulli_), interleaved: "
        f"{dropout_ratio:.3f}"
    )
    summary["dropout_over_torch_dropout_step_time"] = dropout_ratio
    if args.json:
        print(json.dumps(summary))
    return 0


# ----- runs ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    key: str
    folder: str
    title: str
    corpus: str
    kind: str  # "textgen" or "recipe"
    flags: tuple[str, ...] = field(default=())


#: (e)'s settings: the defaults with less dropout, which tiny-shakespeare's validation rewards within 10 minutes,
#: and no samples at the evaluations, as the recorded runs of these settings were measured (docs/record/defaults.md).
#: (a), (b) and (e) are records of the default 2×640 model, whatever size `--size auto` would fit to this machine.
FIXED = ("--size", "fixed")
E_FLAGS = ("--dropout", "0.1", "--embed-dropout", "0.05", "--weight-drop", "0.1", "--sample-len", "0")

RUNS = {
    "a": RunSpec("a", "a-nietzsche", "Nietzsche, default config", "nietzsche.txt", "textgen", FIXED),
    "b": RunSpec("b", "b-tinyshakespeare", "tiny-shakespeare, default config", "tinyshakespeare.txt", "textgen", FIXED),
    "e": RunSpec(
        "e",
        "e-tinyshakespeare-tuned",
        "tiny-shakespeare, its settings",
        "tinyshakespeare.txt",
        "textgen",
        (*FIXED, *E_FLAGS),
    ),
    "c": RunSpec("c", "c-book-recipe", "book recipe, lower-cased Nietzsche", "nietzsche.txt", "recipe"),
    "d": RunSpec(
        "d", "d-nietzsche-lowercase", "textgen, lower-cased Nietzsche", "nietzsche.txt", "textgen", ("--lowercase",)
    ),
}
#: (d)'s settings: textgen fits its size to the budget and the machine, as a user with a short budget would run it.
D_FLAGS = "--eval-every 50 --sample-len 0 --size auto"
RECIPE_CURVE = "curve.jsonl"
LOG_NAME = "train.log"


def build_command(spec: RunSpec, args: argparse.Namespace, folder: Path) -> tuple[list[str], str]:
    """The argv to run and its user-facing form (`textgen train …` / `python bench/book_recipe.py …`)."""
    corpus = str(Path(args.corpora) / spec.corpus)
    minutes = ["--minutes", f"{args.d_minutes if spec.key == 'd' else args.minutes:g}"]
    if spec.kind == "recipe":
        rest = [corpus, *minutes, "--out", str(folder / RECIPE_CURVE), *shlex.split(args.recipe_args)]
        return [sys.executable, str(ROOT / "bench" / "book_recipe.py"), *rest], shlex.join(
            ["python", "bench/book_recipe.py", *rest]
        )
    extra = shlex.split(args.train_args)
    if spec.key == "d":
        extra += shlex.split(args.lower_args)
    rest = [corpus, "--out", str(folder), *minutes, *spec.flags, *extra]
    return [sys.executable, "-m", "repl.cli", "train", *rest], shlex.join(["textgen", "train", *rest])


def prepare_folder(folder: Path) -> None:
    """Start from an empty folder; only a folder this script made (it holds MARKER) is ever deleted."""
    if folder.exists():
        if not (folder / MARKER).exists() and any(folder.iterdir()):
            raise SystemExit(f"bench_train: {folder} exists and was not made by this script; choose another --work")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run_one(spec: RunSpec, args: argparse.Namespace) -> int:
    folder = Path(args.work) / spec.folder
    argv, shown = build_command(spec, args, folder)
    prepare_folder(folder)
    minutes = args.d_minutes if spec.key == "d" else args.minutes
    info = {"run": spec.key, "title": spec.title, "command": shown, "argv": argv, "minutes": minutes}
    (folder / MARKER).write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(f"\n=== ({spec.key}) {spec.title}: {minutes:g} min\n$ {shown}\n  log: {folder / LOG_NAME}", flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.time()
    with open(folder / LOG_NAME, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if not args.quiet:
                    sys.stdout.write(f"  {spec.key}| {line}")
                    sys.stdout.flush()
            rc = proc.wait()
        except KeyboardInterrupt:  # the child got the same SIGINT: let it save and stop
            rc = proc.wait()
            info.update(returncode=rc, seconds=round(time.time() - start, 1), interrupted=True)
            (folder / MARKER).write_text(json.dumps(info, indent=1), encoding="utf-8")
            raise
    info.update(returncode=rc, seconds=round(time.time() - start, 1))
    (folder / MARKER).write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(f"=== ({spec.key}) exit {rc} after {info['seconds']:.0f} s", flush=True)
    return rc


def parse_only(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in RUNS]
    if bad or not keys:
        raise argparse.ArgumentTypeError(f"--only takes a comma-separated subset of {','.join(RUNS)}, got {text!r}")
    return keys


def cmd_runs(args: argparse.Namespace) -> int:
    corpora = Path(args.corpora)
    for key in args.only:
        path = corpora / RUNS[key].corpus
        if not path.is_file():
            raise SystemExit(f"bench_train: {path} not found; pass --corpora DIR")
    failed = []
    try:
        for key in args.only:
            if run_one(RUNS[key], args) != 0:
                failed.append(key)
    except KeyboardInterrupt:
        print("\nbench_train: interrupted", file=sys.stderr)
        return 130
    if failed:
        print(f"bench_train: run(s) {','.join(failed)} failed; see their {LOG_NAME}", file=sys.stderr)
    if not args.no_report:
        print()
        cmd_report(args)
    return 1 if failed else 0


# ----- report ----------------------------------------------------------------------------------------------------
@dataclass
class Curve:
    """Evaluations of one run: (elapsed seconds, val bpc) in order, and what produced them."""

    points: list[tuple[float, float]]
    records: list[dict]
    command: str
    clock: str

    @property
    def best(self) -> tuple[float, float, dict]:
        """(bpc, elapsed of its first occurrence, record) of the lowest validation bpc."""
        i = min(range(len(self.points)), key=lambda j: self.points[j][1])
        return self.points[i][1], self.points[i][0], self.records[i]

    def first_reach(self, target: float) -> tuple[float | None, float | None]:
        """Elapsed of the first evaluation at or below `target` (an upper bound on when the run got there),
        and a linear interpolation between it and the evaluation before (an estimate of the crossing)."""
        prev: tuple[float, float] | None = None
        for t, v in self.points:
            if v <= target:
                if prev is None:
                    return t, t
                t0, v0 = prev
                return t, t0 + (t - t0) * (v0 - target) / (v0 - v)
            prev = (t, v)
        return None, None


def read_jsonl(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def load_curve(work: Path, spec: RunSpec) -> Curve | None:
    folder = work / spec.folder
    path = folder / (RECIPE_CURVE if spec.kind == "recipe" else "metrics.jsonl")
    if not path.is_file():
        return None
    records = [r for r in read_jsonl(path) if isinstance(r.get("val_bpc"), (int, float))]
    records = [r for r in records if math.isfinite(r["val_bpc"])]
    if not records:
        return None
    command = ""
    if (folder / MARKER).is_file():
        command = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("command", "")
    clock = "training time, evaluations excluded" if spec.kind == "recipe" else "wall clock, evaluations included"
    return Curve([(float(r["elapsed"]), float(r["val_bpc"])) for r in records], records, command, clock)


def checkpoint_note(folder: Path) -> str:
    """Model and precision from the run's best checkpoint, so the report says what was measured."""
    try:
        from textgen_core.checkpoint import read_meta

        meta = read_meta(folder / "model.safetensors")
    except Exception:
        return ""
    precision = meta.extra.get("precision", "?")
    return f"{meta.config.describe()}, {precision}, dropout {meta.config.dropout:g}"


def fmt_min(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.2f} min ({seconds:.0f} s)"


def cmd_report(args: argparse.Namespace) -> int:
    work = Path(args.work)
    curves = {k: load_curve(work, s) for k, s in RUNS.items()}
    print(f"textgen training benchmark — run folders in {work}")
    print("=" * 100)

    print("(i) best validation (last 10% of the file, case kept)")
    for key, unit_target in (("a", "bpc"), ("b", "nats"), ("e", "nats")):
        spec, curve = RUNS[key], curves[key]
        if curve is None:
            print(f"  ({key}) {spec.title}: not run (no metrics in {work / spec.folder})")
            continue
        bpc, at, rec = curve.best
        last = curve.points[-1][0]
        note = checkpoint_note(work / spec.folder)
        print(f"  ({key}) {spec.title}{f' [{note}]' if note else ''}")
        print(f"      $ {curve.command}")
        line = f"      best val {bpc:.4f} bpc = {bpc * LN2:.4f} nats/char at step {rec.get('step')}, {fmt_min(at)}"
        print(f"{line}; {len(curve.points)} evaluation(s), the last at {fmt_min(last)}")
        if unit_target == "bpc":
            ok = bpc <= TARGET_NIETZSCHE_BPC
            print(f"      target ≤ {TARGET_NIETZSCHE_BPC} bpc: {'met' if ok else 'NOT met'}")
        else:
            ok = bpc * LN2 <= TARGET_SHAKESPEARE_NATS
            print(f"      target ≤ {TARGET_SHAKESPEARE_NATS} nats/char: {'met' if ok else 'NOT met'}")

    rc, rd = curves["c"], curves["d"]
    print()
    print("(ii) lower-cased Nietzsche, validation bpc against elapsed minutes")
    if rc is None or rd is None:
        missing = ", ".join(f"({k})" for k, c in (("c", rc), ("d", rd)) if c is None)
        print(f"  missing run(s) {missing}; run: bench_train.py runs --only c,d")
        return 0
    print(f"  (c) $ {rc.command}\n      elapsed = {rc.clock}")
    print(f"  (d) $ {rd.command}\n      elapsed = {rd.clock}")
    print("  Scoring: the recipe predicts each character from the 60 before it (as it generates), on an evenly spaced")
    print("  subset of the split; textgen reads the split as a stream (as it generates). Same split, same text.")
    w = 30
    print(f"\n  {'(c) book recipe':<{w}}  {'(d) textgen --lowercase':<{w}}")
    print(f"  {'min':>8} {'val bpc':>9} {'epoch':>7}     {'min':>8} {'val bpc':>9} {'epoch':>7}")
    for i in range(max(len(rc.points), len(rd.points))):
        cells = []
        for curve in (rc, rd):
            if i < len(curve.points):
                t, v = curve.points[i]
                ep = curve.records[i].get("epoch")
                cells.append(f"{t / 60:8.2f} {v:9.4f} {ep if ep is None else f'{ep:7.2f}':>7}")
            else:
                cells.append(" " * 26)
        print(f"  {cells[0]}     {cells[1]}")
    csv = work / "curves_lowercase.csv"
    try:
        with open(csv, "w", encoding="utf-8") as f:
            f.write("run,elapsed_s,val_bpc\n")
            for name, curve in (("book_recipe", rc), ("textgen_lowercase", rd)):
                for t, v in curve.points:
                    f.write(f"{name},{t:.3f},{v:.6f}\n")
        print(f"\n  (both curves as CSV: {csv})")
    except OSError:
        pass

    print()
    print("(iii) time to the recipe's quality")
    target, t_recipe, _ = rc.best
    t_ours, t_interp = rd.first_reach(target)
    print(f"  recipe's best val after its {rc.points[-1][0] / 60:.2f}-minute budget: {target:.4f} bpc")
    print(f"  recipe first reached it at:   {fmt_min(t_recipe)}  (training clock; its evaluations excluded)")
    if t_ours is None:
        best_d = rd.best[0]
        print(f"  textgen never reached it (best {best_d:.4f} bpc in {rd.points[-1][0] / 60:.1f} min): speed-up < 1×")
        return 0
    gap = rd.points[1][0] - rd.points[0][0] if len(rd.points) > 1 else rd.points[0][0]
    print(f"  textgen first reached it at:  {fmt_min(t_ours)}  (first evaluation at or below it; wall clock incl.")
    print(f"                                evaluations and samples; evaluations ~{gap:.0f} s apart)")
    ratio = t_recipe / t_ours
    verdict = "met" if ratio >= TARGET_SPEEDUP else "NOT met"
    print(f"  speed-up: {ratio:.1f}×  (target ≥ {TARGET_SPEEDUP:g}×: {verdict})")
    if t_interp is not None and t_interp < t_ours:
        est = t_recipe / t_interp
        print(f"  (interpolating between textgen's evaluations: reached at ~{t_interp:.0f} s, ~{est:.1f}×)")
    if rd.points[0][1] <= target:
        print("  note: textgen was already there at its first evaluation; the true speed-up is larger than shown")
    return 0


# ----- CLI -------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    pk = sub.add_parser("peak", help="matmul peak (fp32, bf16) and the default training step's FLOP/s and chars/s")
    pk.add_argument("--size", type=positive_int, default=2048, help="matmul size (default 2048)")
    pk.add_argument("--repeats", type=positive_int, default=9, help="timed matmuls per precision (median; default 9)")
    pk.add_argument(
        "--steps", type=positive_int, default=10, help="timed training steps per precision (median; default 10)"
    )
    pk.add_argument("--vocab", type=positive_int, default=86, help="vocabulary size (default 86, Nietzsche's)")
    pk.add_argument("--threads", type=nonneg_int, default=0, help="CPU threads (default: all cores, as textgen train)")
    pk.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    pk.set_defaults(func=cmd_peak)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--work", default=str(DEFAULT_WORK), help=f"folder for the run folders (default {DEFAULT_WORK})")

    rn = sub.add_parser("runs", help="run (a)-(e) one after another as subprocesses, then print the report")
    common(rn)
    rn.add_argument("--minutes", type=positive_float, default=10.0, help="budget of (a), (b), (c) and (e) (default 10)")
    rn.add_argument("--d-minutes", type=positive_float, default=1.0, help="budget of (d) (default 1)")
    rn.add_argument("--only", type=parse_only, default=list(RUNS), help="subset to run, e.g. a,b (default a,b,e,c,d)")
    rn.add_argument("--corpora", default=str(DEFAULT_CORPORA), help="folder with nietzsche.txt and tinyshakespeare.txt")
    rn.add_argument(
        "--train-args", default="", metavar="ARGS", help="extra `textgen train` flags for (a), (b), (d), (e)"
    )
    rn.add_argument(
        "--lower-args",
        default=D_FLAGS,
        metavar="ARGS",
        help=f"flags for (d) only (default '{D_FLAGS}'; frequent evaluations give a fine resolution of the time "
        "to the recipe's quality, and they count against textgen's clock)",
    )
    rn.add_argument("--recipe-args", default="", metavar="ARGS", help="extra bench/book_recipe.py flags for (c)")
    rn.add_argument("--quiet", action="store_true", help="do not echo the trainings' output (it is in train.log)")
    rn.add_argument("--no-report", action="store_true", help="do not print the report afterwards")
    rn.set_defaults(func=cmd_runs)

    rp = sub.add_parser("report", help="print best vals, the lower-cased curves side by side and the speed-up")
    common(rp)
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
