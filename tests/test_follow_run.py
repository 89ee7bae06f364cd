"""Watching a training run from the REPL: the watcher's change detection, and a live REPL that announces (and with
--follow switches to) a new best model that another process writes into the run folder."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Terminal, spawn_repl, write_random_checkpoint

from repl.app import piped
from repl.commands import REGISTRY
from repl.follow import Follower
from repl.render import make_console
from repl.session import Session
from textgen_core import checkpoint
from textgen_core.checkpoint import CheckpointMeta, save
from textgen_core.sampling import SamplingSettings
from textgen_core.watch import CheckpointWatcher

#: The second model's vocabulary: every character it generates is one of these, which the first model's vocabulary
#: (pseudo-English) mostly lacks, so its output tells which model wrote it.
NEW_VOCAB = "xyz\n"


def rewrite(path: Path, *, step: int, val: float, text: str | None = None) -> None:
    """Write a new best into `path` as a run does (atomically), with this step and val bpc."""
    tmp = path.with_name("staging.safetensors")
    write_random_checkpoint(tmp, text=text, seed=step)
    ckpt = checkpoint.load(tmp)
    meta = CheckpointMeta(config=ckpt.meta.config, vocab=ckpt.vocab, step=step, val_bpc=val)
    save(path, ckpt.tensors, meta)
    tmp.unlink()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    write_random_checkpoint(folder / "model.safetensors")  # step 100, val 2.5
    return folder


def test_the_watcher_reports_a_changed_file_once(run: Path) -> None:
    path = run / "model.safetensors"
    watcher = CheckpointWatcher(checkpoint.load(path))
    assert watcher.poll() is None  # nothing changed
    rewrite(path, step=200, val=2.0)
    new = watcher.poll()
    assert new is not None and (new.meta.step, new.meta.val_bpc) == (200, 2.0)
    assert watcher.poll() is None  # reported once
    os.utime(path, ns=(1, 1))  # touched, same contents: nothing new to load
    assert watcher.poll() is None


def test_an_unreadable_file_is_skipped_until_it_changes_again(run: Path) -> None:
    path = run / "model.safetensors"
    watcher = CheckpointWatcher(checkpoint.load(path))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # half a file, as a writer that does not rename leaves it
    assert watcher.poll() is None
    assert watcher.poll() is None  # not retried while it stays the same
    rewrite(path, step=300, val=1.9)
    new = watcher.poll()
    assert new is not None and new.meta.step == 300
    path.unlink()  # a run folder being cleaned up: no file is no news
    assert watcher.poll() is None


def _session(run: Path, follow: bool) -> tuple[Session, io.StringIO]:
    out = io.StringIO()
    session = Session(
        checkpoint.load(run),
        make_console(out, color=False),
        settings=SamplingSettings(),
        length=30,
        dispatch=REGISTRY.dispatch,
    )
    session.follow = follow
    return session, out


@pytest.mark.parametrize("follow", [False, True])
def test_piped_input_hears_of_a_new_best_between_lines(run: Path, follow: bool) -> None:
    session, out = _session(run, follow)

    def lines() -> Iterator[str]:
        yield "/len 30\n"
        rewrite(run / "model.safetensors", step=1_200, val=1.846, text=NEW_VOCAB * 10)
        yield "xy\n"

    piped(session, lines(), Follower(session))
    said = out.getvalue()
    assert "new best in run: step 1,200, val 1.846 bits/char (was 2.500 at step 100)" in said
    assert session.loaded.checkpoint.meta.step == (1_200 if follow else 100)
    assert ("switched to it" in said) == follow and ("/load" in said) != follow
    assert "@ step 1,200 (following)" in session.toolbar() if follow else "@ step 100" in session.toolbar()
    generated = "".join(t.char for t in session.transcript[-1].tokens)
    assert set(generated) <= set(NEW_VOCAB) if follow else not set(generated) <= set(NEW_VOCAB)


def test_follow_command_switches_and_refuses_other_values(run: Path) -> None:
    session, out = _session(run, False)
    session.submit("/follow on")
    assert session.follow and "follow  on" in out.getvalue()
    session.submit("/follow maybe")
    assert session.follow and "/follow: give on or off, not 'maybe'" in out.getvalue()


def test_a_live_repl_announces_a_new_best_written_by_another_process(run: Path, tmp_path: Path) -> None:
    child = spawn_repl(run, tmp_path)
    try:
        term = Terminal(child)
        term.wait_for("model run @ step 100")  # the toolbar: the prompt is up
        rewrite(run / "model.safetensors", step=1_200, val=1.846)
        term.wait_for("new best in run: step 1,200, val 1.846 bits/char (was 2.500 at step 100) — /load", timeout=5)
        term.wait_for("model run @ step 100")  # announced only: the loaded model stays
    finally:
        child.close(force=True)


def test_with_follow_the_next_turn_generates_from_the_new_model(run: Path, tmp_path: Path) -> None:
    child = spawn_repl(run, tmp_path, length=60, args=("--follow", "--seed", "1"))
    try:
        term = Terminal(child)
        term.wait_for("(following)")
        rewrite(run / "model.safetensors", step=1_200, val=1.846, text=NEW_VOCAB * 10)
        term.wait_for("— switched to it", timeout=5)
        term.wait_for("model run @ step 1,200 (following)")
        term.command("xy", " chars · ")  # the seed, then 60 generated characters, then the stats line
        generated = term.seen[term.seen.rfind("xy") + 2 : term.seen.rfind("60 chars · ")]
        assert set(generated.replace("\r", "").replace("\n", "")) <= set(NEW_VOCAB), generated
        assert len(generated.replace("\r", "").replace("\n", "")) >= 50  # line breaks may be generated characters
    finally:
        child.close(force=True)
