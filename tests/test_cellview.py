"""Looking inside the model from the REPL and the command line: `/cells`, `/cell L:N`, `/color cell` through
prompt_toolkit pipe input and a real pseudo-terminal, and `textgen cells` as a subprocess (its errors too)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import (
    Terminal,
    assert_one_line_error,
    make_text,
    run_cli,
    run_on_pty_stdout,
    terminal_env,
    write_random_checkpoint,
)
from prompt_toolkit.input import create_pipe_input

from repl.commands import REGISTRY
from repl.features import cells as cellview
from repl.render import cell_style, make_console, prob_style
from textgen_core.cells import (
    CellTracker,
    cell_values,
    continuation_values,
    rank_feature,
    trace_cells,
)
from textgen_core.checkpoint import load

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def quoted(n_chars: int, seed: int = 0) -> str:
    """`make_text` with some words quoted and some bracketed: every built-in feature occurs."""
    text = make_text(n_chars, seed)
    return text.replace(" will ", ' "will to" ').replace(" life ", " (life) ").replace(" truth", ' "truth"')


@pytest.fixture(scope="module")
def repl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Overrides conftest's: a 2×32 random model whose vocabulary has quotes and brackets (named tiny, as the
    `terminal` fixture waits for)."""
    folder = tmp_path_factory.mktemp("cells")
    return write_random_checkpoint(folder / "tiny.safetensors", layers=2, text=quoted(5000))


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "quoted.txt"
    path.write_text(quoted(3000, seed=5), encoding="utf-8")
    return path


def char_styles(output: str) -> list[tuple[str, str]]:
    """Every printed character with the SGR parameters in force when it was printed ("" when none)."""
    pairs: list[tuple[str, str]] = []
    current = ""
    pos = 0
    for m in SGR.finditer(output + "\x1b[m"):
        pairs.extend((ch, current) for ch in output[pos : m.start()])
        current = "" if m.group(1) in ("", "0") else m.group(1)
        pos = m.end()
    return pairs


def sgr_of(style: str) -> str:
    """The SGR parameters the REPL's console writes for `style`."""
    out = io.StringIO()
    make_console(out, color=True).print("x", style=style, end="")
    return char_styles(out.getvalue())[0][1]


def assert_coloured_by(pairs: list[tuple[str, str]], text: str, values: np.ndarray) -> None:
    """`pairs` show `text`, each character in the cell style of its value (new lines carry no colour)."""
    assert "".join(ch for ch, _ in pairs) == text
    assert len(values) == len(text)
    for (ch, got), value in zip(pairs, values, strict=True):
        if ch != "\n":
            assert got == sgr_of(cell_style(float(value))), (ch, value)


def lines(out: io.StringIO) -> list[str]:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text.splitlines()


# ---- /cells ------------------------------------------------------------------------------------------------------


def test_cells_on_a_file_shows_the_libraries_ranking_and_its_best_cell(repl_session, text_file: Path) -> None:
    session, out = repl_session()
    session.submit(f"/cells quote {text_file}")
    shown = out.getvalue()
    gen = session.generator
    trace = trace_cells(gen.model, gen.vocab, text_file.read_text(), max_chars=cellview.MAX_CHARS)
    expected = rank_feature(trace, "quote", top=cellview.TOP)
    assert f"cells over {trace.chars:,} characters of '/" in shown  # the file (a long path is shortened)
    for cell in expected.cells:
        assert re.search(rf"│ +{cell.label} +│ +{re.escape(f'{cell.r:+.3f}')} │", shown), (cell, shown)
    best = expected.cells[0].label
    assert f"watch cell {best} while the model writes: /cell {best}" in shown
    assert f"the value of cell {best}" in shown  # the legend of the coloured passage


def test_cells_reads_a_sample_then_the_sessions_own_text_and_leaves_the_state_alone(repl_session) -> None:
    session, out = repl_session(length=cellview.MIN_SESSION_TEXT, seed=3)
    session.submit("the will")
    state = session.generator.get_state()
    lines(out)
    with mock.patch.object(cellview, "MIN_SESSION_TEXT", cellview.MIN_SESSION_TEXT + 100):
        session.submit("/cells")
    said = "\n".join(lines(out))
    assert f"generating {cellview.SAMPLE_CHARS:,} characters" in said
    assert f"cells over {cellview.SAMPLE_CHARS:,} characters of a sample the model wrote" in said
    for name in ("quote", "bracket", "line", "word", "sentence"):
        assert re.search(rf"│ {name} +│", said), name
    np.testing.assert_array_equal(session.generator.lstm_state.c, state.lstm.c)  # the sample used its own state
    session.submit("/cells line")
    assert "of this session's text" in "\n".join(lines(out))


