"""One process per run folder (`textgen_core.runlock`): two trainings started together into one folder, one trains
and the other says why not in one line; a run killed with SIGKILL leaves a lock file that never blocks its
`--resume`; readers of a running run (`info`, `sample`, the REPL) never wait for the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY_TRAIN, assert_one_line_error, run_cli

from textgen_core.errors import TextgenError
from textgen_core.runlock import LOCK_NAME, hold_run

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
#: A run that goes on until it is stopped, evaluating (and so saving) every 5 steps.
LONG = [*TINY_TRAIN, "--steps", "100000", "--eval-every", "5", "--sample-len", "0", "--num-layers", "1"]


def start_training(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "repl.cli", "train", str(corpus), "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


def test_two_trainings_started_together_one_trains_the_other_says_why_not(corpus_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "x"
    settings = [*TINY_TRAIN, "--steps", "40", "--sample-len", "0"]
    procs = [start_training(corpus_file, out, *settings) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    loser = next(subprocess.CompletedProcess(p.args, 2, o, e) for p, o, e in results if p.returncode == 2)
    assert_one_line_error(loser, f"--out {out}: another textgen train (process {winner.pid}) is training in this run")
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]  # one history, not two interleaved
    assert not (out / LOCK_NAME).exists()  # a finished run takes its lock file away


def test_a_run_killed_with_sigkill_resumes_at_once_and_readers_never_wait(corpus_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = start_training(corpus_file, out, *LONG)
    try:
        wait_for(out / "resume.safetensors", first)
        # While it trains: a second training and a second --resume are refused, and readers read the run.
        assert_one_line_error(
            run_cli("train", str(corpus_file), "--out", str(out), "--resume", "--steps", "5"),
            f"another textgen train (process {first.pid})",
        )
        assert_one_line_error(run_cli("train", str(corpus_file), "--out", str(out)), "is training in this run folder")
        assert run_cli("info", "-c", str(out), "--json").returncode == 0
        assert run_cli("sample", "-c", str(out), "--len", "5").returncode == 0
        repl = run_cli("repl", "-c", str(out), "--len", "5", input="the \n/quit\n")
        assert repl.returncode == 0 and "Traceback" not in repl.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out / LOCK_NAME).read_text().strip() == str(first.pid)  # left behind, stale
    resumed = run_cli("train", str(corpus_file), "--out", str(out), "--resume", "--steps", "20", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step" in resumed.stdout + resumed.stderr
    assert not (out / LOCK_NAME).exists()


def test_a_run_refused_before_it_starts_leaves_no_folder_and_no_lock(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "new" / "run"
    proc = run_cli("train", str(empty), "--out", str(out), "--steps", "1")
    assert_one_line_error(proc, "the corpus is empty")
    assert not (tmp_path / "new").exists()


def test_the_lock_is_reentrant_in_a_process_and_a_stale_file_never_blocks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text("999999999\n")  # a killed run's file: nobody holds the lock
    with hold_run(out):
        assert (out / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with hold_run(out):  # the command holds it and the trainer asks again
            pass
        assert (out / LOCK_NAME).exists()
        held = subprocess.run(
            [sys.executable, "-c", f"from textgen_core.runlock import hold_run\nwith hold_run({str(out)!r}): pass"],
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert f"another textgen train (process {os.getpid()})" in held.stderr
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_run_folder_that_cannot_be_made_or_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with (
        pytest.raises(TextgenError, match=r"--out .*plain/run: cannot create it"),
        hold_run(tmp_path / "plain" / "run"),
    ):
        pass
    with (
        pytest.raises(TextgenError, match="--out /proc/textgen/run: cannot create it"),
        hold_run(Path("/proc/textgen/run")),
    ):
        pass
