"""Faults during training lose nothing: SIGKILL at random moments, a disk that fills up, a loss that becomes NaN.

The kill test forks trainings from one process that imported torch once (a fresh interpreter per trial would
spend seconds importing it), kills each at a random moment after it has made progress, and checks what a user
would rely on: the best checkpoint loads, and ``--resume`` continues from the step the resume state holds.
Faults that need the real command line are injected with a ``sitecustomize`` module, so `textgen` itself runs
unchanged in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, TINY_TRAIN, assert_one_line_error, injected_pythonpath, run_cli

from textgen_core import checkpoint
from textgen_core.errors import TextgenError
from textgen_core.runfolder import run_step

#: The tiny model of the kill trials: a step, an evaluation and two atomic writes take tens of milliseconds, so
#: a random delay lands anywhere in that cycle, writes included.
KILL_TRAIN = [
    "--hidden-size", "16", "--embed-dim", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "16",
    "--eval-every", "1", "--sample-len", "0", "--device", "cpu", "--precision", "fp32",
]  # fmt: skip
TRIALS = 12


def _one_cpu() -> None:
    """Pin this process (and the trainings it starts) to one CPU, so training uses one thread (`cpu_threads`).

    On a shared machine two OpenMP threads slow a tiny model's steps a hundredfold when another process holds
    one of the cores (measured: 6 steps in 20 s instead of 0.2 s), and these tests must stay fast."""
    if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere the tests run, only slower on a busy machine
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """In-process trainers use one thread too (see `_one_cpu`); torch's setting is restored for other tests."""
    import torch

    from textgen_core.training import hardware

    threads = torch.get_num_threads()
    monkeypatch.setattr(hardware, "cpu_threads", lambda: 1)
    yield
    torch.set_num_threads(threads)


#: Prepended to every injected sitecustomize: the CLI subprocess trains on one CPU (see `_one_cpu`).
ONE_CPU = """
import os
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
"""


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the training made no progress")
        time.sleep(0.01)


