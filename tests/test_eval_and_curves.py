"""`textgen eval`'s modes and per-character records, and the learning curve that `textgen info` and /info draw
from a run's metrics.jsonl (the data is tested here, not the drawing)."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import TINY_TRAIN, assert_one_line_error, make_text, run_cli
from rich.console import Console

from repl.bars import CharsBar
from textgen_core import scoring
from textgen_core.runfolder import read_metrics


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    # Long enough for several parallel streams (`score_streams`), with a character to skip.
    assert scoring.score_streams(6_000) >= 2
    path.write_text(make_text(6_000, seed=7) + "€", encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", [[], ["--exact"]])
def test_jsonl_records_add_up_to_the_reported_total(gen_checkpoint: Path, text_file: Path, mode, tmp_path: Path):
    records_file = tmp_path / "chars.jsonl"
    proc = run_cli("eval", "-c", str(gen_checkpoint), str(text_file), "--json", "--jsonl", str(records_file), *mode)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    records = [json.loads(line) for line in records_file.read_text(encoding="utf-8").splitlines()]
    assert report["exact"] == bool(mode) and report["unknown"] == {"€": 1}
    assert len(records) == report["chars"] == len(text_file.read_text(encoding="utf-8")) - 1
    assert [r["index"] for r in records] == list(range(len(records)))
    assert "".join(r["char"] for r in records) == text_file.read_text(encoding="utf-8")[:-1]
    assert sum(r["bits"] for r in records) == pytest.approx(report["total_bits"], rel=1e-9)
    assert all(r["bits"] == pytest.approx(-math.log2(r["prob"]), rel=1e-6) for r in records[:200])
    assert set(records[0]) == {"char", "index", "prob", "bits"}


def test_jsonl_to_stdout_keeps_the_summary_on_stderr(gen_checkpoint: Path, text_file: Path) -> None:
    proc = run_cli("eval", "-c", str(gen_checkpoint), str(text_file), "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    chars = len(text_file.read_text(encoding="utf-8")) - 1  # all but the unknown €
    assert len(lines) == chars and all(json.loads(line)["index"] == i for i, line in enumerate(lines))
    assert "bits/char" in proc.stderr and f"over {chars:,} characters" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--json", "--jsonl", "-"], "give --jsonl a file name"),
        (["--jsonl", "{tmp}"], "is a folder"),
        (["--jsonl", "{tmp}/no/such/folder/x.jsonl"], "does not exist"),
        (["--exact=yes"], "--exact"),
    ],
)
def test_eval_flag_errors_are_one_line(gen_checkpoint: Path, text_file: Path, tmp_path: Path, args, needle) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_one_line_error(run_cli("eval", "-c", str(gen_checkpoint), str(text_file), *args), needle)


def test_the_progress_bar_shows_only_on_a_terminal_and_only_after_the_delay() -> None:
    def shown(terminal: bool, delay: float) -> str:
        out = io.StringIO()
        with CharsBar(Console(file=out, force_terminal=terminal, width=100), "scoring", delay=delay) as bar:
            for done in range(0, 10_001, 1_000):
                bar(done, 10_000)
        return out.getvalue()

    assert "scoring" in shown(terminal=True, delay=0)
    assert shown(terminal=True, delay=60) == ""  # a short text is scored before a bar could help
    assert shown(terminal=False, delay=0) == ""  # a pipe or a log gets no bar


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny, 30-step) training run folder with three evaluations in its metrics.jsonl."""
    folder = tmp_path_factory.mktemp("curve")
    corpus = folder / "corpus.txt"
    corpus.write_text(make_text(20_000, seed=5), encoding="utf-8")
    proc = run_cli("train", str(corpus), "--out", str(folder / "run"), "--steps", "30", *TINY_TRAIN, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return folder / "run"


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_curve_is_the_runs_metrics(run: Path) -> None:
    metrics = _metrics(run)
    curve = read_metrics(run)
    assert curve is not None and curve.evaluations == len(metrics) >= 2
    assert curve.steps == [m["step"] for m in metrics]
    assert curve.val_bpc == [m["val_bpc"] for m in metrics]
    assert curve.train_bpc == [m["train_bpc"] for m in metrics]
    best = min(metrics, key=lambda m: m["val_bpc"])
    assert (curve.best_step, curve.best_val_bpc) == (best["step"], best["val_bpc"])
    info = json.loads(run_cli("info", "-c", str(run), "--json").stdout)
    assert info["curve"] == curve.to_dict()
    shown = run_cli("info", "-c", str(run)).stdout
    assert f"{len(metrics)} evaluations plotted" in shown and f"best val {best['val_bpc']:.3f}" in shown


def test_a_log_being_written_or_rewound_by_a_resume_reads_as_the_run_stands(tmp_path: Path) -> None:
    lines = [
        {"step": 10, "train_bpc": None, "val_bpc": 4.0},
        {"step": 20, "train_bpc": 3.5, "val_bpc": 3.0},
        {"step": 30, "train_bpc": 3.0, "val_bpc": 3.2},
        {"step": 20, "train_bpc": 3.4, "val_bpc": 2.9},  # resumed from step 10's state: 20 and 30 again
        {"step": 30, "train_bpc": 2.9, "val_bpc": 2.8},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines) + "not json\n" + '{"step": 40, "val_'  # damage, a half line
    (tmp_path / "metrics.jsonl").write_text(text)
    curve = read_metrics(tmp_path)
    assert curve is not None
    assert (curve.steps, curve.train_bpc, curve.val_bpc) == ([10, 20, 30], [None, 3.4, 2.9], [4.0, 2.9, 2.8])
    assert (curve.best_step, curve.best_val_bpc) == (30, 2.8)
    (tmp_path / "metrics.jsonl").write_text('{"step": 5, "val_')
    assert read_metrics(tmp_path) is None and read_metrics(tmp_path / "nowhere") is None


def test_a_checkpoint_file_without_its_run_folder_has_no_metrics(run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "copy.safetensors"
    shutil.copy(run / "model.safetensors", alone)
    assert json.loads(run_cli("info", "-c", str(alone), "--json").stdout)["curve"] is None
    assert "metrics  none (no metrics.jsonl" in run_cli("info", "-c", str(alone)).stdout
    repl = run_cli("repl", "-c", str(alone), input="/info\n")
    assert "metrics  none (no metrics.jsonl" in repl.stdout and "evaluations plotted" not in repl.stdout
    repl = run_cli("repl", "-c", str(run), input="/info\n")
    assert "evaluations plotted" in repl.stdout
