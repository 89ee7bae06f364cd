"""`textgen sample` and `textgen eval` as users run them: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli


def sample(ckpt: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("sample", "-c", str(ckpt), *args)


def test_sample_streams_while_generating(gen_checkpoint: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "repl.cli", "sample", "-c", str(gen_checkpoint), "--len", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        first = proc.stdout.read1(4096) if proc.stdout else b""  # returns as soon as the first flush arrives
        assert first, "no output before the sample finished"
        time.sleep(0.2)
        assert proc.poll() is None  # still generating: output was streamed, not written at the end
    finally:
        proc.kill()
        proc.wait()


def test_same_seed_same_output_and_prompt_is_echoed(gen_checkpoint: Path) -> None:
    a = sample(gen_checkpoint, "--prompt", "The will", "--len", "200", "--seed", "3")
    b = sample(gen_checkpoint, "--prompt", "The will", "--len", "200", "--seed", "3")
    c = sample(gen_checkpoint, "--prompt", "The will", "--len", "200", "--seed", "4")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout != c.stdout
    assert a.stdout.startswith("The will") and len(a.stdout) == len("The will") + 200 + 1


def test_several_temperatures_give_labelled_samples(gen_checkpoint: Path) -> None:
    out = sample(gen_checkpoint, "--temp", "0.2", "0.5", "1.0", "1.2", "--len", "50", "--seed", "1", "--top-k", "9")
    assert out.returncode == 0, out.stderr
    labels = [line for line in out.stdout.splitlines() if line.startswith("── sample")]
    assert labels == [f"── sample {i}/4 · T={t} top-k=9 ──" for i, t in enumerate(["0.2", "0.5", "1", "1.2"], 1)]


def test_jsonl_has_one_object_per_character(gen_checkpoint: Path) -> None:
    out = sample(gen_checkpoint, "--temp", "0.5", "1.0", "--len", "30", "--seed", "2", "--jsonl")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 60
    assert [r["sample"] for r in records] == [0] * 30 + [1] * 30
    assert {r["temperature"] for r in records} == {0.5, 1.0}
    for r in records:
        assert len(r["char"]) == 1 and isinstance(r["index"], int)
        assert 0 < r["prob"] <= 1 and 0 < r["sampled_prob"] <= 1 and r["entropy"] >= 0


def test_greedy_is_deterministic_without_a_seed(gen_checkpoint: Path) -> None:
    a = sample(gen_checkpoint, "--greedy", "--len", "40")
    b = sample(gen_checkpoint, "--temp", "0", "--len", "40")
    assert a.returncode == 0 and a.stdout == b.stdout


def test_prompt_file_and_unknown_prompt_characters(gen_checkpoint: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("thé will ©", encoding="utf-8")
    out = sample(gen_checkpoint, "--prompt-file", str(prompt), "--len", "20", "--seed", "0")
    assert out.returncode == 0
    assert out.stderr.count("\n") == 1 and "warning" in out.stderr and "'é'" in out.stderr and "'©'" in out.stderr
    assert out.stdout.startswith("thé will ©")


@pytest.mark.parametrize(
    "args",
    [
        ["--temp", "-1"],
        ["--temp", "nan"],
        ["--temp", "inf"],
        ["--temp", "hot"],
        ["--len", "0"],
        ["--top-k", "0"],
        ["--top-p", "1.5"],
        ["--seed", "-1"],
        ["--greedy", "--temp", "1"],
        ["--prompt", "x", "--prompt-file", "y"],
        ["--prompt-file", "/nonexistent/prompt.txt"],
        ["-c", "/nonexistent/model.safetensors"],
    ],
)
def test_bad_sample_values_exit_2_with_one_line(gen_checkpoint: Path, args: list[str]) -> None:
    out = run_cli("sample", "-c", str(gen_checkpoint), *args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "error" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    out = run_cli("sample", "-c", str(bad))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_eval_reports_bpc_and_unknown_characters(gen_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("the will to power ©\n" * 20, encoding="utf-8")
    out = run_cli("eval", "-c", str(gen_checkpoint), str(path))
    assert out.returncode == 0, out.stderr
    assert "bits/char" in out.stdout and "'©' ×20" in out.stdout
    report = json.loads(run_cli("eval", "-c", str(gen_checkpoint), str(path), "--json").stdout)
    assert report["chars"] == 19 * 20 and report["unknown_chars"] == 20 and report["bpc"] > 0


@pytest.mark.parametrize("content", [b"\xff\xfe bad utf-8", b"text\x00binary", b"", "©©©".encode()])
def test_bad_eval_input_exit_2_with_one_line(gen_checkpoint: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    out = run_cli("eval", "-c", str(gen_checkpoint), str(path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and str(path) in out.stderr and "Traceback" not in out.stderr


def test_eval_missing_file_and_bad_encoding(gen_checkpoint: Path, tmp_path: Path) -> None:
    for args in (["/nonexistent.txt"], [str(gen_checkpoint), "--encoding", "klingon"], ["x", "--split", "test"]):
        out = run_cli("eval", "-c", str(gen_checkpoint), *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
