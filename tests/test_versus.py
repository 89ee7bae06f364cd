"""Two checkpoints side by side: `textgen versus` agrees with `textgen eval` for each model, lists where they differ
most, and refuses a model it cannot load in one line; `/versus` continues the seed with both (the same random
numbers) in a terminal, and a second model that fails to load leaves the session going."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import Terminal, assert_one_line_error, make_text, run_cli, spawn_repl, write_random_checkpoint

from textgen_core.checkpoint import load
from textgen_core.sampling import SamplingSettings


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two random models (B over other characters, lower-case only) and a text of 8,000 characters: long enough
    that both score it in parallel streams, as eval does."""
    a = write_random_checkpoint(tmp_path / "a.safetensors", seed=1)
    b = write_random_checkpoint(tmp_path / "b.safetensors", seed=2, text=make_text(5_000).lower() + "xyz")
    text = tmp_path / "text.txt"
    text.write_text(make_text(8_000, seed=4), encoding="utf-8")
    return a, b, text


def test_versus_reports_what_eval_reports_for_each_model(pair: tuple[Path, Path, Path]) -> None:
    a, b, text = pair
    proc = run_cli("versus", "-c", str(a), "--against", str(b), str(text), "--json", "--top", "5")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for model, mine in zip((a, b), got["models"], strict=True):
        evaluated = run_cli("eval", "-c", str(model), str(text), "--json")
        assert evaluated.returncode == 0, evaluated.stderr
        reference = json.loads(evaluated.stdout)
        assert abs(mine["bpc"] - reference["bpc"]) < 0.002
        assert mine["chars"] == reference["chars"] and mine["unknown_chars"] == reference["unknown_chars"]
    assert got["models"][1]["unknown_chars"] > 0  # B knows no capitals: only characters both know are compared
    differences = got["differences"]
    assert len(differences) == 5 and [d["index"] for d in differences] == sorted(d["index"] for d in differences)
    source = text.read_text(encoding="utf-8")
    for d in differences:
        assert (source[d["index"]] == d["char"] and d["char"].islower()) or not d["char"].isalpha()
        assert abs(d["gap"] - (d["a_bits"] - d["b_bits"])) < 1e-9
    plain = run_cli("versus", "-c", str(a), "--against", str(b), str(text), "--top", "3")
    assert plain.returncode == 0 and "is better by" in plain.stdout and plain.stdout.count("\n") == 7


def test_versus_refuses_a_model_it_cannot_load_in_one_line(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, text = pair
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 40)
    assert_one_line_error(run_cli("versus", "-c", str(a), "--against", str(broken), str(text)), "broken.safetensors")
    missing = run_cli("versus", "-c", str(a), "--against", str(tmp_path / "nope"), str(text))
    assert_one_line_error(missing, "no such checkpoint")


def test_versus_in_a_terminal_shows_both_texts_where_they_differ_and_the_bits(tmp_path: Path) -> None:
    """Two models over the same characters (a fine-tune keeps its model's): both texts coloured, side by side on a
    wide terminal; a model that fails to load is one line and the session goes on."""
    a = write_random_checkpoint(tmp_path / "a.safetensors", seed=1)
    b = write_random_checkpoint(tmp_path / "tuned.safetensors", seed=2)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model")
    child = spawn_repl(a, tmp_path, length=60, cols=140, args=("--seed", "3"))
    term = Terminal(child)
    try:
        term.wait_for("type /help")
        term.command("the will to ", "bits/char")
        out = term.command(f"/versus {b}", "on B's text")
        term.wait_for("B · tuned")
        assert "A · a @ step 100" in term.seen and "B · tuned @ step 100" in term.seen
        assert "first difference at character" in term.seen and "seed 3" in term.seen
        assert "\x1b[" in out  # coloured
        term.command(f"/versus {broken}", "/versus:")
        term.wait_for("broken.safetensors")
        term.command("/temp", "temperature")  # the session goes on
    finally:
        child.close(force=True)


def session_on(path: Path, **settings: object):
    from repl.commands import REGISTRY
    from repl.render import make_console
    from repl.session import Session

    out = io.StringIO()
    console = make_console(out, color=False)
    session = Session(load(path), console, settings=SamplingSettings(**settings), length=50, dispatch=REGISTRY.dispatch)
    return session, out


def test_the_same_model_twice_writes_the_same_text_and_run_reloads_the_file(tmp_path: Path) -> None:
    """The same random numbers: one model against itself writes the same text; `run` is the newest weights the
    run wrote into the loaded model's file."""
    path = write_random_checkpoint(tmp_path / "run.safetensors", seed=1)
    session, out = session_on(path)
    session.submit("/versus run")
    assert "type a seed first" in out.getvalue()
    session.submit("the ")
    session.submit(f"/versus {path}")
    assert "the two texts are the same" in out.getvalue()
    write_random_checkpoint(path, seed=5)  # the run saved a new best
    session.submit("/vs run")
    assert out.getvalue().count("first difference at character") == 1
    session.submit("/versus bundled")  # another vocabulary altogether
    assert out.getvalue().count("bits/char after the seed") == 3
    other, other_out = session_on(write_random_checkpoint(tmp_path / "other.safetensors"))
    other.loaded.checkpoint.path = tmp_path / "gone.safetensors"  # a model no run writes any more
    other.submit("the ")
    other.submit("/versus run")
    assert "/versus: the loaded model is not a training run's checkpoint" in other_out.getvalue()
