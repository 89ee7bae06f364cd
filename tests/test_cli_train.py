"""`textgen train` and `textgen info` as users run them: a subprocess, exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_TRAIN, assert_one_line_error, make_text, run_cli


def test_help_lists_every_subcommand_with_an_example():
    proc = run_cli("--help")
    assert proc.returncode == 0
    names = ("repl", "train", "sample", "eval", "info", "cells", "import", "copies", "versus")
    for name in names:
        assert f"  {name} " in proc.stdout
    assert proc.stdout.count("e.g. textgen") == len(names)


def test_train_then_info_and_resume(corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        str(corpus_file),
        "--out",
        str(out),
        "--steps",
        "20",
        *TINY_TRAIN,
        "--weight-drop",
        "0.2",
        "--embed-dropout",
        "0.1",
        "--ema",
        "0.9",
    )
    assert proc.returncode == 0, proc.stderr
    assert "eval step 20" in proc.stdout and "T=0.2" in proc.stdout and "T=1.2" in proc.stdout
    assert (out / "model.safetensors").is_file() and (out / "resume.safetensors").is_file()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20]

    info = json.loads(run_cli("info", "-c", str(out), "--json").stdout)
    assert info["step"] == 20 and info["best_step"] in (10, 20)
    assert info["config"]["hidden_size"] == 32 and info["config"]["weight_drop"] == 0.2
    assert "--ema 0.9" in info["command"]
    assert info["params"] > 0 and info["val_bpc"] == pytest.approx(min(m["val_bpc"] for m in metrics))
    assert info["corpus"][0]["name"] == "corpus.txt"

    # --steps is the run's total budget: a resumed run continues to step 30, not 50.
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "30", "--resume", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "resuming at step 20" in proc.stdout
    assert json.loads(run_cli("info", "-c", str(out), "--json").stdout)["step"] == 30

    # A second plain `train` into the same folder would overwrite the run: refused. So it is when only the
    # trained model is left (its resume file deleted to save space): the new run's first evaluation would replace it.
    assert_one_line_error(run_cli("train", str(corpus_file), "--out", str(out), "--steps", "5"), "--resume")
    model_only = tmp_path / "model_only"
    model_only.mkdir()
    (model_only / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    proc = run_cli("train", str(corpus_file), "--out", str(model_only), "--steps", "5", *TINY_TRAIN)
    assert_one_line_error(proc, "already holds a trained model")
    assert (model_only / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    # A resume with another model size is refused, and so is another corpus.
    assert_one_line_error(
        run_cli("train", str(corpus_file), "--out", str(out), "--steps", "40", "--resume", "--hidden-size", "64"),
        "--hidden-size 64 differs",
    )
    other = tmp_path / "other.txt"
    other.write_text(make_text(30_000, seed=5))
    assert_one_line_error(
        run_cli("train", str(other), "--out", str(out), "--steps", "40", "--resume"), "corpus differs"
    )


def test_info_human_readable(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", str(corpus_file), "--out", str(out), "--steps", "10", *TINY_TRAIN).returncode == 0
    proc = run_cli("info", "-c", str(out / "model.safetensors"))
    assert proc.returncode == 0
    assert "2×32 LSTM" in proc.stdout and "val bpc" in proc.stdout and "corpus.txt" in proc.stdout


def _write(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda d: d / "missing.txt", ("missing.txt", "no such file")),
        (lambda d: d, ("is a folder",)),
        (lambda d: _write(d, "empty.txt", b""), ("empty",)),
        (lambda d: _write(d, "short.txt", b"just a few words\n" * 20), ("too short", "--batch-size")),
        (lambda d: _write(d, "bin.txt", b"text\x00\x01\x02" * 100), ("NUL byte at byte offset 4", "binary")),
        (lambda d: _write(d, "latin.txt", "caf\u00e9 ".encode("latin-1") * 100), ("byte offset 3", "--encoding")),
        (lambda d: _write(d, "wide.txt", "".join(chr(0x4E00 + i) for i in range(1200)).encode()), ("--max-vocab",)),
    ],
    ids=["missing", "folder", "empty", "short", "binary", "not-utf8", "too-many-chars"],
)
def test_bad_corpus_is_one_line_exit_2_and_writes_nothing(tmp_path, make, needles):
    src = tmp_path / "src"
    src.mkdir()
    corpus = make(src)
    out = tmp_path / "out"
    proc = run_cli("train", str(corpus), "--out", str(out), "--steps", "5")
    assert_one_line_error(proc, *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--steps", "0"),
        ("--steps", "-3"),
        ("--hidden-size", "0"),
        ("--lr", "-1"),
        ("--lr", "nan"),
        ("--dropout", "1.5"),
        ("--val-fraction", "1"),
        ("--batch-size", "x"),
        ("--minutes", "inf"),
    ],
)
def test_bad_numbers_are_rejected(corpus_file, tmp_path, flag, value):
    proc = run_cli("train", str(corpus_file), "--out", str(tmp_path / "o"), flag, value)
    assert_one_line_error(proc, flag)


def test_encoding_flag_reads_latin1(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(make_text(30_000).replace("spirit", "esprit\u00e9").encode("latin-1"))
    out = tmp_path / "run"
    proc = run_cli("train", str(p), "--out", str(out), "--steps", "2", *TINY_TRAIN, "--encoding", "latin-1")
    assert proc.returncode == 0, proc.stderr
    assert "\u00e9" in json.loads(run_cli("info", "-c", str(out), "--json").stdout)["vocab"]


def test_fine_tune_the_bundled_model_on_your_own_text(corpus_file, tmp_path):
    """`--init bundled` as the README shows it: the run keeps the bundled model's size and vocabulary."""
    out = tmp_path / "mine"
    small = ["--batch-size", "2", "--seq-len", "16", "--eval-every", "2", "--sample-len", "0", "--device", "cpu"]
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--init", "bundled", "--steps", "2", *small)
    assert proc.returncode == 0, proc.stderr
    mine, bundled = (json.loads(run_cli("info", *c, "--json").stdout) for c in (["-c", str(out)], []))
    assert mine["config"] == bundled["config"] and mine["vocab"] == bundled["vocab"] and mine["step"] == 2
    assert "--init bundled" in mine["command"]
    assert mine["init"]["checkpoint"] == "bundled" and mine["init"]["step"] == bundled["step"]
    shown = run_cli("info", "-c", str(out)).stdout
    assert f"after the {bundled['step']:,} of the checkpoint it started from" in shown
    assert "started from  bundled" in shown and bundled["command"] in shown.replace("\n", " ")

    assert_one_line_error(
        run_cli("train", str(corpus_file), "--out", str(out), "--init", "bundled", "--resume"), "drop it when resuming"
    )
    assert_one_line_error(
        run_cli("train", str(corpus_file), "--out", str(tmp_path / "x"), "--init", str(tmp_path / "nope")),
        "no such checkpoint",
    )
    assert not (tmp_path / "x").exists()