def test_cells_find_ranks_by_a_regex(repl_session, text_file: Path) -> None:
    session, out = repl_session()
    with mock.patch.object(cellview, "_text_at_hand", lambda s, path: (text_file.read_text(), "the file")):
        session.submit("/cells find w[a-z]+")
    gen = session.generator
    trace = trace_cells(gen.model, gen.vocab, text_file.read_text(), max_chars=cellview.MAX_CHARS)
    best = rank_feature(trace, "find w[a-z]+").cells[0]
    assert re.search(rf"│ find w\[a-z\]\+ +│ +{best.label} +│ +{re.escape(f'{best.r:+.3f}')} │", out.getvalue())


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/cells quotes", "/cells: unknown feature 'quotes': choose one of quote"),
        ("/cells find (a", "/cells: bad regular expression"),
        ("/cells find", "/cells: find needs a regular expression: /cells find REGEX"),
        ("/cells quote /no/such/file.txt", "/cells: /no/such/file.txt"),
        ("/cell 2:0", "/cell: no layer 2: the model's layers are 0 to 1"),
        ("/cell 0:32", "/cell: no cell 32 in layer 0: cells are 0 to 31"),
        ("/cell quote", "/cell: 'quote' is not a cell: write LAYER:INDEX"),
        ("/color cell", "/color: no cell chosen yet: /cell LAYER:INDEX picks one"),
    ],
)
def test_errors_are_one_line_and_the_session_goes_on(repl_session, line: str, says: str) -> None:
    session, out = repl_session()
    session.submit(line)
    printed = lines(out)
    assert len(printed) == 1 and printed[0].startswith(says), printed
    assert session.running and session.color == "off" and session.cell is None
    session.submit("/temp 0.3")
    assert lines(out) == ["temperature  0.3"]


def test_a_feature_the_text_lacks_says_so_in_one_line(repl_session, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text(make_text(1000), encoding="utf-8")
    session, out = repl_session()
    session.submit(f"/cells quote {plain}")
    printed = lines(out)
    assert printed[-1].startswith("/cells: the feature 'quote' never changes in this text"), printed


# ---- /cell: colouring by one cell --------------------------------------------------------------------------------


def test_streamed_text_is_coloured_by_the_cell_as_the_model_writes(repl_session) -> None:
    session, out = repl_session(color=True, length=80, seed=1)
    session.submit("/cell 1:3")
    assert session.colour_name == "cell 1:3" and "colour cell 1:3" in session.toolbar()
    lines(out)
    session.submit("the will")
    generated = "".join(t.char for t in session.transcript[-1].tokens)
    pairs = char_styles(out.getvalue())
    start = "".join(ch for ch, _ in pairs).index("the will") + len("the will")
    gen = session.generator
    values = continuation_values(gen.model, gen.vocab, "the will", generated, 1, 3)
    assert_coloured_by(pairs[start : start + len(generated)], generated, values)
    # Coloured by probability the run would look different: the check above can tell the two apart.
    by_prob = [sgr_of(prob_style(t.prob)) for t in session.transcript[-1].tokens]
    assert by_prob != [got for _, got in pairs[start : start + len(generated)]]


def test_score_and_compare_are_coloured_by_the_cell(repl_session) -> None:
    session, out = repl_session(color=True, length=30, seed=2)
    session.submit("/cell 0:7")
    session.submit("the will")
    lines(out)
    text = 'the "will" (to) power'
    session.submit(f"/score {text}")
    gen = session.generator
    _, values = cell_values(gen.model, gen.vocab, text, 0, 7)
    assert_coloured_by(char_styles(out.getvalue())[: len(text)], text, values)
    lines(out)
    session.submit("/compare 0.5 1.5")
    pairs = char_styles(out.getvalue())
    plain = "".join(ch for ch, _ in pairs)
    for label in ("── T=0.5 ·", "── T=1.5 ·"):
        start = plain.index("\n", plain.index(label)) + 1 + len("the will")
        block = plain[start : start + 30]
        values = continuation_values(gen.model, gen.vocab, "the will", block, 0, 7)
        assert_coloured_by(pairs[start : start + 30], block, values)


def test_the_cell_is_read_only_while_a_cell_view_is_on(repl_session) -> None:
    session, _ = repl_session(color=True, length=25)
    real = CellTracker.value
    with mock.patch.object(CellTracker, "value", autospec=True, side_effect=real) as read:
        session.submit("/cell 1:0")
        session.submit("/color prob")
        session.submit("the will")
        assert read.call_count == 0
        session.submit("/color cell")
        session.submit("the will")
        assert read.call_count == 25
        session.submit("/cell off")
        session.submit("the will")
        assert read.call_count == 25 and session.color == "prob"


def test_loading_a_model_turns_the_cell_view_off(repl_session, repl_checkpoint: Path) -> None:
    session, out = repl_session(color=True)
    session.submit("/cell 1:4")
    session.submit(f"/load {repl_checkpoint}")
    assert session.cell is None and session.color == "prob"
    assert "the cell view is off (cells differ between models)" in out.getvalue()


def test_keys_work_while_a_cell_view_streams(repl_session) -> None:
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=50, temperature=0.5)
        session.submit("/cell 1:2")
        inp.send_text("\x1b[A\x1b[A")
        session.submit("the will")
        assert session.settings.temperature == 0.7 and "‹T 0.7›" in out.getvalue()
        session.length = 100_000
        inp.send_text("\x03")
        session.submit("the will")
        assert len(session.transcript[-1].tokens) < 100 and "stopped (Ctrl-C)" in out.getvalue()