def kill_trials(corpus: str, out: str, trials: int, seed: int) -> None:
    """The kill harness, run in a subprocess by the test; prints one JSON list, a record per trial.

    Trial k forks a `textgen train` (with --resume after the first), waits until the run's resume state moved
    past where it was, sleeps a random 0–200 ms and sends SIGKILL. Then, as a user would, it loads the best
    checkpoint and reads the resume step. A last trial resumes without a kill and must finish two steps on.
    """
    import textgen_core.training.loop  # noqa: F401  torch, once, before forking; this process never runs a torch op
    from repl.cli import main

    os.environ["COLUMNS"] = "500"  # rich wraps at 80 columns in a file: keep each message on one line
    _one_cpu()
    rng = random.Random(seed)
    records = []
    for trial in range(trials + 1):
        final = trial == trials
        before = run_step(out)
        steps = before + 2 if final and before is not None else 100_000
        argv = ["train", corpus, "--out", out, "--steps", str(steps), *KILL_TRAIN]
        if before is not None:
            argv.append("--resume")
        log = Path(out).parent / f"trial{trial}.log"
        pid = os.fork()
        if pid == 0:  # the child: a real `textgen train`, its output line-buffered so that nothing is lost to a kill
            code = 99
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                code = main(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        delay = None
        if not final:
            try:
                _wait(lambda b=before: (run_step(out) or 0) > (b or 0), timeout=60)
                delay = rng.uniform(0, 0.2)
                time.sleep(delay)
            finally:  # also when the wait failed: never leave a training running behind the test
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        record: dict = {
            "trial": trial,
            "before": before,
            "delay": delay,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "run_step": run_step(out),
        }
        try:
            record["loaded_step"] = checkpoint.load(out).meta.step
        except TextgenError as e:
            record["load_error"] = str(e)
        text = log.read_text(encoding="utf-8", errors="replace")
        found = re.search(r"resuming at step\s+(\d+)", text)
        record["resumed_from"] = int(found.group(1)) if found else None
        record["log"] = text[-400:]
        records.append(record)
    print(json.dumps(records))


def test_sigkill_at_random_moments_never_loses_the_last_checkpoint(corpus_file: Path, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    out = tmp_path / "run"
    code = f"import test_hardening_training as h; h.kill_trials({str(corpus_file)!r}, {str(out)!r}, {TRIALS}, {seed})"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(proc.stdout.splitlines()[-1])
    why = f"(seed {seed}) {json.dumps(records, indent=1)[-3000:]}"
    *killed, final = records
    assert len(killed) == TRIALS
    for i, r in enumerate(killed):
        assert r["signal"] == signal.SIGKILL, why  # killed mid-run, not finished or crashed
        assert "load_error" not in r and r["loaded_step"] >= 1, why  # the best checkpoint always loads
        assert r["run_step"] > (r["before"] or 0), why  # each trial made progress before its kill
        if i:  # --resume continued from exactly the step the previous kill left in the resume state
            assert r["resumed_from"] == killed[i - 1]["run_step"], why
    assert final["exit"] == 0 and final["resumed_from"] == killed[-1]["run_step"], why
    assert final["run_step"] == killed[-1]["run_step"] + 2 and "load_error" not in final, why
    # Kills mid-write leave temporary files; the next write of the same file removes those of dead processes (the
    # resume state is written at every step; the weights only when validation improves, so theirs may wait).
    assert not list(out.glob(".resume.safetensors.tmp-*")), why


# ---- a disk that fills up -------------------------------------------------------------------------------------------


def run_cli_injected(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """`textgen ARGS` in a subprocess with `code` run at interpreter start (as a sitecustomize module), to inject a
    fault into the real program."""
    return run_cli(*args, env={"PYTHONPATH": injected_pythonpath(tmp_path / "inject", ONE_CPU + code)})


def _run_at_step_10(corpus: Path, out: Path) -> dict[str, bytes]:
    """A run folder with a good checkpoint and resume state at step 10; returns its files' bytes."""
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    tiny = {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "batch_size": 4, "seq_len": 16, "sample_len": 0}
    config = TrainConfig(corpus=[str(corpus)], out=str(out), steps=10, eval_every=10, device="cpu", **tiny)
    assert Trainer(config).run() == "done"
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _resume_args(corpus: Path, out: Path) -> list[str]:
    return ["train", str(corpus), "--out", str(out), "--resume", "--steps", "20", "--eval-every", "1"]


DISK_FULL_ON_FSYNC = """
import errno, os
def _full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
os.fsync = _full
"""


def test_disk_full_while_saving_is_one_line_and_the_previous_checkpoint_stays(corpus_file: Path, tmp_path: Path):
    out = tmp_path / "run"
    before = _run_at_step_10(corpus_file, out)
    proc = run_cli_injected(tmp_path, DISK_FULL_ON_FSYNC, *_resume_args(corpus_file, out))
    assert_one_line_error(proc, "No space left on device", "the previous file is intact", "free space and retry")
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after.keys() == before.keys()  # no temporary file left behind
    assert after["model.safetensors"] == before["model.safetensors"]
    assert after["resume.safetensors"] == before["resume.safetensors"]
    assert checkpoint.load(out).meta.step == 10 and run_step(out) == 10


class _FillingFile:
    """A file on a disk with `room` bytes left: writes what fits, then fails like a full disk."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        self.f.write(data[: self.room])
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_write_cut_short_by_a_full_disk_keeps_both_files(corpus_file: Path, tmp_path: Path, monkeypatch) -> None:
    """Half the bytes written, then ENOSPC: for the weights and for the resume state, the old file stays whole."""
    from textgen_core import atomic
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    out = tmp_path / "run"
    before = _run_at_step_10(corpus_file, out)
    trainer = Trainer(TrainConfig(corpus=[str(corpus_file)], out=str(out)), resume=True)
    real_open = open
    monkeypatch.setattr(atomic, "open", lambda *a, **k: _FillingFile(real_open(*a, **k), 1000), raising=False)
    with pytest.raises(TextgenError, match=r"No space left on device.*previous file is intact"):
        trainer.save_best(1.0, 0.1)
    with pytest.raises(TextgenError, match=r"No space left on device.*previous file is intact"):
        trainer.save_resume()
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert checkpoint.load(out).meta.step == 10


def test_a_full_disk_for_the_metrics_log_is_one_line(corpus_file: Path, tmp_path: Path, monkeypatch) -> None:
    from textgen_core import atomic
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    out = tmp_path / "run"
    _run_at_step_10(corpus_file, out)
    trainer = Trainer(TrainConfig(corpus=[str(corpus_file)], out=str(out)), resume=True)

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", full, raising=False)
    with pytest.raises(TextgenError, match=r"metrics.jsonl: could not write \(No space left on device\)"):
        trainer.evaluate(1.0)


def test_temporary_files_of_dead_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """A SIGKILL mid-write leaves ``.NAME.tmp-PID``; the next write of NAME removes it, but never the file of a
    writer still alive, nor another file's."""
    from textgen_core.atomic import atomic_write_bytes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    target = tmp_path / "model.safetensors"
    stale, live, other = (tmp_path / f".{n}.tmp-{pid}" for n, pid in [
        ("model.safetensors", dead_pid), ("model.safetensors", live_pid), ("resume.safetensors", dead_pid)
    ])  # fmt: skip
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()


LOCKED_FILES = """
import builtins, errno, os
_open = builtins.open
def _locked(file, *args, **kwargs):
    if str(file).endswith("locked.txt"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
    return _open(file, *args, **kwargs)
builtins.open = _locked
"""


def test_an_unreadable_corpus_is_one_line_and_writes_nothing(corpus_file: Path, tmp_path: Path) -> None:
    """Permission denied (injected: the tests may run as root, who reads any file) is one line naming the file."""
    locked = tmp_path / "locked.txt"
    locked.write_text(corpus_file.read_text())
    out = tmp_path / "run"
    proc = run_cli_injected(tmp_path, LOCKED_FILES, "train", str(locked), "--out", str(out), "--steps", "5")
    assert_one_line_error(proc, f"{locked}: cannot read (Permission denied); check its permissions")
    assert not out.exists()


def test_an_unwritable_run_folder_is_one_line(corpus_file: Path) -> None:
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    config = TrainConfig(corpus=[str(corpus_file)], out="/proc/textgen/run", steps=1, device="cpu", **{
        "embed_dim": 8, "hidden_size": 16, "num_layers": 1, "batch_size": 4, "seq_len": 16,
    })  # fmt: skip
    with pytest.raises(TextgenError, match="--out /proc/textgen/run: cannot create it"):
        Trainer(config).run()


# ---- a loss that becomes NaN -----------------------------------------------------------------------------------------

POISONED_WEIGHTS = """
import torch
from textgen_core.training import loop
_restore = loop.Trainer._restore
def _poisoned(self, *args):
    _restore(self, *args)
    with torch.no_grad():
        self.model.head.bias.fill_(float("nan"))
loop.Trainer._restore = _poisoned
"""


def test_nan_loss_stops_the_cli_with_one_line_and_saves_nothing(corpus_file: Path, tmp_path: Path) -> None:
    """Weights gone NaN on resume: the first step's loss is NaN; the command stops with the one line that says
    what to do, and the good checkpoint and resume state are untouched."""
    out = tmp_path / "run"
    before = _run_at_step_10(corpus_file, out)
    proc = run_cli_injected(tmp_path, POISONED_WEIGHTS, *_resume_args(corpus_file, out))
    assert_one_line_error(proc, "training diverged at step 11 (loss is nan)", "intact", "lower --lr and --resume")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_nan_weights_are_never_saved_over_a_good_checkpoint(corpus_file: Path, tmp_path: Path) -> None:
    """The last line of defence, below the divergence check: both writers refuse non-finite weights."""
    import torch

    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    out = tmp_path / "run"
    before = _run_at_step_10(corpus_file, out)
    trainer = Trainer(TrainConfig(corpus=[str(corpus_file)], out=str(out)), resume=True)
    with torch.no_grad():
        trainer.model.head.weight[0, 0] = float("inf")
    with pytest.raises(TextgenError, match=r"refusing to save .*model.safetensors: weight head.weight contains NaN"):
        trainer.save_best(1.0, 0.1)
    with pytest.raises(TextgenError, match=r"refusing to save resume state: model/head\.weight contains NaN or Inf"):
        trainer.save_resume()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_takes_a_lower_lr_as_the_divergence_message_advises(corpus_file: Path, tmp_path: Path) -> None:
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    out = tmp_path / "run"
    _run_at_step_10(corpus_file, out)
    given = TrainConfig(corpus=[str(corpus_file)], out=str(out), lr=1e-4, clip=0.5, hidden_size=999)
    resumed = Trainer(given, resume=True, explicit=frozenset({"lr", "clip"}))
    assert (resumed.config.lr, resumed.config.clip, resumed.config.hidden_size) == (1e-4, 0.5, 16)
    assert Trainer(given, resume=True).config.lr == TrainConfig(corpus=[], out="").lr  # not given: the run's own


def test_tiny_train_settings_are_valid_flags() -> None:
    """The shared tiny settings and the kill trials' parse as `textgen train` flags (a renamed flag fails here,
    not as a confusing failure of the trials)."""
    from repl.cli import build_parser

    for flags in (TINY_TRAIN, KILL_TRAIN):
        build_parser().parse_args(["train", "c.txt", "--out", "o", *flags])
