"""Scaling up on this machine: training chars/s with 1 and 2 processes (DDP over gloo), and peak memory while
training on a generated ≥ 1 GB corpus through its memory-mapped token file.

    .venv/bin/python bench/bench_scale.py                   # a few minutes on a 2-core machine; run it idle
    .venv/bin/python bench/bench_scale.py --only throughput
    .venv/bin/python bench/bench_scale.py --only big --big-mb 64   # a quick check of the large-corpus path
    .venv/bin/python bench/bench_scale.py --only memory            # where a training process's memory goes
    .venv/bin/python bench/bench_scale.py --only memory --memory-batch 1   # what does not grow with the batch
    python bench/bench_scale.py --only throughput --device cuda    # on a GPU: each precision, a large batch

Throughput: the default model (2×640, batch 32×128 per process, precision auto) trains for --steps steps on
Nietzsche; chars/s (all processes together) is timed by the trainer's own step events from step 10 to the last,
so start-up and the final evaluation do not count. The processes split the cores evenly, as `textgen train --nproc`
does. "1 × batch 64" shows one process doing the same work per step as two processes with batch 32. With
`--device cuda` the rows are bf16, fp16 and fp32 autocast at batch 32, bf16 at batch 256 (a small batch leaves
most of a large GPU idle), and two processes over NCCL where the machine has two GPUs. The
configurations take turns, --repeats times, and the best run of each counts: on a shared machine another
process's burst slows whichever run it meets (threads that wait on each other suffer most).

Memory: Nietzsche repeated to ≥ 1 GiB (every copy with its lines rotated by a random amount, so no two copies
align) in a temporary folder that is deleted afterwards. `textgen train` runs as users run it: it encodes the corpus
into RUN/tokens.u8, trains a few steps, evaluates and saves; then `--resume` reuses the token file (hash check only).
Peak RSS is the kernel's (wait4's ru_maxrss of that process); the resident part of the token map is sampled from
/proc/PID/smaps while it runs. The same command on Nietzsche itself (600 KB, read into memory) gives the baseline:
the difference is what the large corpus costs, the rest is torch and the model's training step.

Where the rest goes (`--only memory`): a fresh interpreter trains the default model on Nietzsche for a few steps
and reports its resident set after each stage (import torch, the first optimizer, the trainer, the steps, the
evaluation and saves).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.values import positive_int  # noqa: E402
from textgen_core.config import DEFAULT_BATCH_SIZE, DEFAULT_SEQ_LEN  # noqa: E402

NIETZSCHE = ROOT.parent / "shared" / "corpora" / "nietzsche.txt"
TARGET_RSS_MB = 500
WARM_STEPS = 10


def _throughput_worker(rank: int, run: Throughput, steps: int, corpus: Path, folder: Path) -> None:
    import torch
    import torch.distributed as dist

    from textgen_core.training.config import TrainConfig
    from textgen_core.training.events import Reporter, StepStats
    from textgen_core.training.loop import Trainer

    nproc, batch = run.nproc, run.batch
    if nproc > 1:
        if run.device == "cuda":
            torch.cuda.set_device(rank)
        backend = "nccl" if run.device == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"file://{folder / 'store'}", rank=rank, world_size=nproc)
    marks: list[tuple[int, float]] = []

    class Clock(Reporter):
        def step(self, stats: StepStats) -> None:
            marks.append((stats.step, time.perf_counter()))

    config = TrainConfig(
        corpus=[str(corpus)],
        out=str(folder / "run"),
        steps=steps,
        batch_size=batch,
        sample_len=0,
        device=run.device,
        precision=run.precision,
    )
    trainer = Trainer(config, reporter=Clock(), command="bench")
    trainer.run()
    if rank == 0:
        (s0, t0), (s1, t1) = marks[WARM_STEPS - 1], marks[-1]
        chars = (s1 - s0) * nproc * batch * config.seq_len
        result = {"chars_per_s": chars / (t1 - t0), "ms_per_step": 1000 * (t1 - t0) / (s1 - s0)}
        (folder / "result.json").write_text(json.dumps(result))
    if nproc > 1:
        dist.destroy_process_group()


@dataclass(frozen=True)
class Throughput:
    """One configuration of the throughput table."""

    nproc: int
    batch: int
    device: str = "cpu"
    precision: str = "auto"

    def label(self) -> str:
        procs = f"{self.nproc} process{'es' if self.nproc > 1 else ''}"
        return f"{procs} × batch {self.batch}" + (f", {self.precision}" if self.device == "cuda" else "")


def throughput_configs(device: str, gpus: int) -> list[Throughput]:
    """On CPUs: 1 and 2 processes, and one process doing two processes' work per step. On a GPU: each precision,
    a batch large enough to fill the GPU, and one process per GPU over NCCL where there are two."""
    if device == "cpu":
        return [Throughput(1, 32), Throughput(2, 32), Throughput(1, 64)]
    runs = [Throughput(1, 32, "cuda", p) for p in ("bf16", "fp16", "fp32")] + [Throughput(1, 256, "cuda", "bf16")]
    return runs + ([Throughput(2, 32, "cuda", "bf16")] if gpus >= 2 else [])


def throughput(run: Throughput, steps: int, corpus: Path) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="textgen-scale-") as tmp:
        mp.spawn(_throughput_worker, args=(run, steps, corpus, Path(tmp)), nprocs=run.nproc)
        return json.loads((Path(tmp) / "result.json").read_text())


def _memory_stages(out: Path, batch: int, torch_dropout: bool) -> None:
    """In a fresh interpreter: the resident set after each stage of a short default training on Nietzsche.
    `torch_dropout` swaps textgen's dropout masks for torch's `F.dropout`, to show what the faster masks cost."""
    import resource

    def mb() -> tuple[float, float]:
        now = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return now / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    stages = [("python", *mb())]
    import torch

    stages.append(("import torch", *mb()))
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    stages.append(("first torch.optim optimizer (it imports torch._dynamo)", *mb()))
    import textgen_core.training.model
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.events import Reporter, StepStats
    from textgen_core.training.loop import Trainer

    if torch_dropout:
        textgen_core.training.model.dropout = torch.nn.functional.dropout

    class AfterSteps(Reporter):
        def step(self, stats: StepStats) -> None:
            if stats.step == WARM_STEPS:
                stages.append((f"{WARM_STEPS} training steps", *mb()))

    config = TrainConfig(
        corpus=[str(NIETZSCHE)], out=str(out / "run"), steps=WARM_STEPS, sample_len=0, device="cpu", batch_size=batch
    )
    trainer = Trainer(config, reporter=AfterSteps(), command="bench")
    stages.append(("corpus, default model, AdamW", *mb()))
    trainer.run()
    stages.append(("evaluation, checkpoint and resume file", *mb()))
    (out / "stages.json").write_text(json.dumps(stages))


def memory_stages(batch: int, torch_dropout: bool) -> None:
    import multiprocessing

    with tempfile.TemporaryDirectory(prefix="textgen-mem-") as tmp:
        proc = multiprocessing.get_context("spawn").Process(
            target=_memory_stages, args=(Path(tmp), batch, torch_dropout)
        )
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"memory stages: the measuring process failed (exit status {proc.exitcode}), see above")
        stages = json.loads((Path(tmp) / "stages.json").read_text())
    print(f"  {'stage':<56} {'RSS now':>9} {'peak':>9}")
    for name, now, peak in stages:
        print(f"  {name:<56} {now:6.0f} MB {peak:6.0f} MB")


def make_big_corpus(path: Path, size: int) -> None:
    lines = NIETZSCHE.read_text(encoding="utf-8").split("\n")
    rng = random.Random(0)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            k = rng.randrange(len(lines))
            copy = "\n".join(lines[k:] + lines[:k]) + "\n"
            f.write(copy)
            written += len(copy.encode("utf-8"))


def run_measured(args: list[str]) -> dict:
    """Run `textgen ARGS`; returns wall time, exit status, peak RSS and the largest resident size of the token map
    seen, in MB, and the output lines with their times."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repl.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[tuple[float, str]] = []
    map_kb = 0

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))

    def sample() -> None:
        nonlocal map_kb
        while proc.returncode is None:
            try:
                rows = Path(f"/proc/{proc.pid}/smaps").read_text().splitlines()
            except OSError:
                return
            in_map = False
            for row in rows:
                if not row[:1].isupper():  # a mapping's header line: "start-end perms offset dev inode path"
                    in_map = row.endswith("/tokens.u8")
                elif in_map and row.startswith("Rss:"):
                    map_kb = max(map_kb, int(row.split()[1]))
            time.sleep(0.5)

    threads = [threading.Thread(target=f, daemon=True) for f in (read, sample)]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    threads[0].join()
    return {
        "seconds": time.perf_counter() - start,
        "status": proc.returncode,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "map_mb": map_kb / 1024,
        "lines": lines,
    }