def test_completion_offers_cell_colour_and_the_features() -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in REGISTRY.completer().get_completions(doc, CompleteEvent())]

    assert complete("/color c") == ["cell"]
    assert complete("/cells q") == ["quote"] and "find" in complete("/cells ")
    assert "/cells" in complete("/cel") and "/cell" in complete("/cel")


# ---- the real REPL in a pseudo-terminal ------------------------------------------------------------------------


def test_cells_and_a_cell_view_in_the_real_terminal(terminal: Terminal, text_file: Path) -> None:
    term = terminal
    term.command(f"/cells quote {text_file}", "watch cell ")
    term.wait_for("/cell ")
    best = term.seen[term.pos :].split()[0]  # what /cells said to type
    assert re.fullmatch(r"[01]:\d+", best), best
    term.command(f"/cell {best}", f"colour  cell {best}")
    streamed = term.command("the will", "bits/char")
    assert re.search(r"\x1b\[[0-9;]*3[0-9;]*m", streamed), "the run is coloured"
    term.wait_for(f"colour cell {best}")  # the toolbar at the next prompt
    term.command("/cells quotes", "/cells: unknown feature 'quotes'")
    term.command("/cell 7:0", "/cell: no layer 7")
    term.command("/temp 0.4", "temperature  0.4")  # the session goes on


# ---- textgen cells ---------------------------------------------------------------------------------------------


def test_cli_json_is_the_libraries_ranking(repl_checkpoint: Path, text_file: Path) -> None:
    proc = run_cli("cells", "-c", str(repl_checkpoint), str(text_file), "--feature", "bracket", "--top", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    ckpt = load(repl_checkpoint)
    from textgen_core.inference import NumpyLSTM

    trace = trace_cells(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, text_file.read_text())
    expected = rank_feature(trace, "bracket", top=3).to_dict()
    assert report["feature"] == "bracket" and report["chars"] == expected["chars"] == trace.chars
    assert [(c["layer"], c["index"]) for c in report["cells"]] == [(c["layer"], c["index"]) for c in expected["cells"]]
    for got, want in zip(report["cells"], expected["cells"], strict=True):
        assert got["correlation"] == pytest.approx(want["correlation"], abs=1e-6)


def test_cli_plain_output_a_chosen_cell_and_a_regex(repl_checkpoint: Path, text_file: Path) -> None:
    args = ["cells", "-c", str(repl_checkpoint), str(text_file)]
    proc = run_cli(*args, "--regex", '"[a-z]+', "--cell", "1:5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('find "[a-z]+: the cells that follow it best over ')
    assert re.search(r"^ +1:5  r [+-]\d\.\d{3}  \(--cell\)$", proc.stdout, re.M)
    assert "\x1b" not in proc.stdout  # not a terminal: no colour
    report = json.loads(run_cli(*args, "--feature", "line", "--cell", "0:0", "--json").stdout)
    assert report["cell"]["layer"] == 0 and report["cell"]["index"] == 0 and -1 <= report["cell"]["correlation"] <= 1


def test_cli_on_a_terminal_shows_a_passage_coloured_by_the_best_cell(
    repl_checkpoint: Path, text_file: Path, tmp_path: Path
) -> None:
    import sys

    args = [sys.executable, "-m", "repl.cli", "cells", "-c", str(repl_checkpoint), str(text_file), "--feature", "quote"]
    raw = run_on_pty_stdout(args, terminal_env(tmp_path), "").decode()
    assert "the value of cell" in raw and SGR.search(raw), raw[-400:]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--feature", "quotes"], "unknown feature 'quotes'"),
        (["--regex", "(a"], "bad regular expression"),
        (["--feature", "quote", "--cell", "0:99"], "no cell 99 in layer 0"),
        (["--feature", "quote", "--cell", "5:0"], "no layer 5"),
        (["--feature", "quote", "--top", "0"], "--top"),
        (["--regex", "zzz"], "never changes"),
        ([], "say what to look for: --feature NAME"),
    ],
)
def test_cli_errors_are_one_line_exit_2(repl_checkpoint: Path, text_file: Path, extra: list[str], says: str) -> None:
    assert_one_line_error(run_cli("cells", "-c", str(repl_checkpoint), str(text_file), *extra), says)


def test_cli_a_feature_absent_from_the_text_and_a_missing_file(repl_checkpoint: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text(make_text(2000), encoding="utf-8")
    assert_one_line_error(run_cli("cells", "-c", str(repl_checkpoint), str(plain), "--feature", "quote"), "never")
    missing = run_cli("cells", "-c", str(repl_checkpoint), str(tmp_path / "nope.txt"), "--feature", "quote")
    assert_one_line_error(missing, "nope.txt")
