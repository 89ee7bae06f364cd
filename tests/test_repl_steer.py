"""Steering in the REPL and the CLI: /pick's keys, /fork, /tree, /go, /beam, beams in /compare, `sample --beam`,
the tree in /save's JSONL; through prompt_toolkit pipe input and the real program in a pseudo-terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pexpect
import pytest
from conftest import ANSI, Terminal, assert_one_line_error, run_cli
from prompt_toolkit.input import create_pipe_input

from textgen_core import checkpoint
from textgen_core.beam import beam_search
from textgen_core.inference import NumpyLSTM

ESC, BACKSPACE, CTRL_C = "\x1b", "\x7f", "\x03"


def picked(repl_session, keys: str, line: str = "/pick", *, before: tuple[str, ...] = ("the will",), **kw):
    """A session that ran `before`, then `line` with `keys` typed into step mode."""
    with create_pipe_input() as inp:
        s, out = repl_session(keys=inp, **kw)
        for b in before:
            s.submit(b)
        inp.send_text(keys)
        s.submit(line)
    return s, out.getvalue()


# ---- /pick ---------------------------------------------------------------------------------------------------------


def test_pick_takes_digits_draws_on_enter_types_and_keeps_the_text(repl_session) -> None:
    s, out = picked(repl_session, "21\rtq", length=10, seed=4)
    tokens = s.tree.get(s.tree.current).tokens
    assert len(tokens) == 4 and tokens[3].char == "t"
    first = s.tree.get(1)  # the run it continued
    branch = s.tree.get(s.tree.current)
    assert (branch.kind, branch.parent, branch.split) == ("pick", 1, 11)
    assert branch.context == first.context + first.text
    assert "picked 4 character(s): branch 2" in out
    # The picked text is the last output: /alts and an empty Enter use it.
    s.submit("/alts 2")
    s.submit("")
    assert s.transcript[-1].branch == branch.id and len(s.tree.get(branch.id).tokens) == 14


def test_pick_choices_are_the_models_likeliest_in_order(repl_session) -> None:
    from textgen_core.steer import Stepper

    s, _ = repl_session(length=5, seed=3)
    s.submit("the will")
    expected = Stepper(s.generator).choices()
    s, _ = picked(repl_session, "3" + ESC, length=5, seed=3)
    assert len(expected) >= 5 and expected[0].prob >= expected[1].prob >= expected[4].prob
    assert s.tree.get(s.tree.current).tokens[0].char == expected[2].char


def test_backspace_undoes_exactly(repl_session) -> None:
    s, _ = picked(repl_session, "1" + BACKSPACE + BACKSPACE + "2q", length=5, seed=3)
    undone = s.tree.get(s.tree.current)
    t, _ = picked(repl_session, "2q", length=5, seed=3)
    redone = t.tree.get(t.tree.current)
    assert len(undone.tokens) == 1 and undone.tokens == redone.tokens  # identical probabilities too
    assert (s.generator.get_state().lstm.h == t.generator.get_state().lstm.h).all()


def test_ctrl_c_and_esc_leave_step_mode_keeping_the_text(repl_session) -> None:
    for leave in (CTRL_C, ESC):
        s, _ = picked(repl_session, "11" + leave, length=5)
        assert len(s.tree.get(s.tree.current).tokens) == 2 and s.running
        s.submit("")  # the session goes on, from the picked text
        assert len(s.tree.get(s.tree.current).tokens) == 7


def test_pick_after_a_seed_and_from_nothing_start_new_roots(repl_session) -> None:
    s, _ = picked(repl_session, "1q", "/pick the will", before=())
    branch = s.tree.get(s.tree.current)
    assert (branch.kind, branch.parent, branch.context) == ("pick", None, "the will")
    assert s.transcript[-1].seed == "the will"
    s, _ = picked(repl_session, "1q", before=())
    assert s.tree.get(s.tree.current).context == "\n"  # the start character, as an empty seed primes


def test_an_unknown_typed_character_is_one_line_and_step_mode_goes_on(repl_session) -> None:
    s, _ = picked(repl_session, "€1q", length=5)
    assert len(s.tree.get(s.tree.current).tokens) == 1  # the € was refused, the 1 taken


def test_nothing_picked_adds_no_branch(repl_session) -> None:
    s, out = picked(repl_session, "q", length=5)
    assert len(s.tree.branches) == 1 and "nothing picked" in out


def test_pick_needs_a_terminal(repl_session) -> None:
    s, out = repl_session()
    s.submit("/pick")
    assert out.getvalue() == "/pick: step mode reads single keys: run textgen repl in a terminal to use /pick\n"


def test_the_toolbar_says_how_to_use_step_mode(repl_session, monkeypatch: pytest.MonkeyPatch) -> None:
    import repl.features.pick

    seen = []

    def spy(stepper, press):
        seen.append(s.toolbar())
        return True, ""

    monkeypatch.setattr(repl.features.pick, "_apply", spy)
    with create_pipe_input() as inp:
        s, _ = repl_session(keys=inp)
        inp.send_text("q")
        s.submit("/pick")
    assert "1-9 take that choice" in seen[0] and "Backspace undo" in seen[0] and "Esc or q leave" in seen[0]
    assert "model tiny" in s.toolbar()  # and back to the settings afterwards


# ---- /fork, /tree, /go -----------------------------------------------------------------------------------------------


def test_fork_with_the_same_character_reproduces_the_run(repl_session) -> None:
    s, _ = repl_session(length=30, seed=5, temperature=1.5)
    s.submit("the will")
    original = s.tree.get(1)
    char = original.tokens[9].char
    s.submit(f"/fork 10 {char}")
    forked = s.tree.get(2)
    assert (forked.kind, forked.parent, forked.split) == ("fork", 1, 10)
    assert forked.text[:21] == original.text[9:]
    s.submit("/go 1")
    s.submit("/fork 10")  # the likeliest other character
    other = s.tree.get(3)
    assert other.tokens[0].char != char and other.parent == 1


def test_fork_numbers_as_alts_does_on_a_continuation(repl_session) -> None:
    s, out = repl_session(length=10, seed=2)
    s.submit("the will")
    s.submit("")  # the last output is characters 11-20 of branch 1
    s.submit("/fork 3")
    assert s.tree.get(2).split == 13
    s.submit("/fork 99")
    assert out.getvalue().splitlines()[-1] == "/fork: fork at a character from 1 to 11 of the last output, got 99"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/fork", "usage: /fork N [CHAR]"),
        ("/fork x", "/fork: the character's number must be a whole number ≥ 1, not 'x'"),
        ("/fork 2 ab", "/fork: give one character, got 'ab'"),
        ("/go 0", "/go: the branch id must be a whole number ≥ 1, not '0'"),
        ("/go 9", "/go: no branch 9 (branches: 1 to 1); /tree lists them"),
        ("/beam", "usage: /beam W"),
        ("/beam 65", "/beam: beam width must be a whole number from 1 to 64, not '65'"),
        ("/compare 1 beam0", "/compare: beam width must be a whole number from 1 to 64, not '0'"),
        ("/tree x", "/tree takes no argument"),
    ],
)
def test_bad_values_are_one_line_and_the_session_goes_on(repl_session, line: str, message: str) -> None:
    s, out = repl_session(length=5)
    s.submit("the will")
    mark = len(out.getvalue())
    s.submit(line)
    said = out.getvalue()[mark:]
    assert said.count("\n") == 1 and said.startswith(message), said
    s.submit("")
    assert s.running and len(s.tree.get(1).tokens) == 10


def test_nothing_to_fork_tree_or_beam_before_a_seed(repl_session) -> None:
    s, out = repl_session()
    for line in ("/fork 1", "/tree", "/beam 2"):
        s.submit(line)
    assert out.getvalue().splitlines() == [
        "/fork: nothing generated yet: type a seed first",
        "/tree: no branches yet: type a seed first",
        "/beam: type a seed first: /beam continues the last one",
    ]


def test_tree_lists_every_branch_and_go_continues_one(repl_session) -> None:
    s, out = repl_session(length=8, seed=1)
    s.submit("the will")
    end_of_one = s.generator.get_state()
    s.submit("/fork 3")
    s.submit("/compare 0.5 beam2")
    s.submit("/tree")
    table = out.getvalue()
    rows = ("│  1 │ —    │ run", "│ ›2 │ 1@3  │ fork", "│  3 │ —    │ compare T=0.5", "│  4 │ —    │ compare beam2")
    assert all(row in table for row in rows), table
    s.submit("/go 1")
    assert "branch 1 is current: an empty Enter continues it" in out.getvalue()
    state = s.generator.get_state()
    assert np.array_equal(state.lstm.h, end_of_one.lstm.h) and np.array_equal(state.logits, end_of_one.logits)
    s.submit("")
    assert len(s.tree.get(1).tokens) == 16 and s.transcript[-1].start == 8


def test_save_jsonl_writes_the_whole_tree(repl_session, tmp_path: Path) -> None:
    s, _ = repl_session(length=6, seed=1)
    s.submit("the will")
    s.submit("/fork 2 e")
    s.submit("/compare 1 beam3")
    s.submit(f"/save {tmp_path / 'tree.jsonl'}")
    records = [json.loads(line) for line in (tmp_path / "tree.jsonl").read_text().splitlines()]
    chars = [r for r in records if "char" in r]
    by_branch = {b: [r["char"] for r in chars if r["branch"] == b] for b in (1, 2, 3, 4)}
    assert {b: "".join(c) for b, c in by_branch.items()} == {b: s.tree.get(b).text for b in (1, 2, 3, 4)}
    assert all(r["parent"] == 1 for r in chars if r["branch"] == 2)
    heads = {r["branch"]: r for r in records if "char" not in r}
    assert (heads[2]["parent"], heads[2]["split"], heads[2]["kind"]) == (1, 2, "fork")
    assert heads[4]["label"] == "beam3" and heads[4]["context"] == "the will"
    assert [r["temperature"] for r in chars if r["branch"] == 4] == [None] * 6


# ---- /beam, /compare beamW, sample --beam ----------------------------------------------------------------------------


def test_beam_prints_the_likeliest_text_it_finds_with_its_bits(repl_session, repl_checkpoint: Path) -> None:
    s, out = repl_session(length=20)
    s.submit("the will")
    s.submit("/beam 4")
    ckpt = checkpoint.load(repl_checkpoint)
    expected = beam_search(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, "the will", 4, 20)
    branch = s.tree.get(s.tree.current)
    assert (branch.kind, branch.text) == ("beam", "".join(t.char for t in expected.tokens))
    assert f"── beam4 · {expected.total_bits:.1f} bits total" in out.getvalue()
    assert branch.total_bits <= s.tree.get(1).total_bits  # at least as likely as the sampled run, here
    s.submit("")  # the beam's end state continues
    assert len(s.tree.get(branch.id).tokens) == 40


def test_compare_takes_beams_among_its_columns(repl_session) -> None:
    s, out = repl_session(length=12)
    s.submit("the will")
    s.submit("/compare 0.5 beam4 1")
    labels = [line.split(" · ")[0] for line in out.getvalue().splitlines() if line.startswith("── ")]
    assert labels == ["── T=0.5", "── beam4", "── T=1"]
    assert s.tree.current == 1  # the run stays current: an empty Enter continues it


def test_ctrl_c_stops_a_beam_and_keeps_its_best_so_far(repl_session) -> None:
    with create_pipe_input() as inp:
        s, out = repl_session(keys=inp, length=100_000)
        s.submit("the")
        inp.send_text(CTRL_C)
        s.submit("/beam 64")
        assert "stopped (Ctrl-C) after" in out.getvalue()
        assert 0 < len(s.tree.get(s.tree.current).tokens) < 100_000 and s.running


def test_sample_beam_writes_the_beams_text_and_jsonl(repl_checkpoint: Path) -> None:
    ckpt = checkpoint.load(repl_checkpoint)
    expected = beam_search(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, "the ", 3, 25)
    text = "".join(t.char for t in expected.tokens)
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--prompt", "the ", "--beam", "3", "--len", "25")
    assert proc.returncode == 0 and proc.stdout == f"the {text}\n", proc.stderr
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--prompt", "the ", "--beam", "3", "--len", "25", "--jsonl")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "".join(r["char"] for r in records) == text and {r["beam"] for r in records} == {3}
    assert {"char", "index", "prob", "sampled_prob", "entropy", "temperature"} <= set(records[0])


@pytest.mark.parametrize("args", [["--beam", "0"], ["--beam", "wide"], ["--beam", "2", "--temp", "1"]])
def test_sample_beam_bad_values_are_one_line(repl_checkpoint: Path, args: list[str]) -> None:
    assert_one_line_error(run_cli("sample", "-c", str(repl_checkpoint), *args), "--beam")


def test_sample_and_the_repl_refuse_a_beam_width_alike(repl_checkpoint: Path, repl_session) -> None:
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--beam", "65")
    s, out = repl_session()
    s.submit("x")
    s.submit("/beam 65")
    said = out.getvalue().splitlines()[-1].removeprefix("/beam: ")
    assert f"argument --beam: {said} (see" in proc.stderr


# ---- the real program through a pseudo-terminal ----------------------------------------------------------------------


def test_pick_and_beam_in_a_terminal_with_ctrl_c(terminal: Terminal) -> None:
    term = terminal
    term.command("the will", "bits/char")
    term.command("/pick", "Backspace undo")  # the choices and how to use them
    term.child.send("1")
    term.pause(0.2)
    term.child.send("\r")
    term.pause(0.2)
    term.child.sendcontrol("c")
    term.wait_for("picked 2 character(s): branch 2")
    term.command("/pick", "Esc or q leave")
    term.child.send("2")
    term.pause(0.2)
    term.child.send(ESC)
    term.wait_for("picked 1 character(s): branch 3")
    term.command("/tree", "branches")
    term.wait_for("pick")
    term.command("/len 100000", "length  100,000")
    term.child.send("/beam 64\r")
    term.wait_for("Ctrl-C stops it")
    term.pause(0.3)
    term.child.sendcontrol("c")
    assert term.wait_for("stopped (Ctrl-C) after", timeout=2.0) < 2.0
    term.command("/beam 0", "/beam: beam width must be")
    term.command("/len 5", "length  5")  # the session goes on
    screen = ANSI.sub("", term.raw)
    assert "Traceback" not in screen
    term.child.send("/quit\r")
    term.child.expect(pexpect.EOF, timeout=10)