def big_corpus(steps: int, megabytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="textgen-1g-") as tmp:
        corpus, run = Path(tmp) / "big.txt", Path(tmp) / "run"
        t = time.perf_counter()
        make_big_corpus(corpus, megabytes << 20)
        size = corpus.stat().st_size
        print(f"generated {size / 1e9:.2f} GB in {time.perf_counter() - t:.0f} s ({corpus})")
        common = ["--sample-len", "0", "--device", "cpu"]
        base = Path(tmp) / "base"
        runs = (
            ("baseline: nietzsche.txt in memory", [str(NIETZSCHE), "--out", str(base), "--steps", str(steps)]),
            ("large corpus, new run", [str(corpus), "--out", str(run), "--steps", str(steps)]),
            ("large corpus, --resume", [str(corpus), "--out", str(run), "--steps", str(2 * steps), "--resume"]),
        )
        for label, args in runs:
            r = run_measured(["train", *args, *common])
            print(f"\n{label}: exit {r['status']}, {r['seconds']:.0f} s")
            for at, line in r["lines"]:
                print(f"  [{at:6.1f} s] {line}")
            verdict = "ok" if r["peak_rss_mb"] <= TARGET_RSS_MB else "over"
            print(
                f"  peak RSS {r['peak_rss_mb']:.0f} MB (target ≤ {TARGET_RSS_MB}: {verdict}); "
                f"token map resident: up to {r['map_mb']:.1f} MB"
            )
        tokens = run / "tokens.u8"
        print(f"\ntoken file {tokens.name}: {tokens.stat().st_size / 1e9:.2f} GB for {size / 1e9:.2f} GB of text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=positive_int, default=60, help="steps per throughput run (default 60)")
    parser.add_argument("--repeats", type=positive_int, default=2, help="throughput runs per configuration (default 2)")
    parser.add_argument("--big-steps", type=positive_int, default=5, help="steps on the large corpus (default 5)")
    parser.add_argument(
        "--big-mb", type=positive_int, default=1024, help="size of the large corpus in MiB (default 1024)"
    )
    parser.add_argument("--only", choices=("throughput", "big", "memory"), help="run one part")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="throughput on CPUs or GPUs (default cpu)"
    )
    parser.add_argument("--corpus", type=Path, default=NIETZSCHE, help=f"throughput corpus (default {NIETZSCHE})")
    parser.add_argument(
        "--memory-batch",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"streams in the memory stages (default {DEFAULT_BATCH_SIZE}; 1 shows what does not grow with the batch)",
    )
    parser.add_argument(
        "--torch-dropout", action="store_true", help="memory stages with torch's F.dropout instead of textgen's masks"
    )
    args = parser.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average now: {os.getloadavg()[0]:.2f}")
    if args.only in (None, "throughput"):
        import torch

        if args.device == "cuda":
            print(f"GPU: {torch.cuda.get_device_name()} × {torch.cuda.device_count()}; torch {torch.__version__}")
        print(f"\ntraining throughput, default model, {args.steps} steps, timed from step {WARM_STEPS}:")
        configs = throughput_configs(args.device, torch.cuda.device_count() if args.device == "cuda" else 0)
        best: dict[Throughput, dict] = {}
        for _ in range(args.repeats):
            for run in configs:
                r = throughput(run, args.steps, args.corpus)
                if run not in best or r["chars_per_s"] > best[run]["chars_per_s"]:
                    best[run] = r
        base = best[configs[0]]["chars_per_s"]
        for run, r in best.items():
            print(
                f"  {run.label()}: {r['chars_per_s']:9,.0f} chars/s "
                f"({r['ms_per_step']:.1f} ms/step, {r['chars_per_s'] / base:.2f}× the first row)"
            )
        print(f"load average now: {os.getloadavg()[0]:.2f}")
    if args.only in (None, "memory"):
        print(
            "\nwhere a training process's memory goes (default model, Nietzsche, a fresh interpreter, "
            f"batch {args.memory_batch}×{DEFAULT_SEQ_LEN}{', torch F.dropout' if args.torch_dropout else ''}):"
        )
        memory_stages(args.memory_batch, args.torch_dropout)
    if args.only in (None, "big"):
        print(f"\nlarge corpus ({args.big_mb} MiB), {args.big_steps} steps:")
        big_corpus(args.big_steps, args.big_mb)


if __name__ == "__main__":
    main()
