"""The REPL as a terminal program: a real PromptSession fed through a pipe, keys while streaming, and the real
`textgen repl` end to end through a pseudo-terminal (pexpect), with piped stdin and NO_COLOR."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pexpect
import pytest
from conftest import ANSI, ROOT, Terminal, run_on_pty_stdout, spawn_repl, terminal_env
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit.output import DummyOutput

from repl.app import interactive
from repl.prompt import default_history, make_prompt

COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-9;]*m")


# ---- a real PromptSession through create_pipe_input ----------------------------------------------------------------


def run_prompt(repl_session, text: str, tmp_path: Path, **kw):
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, **kw)
        prompt = make_prompt(session, tmp_path / "state" / "history", input=inp, output=DummyOutput())
        inp.send_text(text)
        status = interactive(session, prompt)
    return status, session, out.getvalue()


def test_prompt_session_reads_commands_seeds_and_multiline_input(repl_session, tmp_path: Path) -> None:
    keys = "/temp 0.5\rthe will\r\rfirst line\x1b\rsecond line\r/quit\r"
    status, session, out = run_prompt(repl_session, keys, tmp_path, length=8)
    assert status == 0 and not session.running
    assert "temperature  0.5" in out
    assert [t.seed for t in session.transcript] == ["the will", "", "first line\nsecond line"]
    assert all(len(t.tokens) == 8 for t in session.transcript)
    history = (tmp_path / "state" / "history").read_text()
    assert "+the will" in history and "+first line\n+second line" in history


def test_pasted_text_keeps_its_newlines(repl_session, tmp_path: Path) -> None:
    status, session, _ = run_prompt(repl_session, "\x1b[200~one\ntwo\r\nthree\x1b[201~\r\x04", tmp_path, length=3)
    assert status == 0
    assert [t.seed for t in session.transcript] == ["one\ntwo\nthree"]


def test_ctrl_c_during_compare_or_load_returns_to_a_working_prompt(repl_session, tmp_path: Path) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=3)
        old = session.loaded
        prompt = make_prompt(session, None, input=inp, output=DummyOutput())
        inp.send_text("the will\r/compare\r/load elsewhere.safetensors\r/len 9\r\x04")
        with (
            mock.patch("repl.features.steering.sample_many", interrupted),
            mock.patch("repl.features.model.open_model", interrupted),
        ):
            assert interactive(session, prompt) == 0
    assert out.getvalue().count("interrupted; the session goes on") == 2
    assert session.loaded is old and session.length == 9


def test_history_lives_in_the_xdg_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_history() == tmp_path / "textgen" / "history"


def test_ctrl_d_exits_and_ctrl_c_at_an_empty_prompt_says_how(repl_session, tmp_path: Path) -> None:
    status, session, out = run_prompt(repl_session, "abc\x03\x03\x04", tmp_path)
    assert status == 0
    assert session.transcript == []  # Ctrl-C on a typed line cleared it
    assert out.count("to leave, type /quit or press Ctrl-D") == 1


def test_tab_completes_a_command_and_enter_accepts_the_completion(repl_session, tmp_path: Path) -> None:
    """Completion runs in the background, so the keys are typed with pauses, from another thread."""
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp)
        prompt = make_prompt(session, None, input=inp, output=DummyOutput())
        loop = threading.Thread(target=interactive, args=(session, prompt))
        loop.start()
        for keys in ("/gre", "\t", "\r", "\r", "\x04"):
            inp.send_text(keys)
            time.sleep(0.3)
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert out.getvalue() == "temperature  0 (greedy)\n"


# ---- keys while streaming ------------------------------------------------------------------------------------


def test_up_down_plus_minus_nudge_the_temperature_mid_stream(repl_session) -> None:
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=50, temperature=0.5)
        inp.send_text("\x1b[A\x1b[A+")
        session.submit("the will")
        assert session.settings.temperature == 0.8
        assert session.generator.settings.temperature == 0.8
        temps = session.transcript[-1].temperatures
        assert temps[0] == 0.5 and temps[-1] == 0.8  # the characters after the keys use the new temperature
        assert "‹T 0.8›" in out.getvalue()
        inp.send_text("\x1b[B-")
        session.submit("the will")
        assert session.settings.temperature == 0.6


def test_temperature_nudges_stop_at_greedy(repl_session) -> None:
    with create_pipe_input() as inp:
        session, _ = repl_session(keys=inp, length=5, temperature=0.1)
        inp.send_text("---")
        session.submit("the")
        assert session.settings.temperature == 0


def test_ctrl_c_stops_a_stream_at_once_and_the_session_goes_on(repl_session) -> None:
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=100_000)
        inp.send_text("\x03")
        started = time.perf_counter()
        session.submit("the will")
        assert time.perf_counter() - started < 1
        assert len(session.transcript[-1].tokens) < 100
        assert "stopped (Ctrl-C)" in out.getvalue()
        session.length = 5
        session.submit("")  # continues from where it stopped
        assert len(session.transcript[-1].tokens) == 5


def test_other_keys_typed_while_streaming_go_to_the_next_prompt(repl_session) -> None:
    with create_pipe_input() as inp:
        session, _ = repl_session(keys=inp, length=20)
        inp.send_text("next")
        session.submit("the will")
        assert "".join(k.data for k in get_typeahead(inp)) == "next"


# ---- the real program through a pseudo-terminal -----------------------------------------------------------------


def test_the_real_repl_in_a_terminal(terminal: Terminal) -> None:
    term = terminal
    term.command("/temp 0.5", "temperature  0.5")
    streamed = term.command("the will", "bits/char · T=0.5")
    assert COLOUR.search(streamed), "a seed streams coloured output"
    blocks = term.command("/compare", "── T=1.2")
    assert all(f"── {label} ·" in ANSI.sub("", blocks) for label in ("T=0.2", "T=0.5", "T=1", "T=1.2"))
    term.command("/tmep", "unknown command /tmep — did you mean /temp?")
    term.command("/len 100000", "length  100,000")
    term.child.send("the will\r")
    term.wait_for("the will")
    term.pause(0.3)  # well into the run
    term.child.sendcontrol("c")
    assert term.wait_for("stopped (Ctrl-C)", timeout=1.0) < 1.0
    term.wait_for("›", timeout=1.0)
    term.child.send("/compare\r")
    term.pause(0.3)  # 4 × 100,000 characters: far from done
    term.child.sendcontrol("c")
    assert term.wait_for("interrupted; the session goes on", timeout=1.0) < 1.0
    term.wait_for("›", timeout=1.0)
    term.child.sendcontrol("c")
    term.wait_for("to leave, type /quit or press Ctrl-D")
    term.command("/len 5", "length  5")  # the prompt still works
    term.child.send("/quit\r")
    term.child.expect(pexpect.EOF, timeout=10)
    term.child.close()
    assert term.child.exitstatus == 0


def test_ctrl_d_exits_zero(terminal: Terminal) -> None:
    terminal.child.sendcontrol("d")
    terminal.child.expect(pexpect.EOF, timeout=10)
    terminal.child.close()
    assert terminal.child.exitstatus == 0


def _repl_cmd(ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "repl.cli", "repl", "-c", str(ckpt), "--len", "40", *extra]


def test_piped_stdin_prints_a_continuation_without_escape_codes(repl_checkpoint: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        _repl_cmd(repl_checkpoint),
        input="the will\n/temp 0.3\n/tmep\n/quit\n",
        capture_output=True,
        text=True,
        env=terminal_env(tmp_path),
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    banner, continuation = result.stdout.split("\n", 2)[:2]
    assert banner.startswith("textgen · tiny") and continuation.startswith("the will")
    assert re.search(r"^40 chars · .* bits/char · T=0\.8$", result.stdout, re.MULTILINE)
    assert result.stdout.endswith("temperature  0.3\nunknown command /tmep — did you mean /temp?\n")


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color"])
def test_no_color_on_a_terminal_writes_no_escape_codes(repl_checkpoint: Path, tmp_path: Path, how: str) -> None:
    env = terminal_env(tmp_path, **({"NO_COLOR": "1"} if how == "NO_COLOR" else {}))
    args = _repl_cmd(repl_checkpoint, *(["--no-color"] if how == "--no-color" else []))
    shown = run_on_pty_stdout(args, env, "the will\n/color\n/quit\n").decode()
    assert "the will" in shown and "chars/s" in shown
    assert "\x1b" not in shown
    # The same terminal without NO_COLOR does get colour: the check above is not vacuous.
    assert b"\x1b[" in run_on_pty_stdout(_repl_cmd(repl_checkpoint), terminal_env(tmp_path), "the will\n/quit\n")


def test_the_repl_never_imports_torch(repl_checkpoint: Path, tmp_path: Path) -> None:
    code = (
        "import atexit, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules)); "
        "from repl.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "repl", "-c", str(repl_checkpoint), "--len", "5"],
        input="the will\n/compare\n/score the will\n/quit\n",
        capture_output=True,
        text=True,
        env=terminal_env(tmp_path),
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("torch imported: False")


# ---- what the screen shows: a terminal emulator (pyte) draws the real program's output -------------------------


class Screen:
    """The real `textgen repl` in a pseudo-terminal whose output a VT emulator draws, so a test reads the
    screen a person sees, row by row. It answers cursor position requests with the emulator's cursor."""

    def __init__(self, child: pexpect.spawn, rows: int, cols: int):
        import pyte

        class Answering(pyte.Screen):
            def write_process_input(self, data: str) -> None:
                child.send(data)

        self.child = child
        self.screen = Answering(cols, rows)
        self.stream = pyte.Stream(self.screen)

    @property
    def rows(self) -> list[str]:
        return self.screen.display

    def wait_until(self, what: str, check, timeout: float = 10.0) -> None:
        deadline = time.perf_counter() + timeout
        while not check():
            if time.perf_counter() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout} s; screen:\n" + "\n".join(self.rows))
            with contextlib.suppress(pexpect.TIMEOUT):
                self.stream.feed(self.child.read_nonblocking(1 << 20, timeout=0.05))

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        self.wait_until(repr(text), lambda: any(text in row for row in self.rows), timeout)


def test_the_toolbar_stays_on_the_bottom_row_while_a_run_streams(repl_checkpoint: Path, tmp_path: Path) -> None:
    rows, cols = 12, 100
    child = spawn_repl(repl_checkpoint, tmp_path, rows=rows, cols=cols)
    term = Screen(child, rows, cols)
    try:
        term.wait_for("model tiny")
        child.send("/len 100000\r")
        term.wait_for("length  100,000")
        child.send("the will\r")
        term.wait_for("› the will")
        # The run fills the screen and scrolls on, and the last row keeps showing the settings.
        term.wait_until("a screenful of text", lambda: "the will" not in "".join(term.rows), timeout=20)
        assert term.rows[-1].startswith(" T 0.8 │ len 100,000 │ top-k off"), term.rows
        assert all(term.rows[:-1]), "every row above the toolbar holds streamed text"
        child.send("\x1b[A")  # Up: the toolbar follows the new temperature mid-stream
        term.wait_until("T 0.9 in the toolbar", lambda: term.rows[-1].startswith(" T 0.9 │"))
        term.screen.resize(rows + 4, cols)  # the window grows: the toolbar moves to the new last row
        child.setwinsize(rows + 4, cols)
        term.wait_until("the toolbar on row 16", lambda: term.rows[-1].startswith(" T 0.9 │"))
        assert term.screen.margins.bottom == rows + 2
        assert sum(row.startswith(" T 0.9 │") for row in term.rows) == 1, "no stale toolbar is left behind"
        term.screen.resize(rows - 2, cols)  # it shrinks: the toolbar follows, and the text goes on above it
        child.setwinsize(rows - 2, cols)
        margins = lambda: term.screen.margins and term.screen.margins.bottom  # noqa: E731 (None: no region)
        term.wait_until("a region down to row 9", lambda: margins() == rows - 4)
        shown = list(term.rows)
        term.wait_until("more text", lambda: term.rows[:-1] != shown[:-1])
        assert term.rows[-1].startswith(" T 0.9 │"), term.rows
        child.sendcontrol("c")
        term.wait_for("stopped (Ctrl-C)")
        # Back at the prompt, prompt_toolkit draws the same toolbar in the same place.
        term.wait_until("the prompt", lambda: any(row.startswith("›") for row in term.rows))
        term.wait_until("its toolbar", lambda: term.rows[-1].startswith(" T 0.9 │ len 100,000"))
        assert term.screen.margins is None, "the scroll region is given back to the terminal"
        child.send("/quit\r")
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_ctrl_c_works_even_when_sigint_was_inherited_ignored(repl_checkpoint: Path, tmp_path: Path) -> None:
    """A script's background job (`cmd &`) passes SIGINT on ignored to what it starts; the REPL restores it."""
    child = spawn_repl(repl_checkpoint, tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    term = Terminal(child)
    try:
        term.wait_for("model tiny")
        term.command("the", "chars/s")
        term.command("/len 100000", "length  100,000")
        child.send("/compare\r")
        term.pause(0.3)  # 4 × 100,000 characters: far from done
        child.sendcontrol("c")
        term.wait_for("interrupted; the session goes on", timeout=5)
    finally:
        child.close(force=True)


def hold_ctrl_c(term: Terminal, seconds: float) -> None:
    """Ctrl-C held down: the key repeating every 10 ms, for `seconds` or until the REPL ends, the screen read
    meanwhile as a terminal does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and term.child.isalive():
        with contextlib.suppress(OSError):
            term.child.sendcontrol("c")
        with contextlib.suppress(pexpect.EOF):
            term.read(0.01)


def test_ctrl_c_held_down_never_ends_the_session(repl_checkpoint: Path, tmp_path: Path) -> None:
    """Held down, Ctrl-C repeats faster than the loop turns round between two prompts, where it is a signal: the
    session goes on, and ends only when asked, with status 0."""
    child = spawn_repl(repl_checkpoint, tmp_path)
    term = Terminal(child)
    try:
        term.wait_for("model tiny")
        term.command("the", "chars/s")
        hold_ctrl_c(term, 4)
        assert child.isalive(), term.seen[-800:]
        term.pause(0.5)
        term.command("/len 7", "length  7")
        term.pause(0.5)
        child.sendcontrol("d")
        hold_ctrl_c(term, 5)  # pressed while it ends, too
        child.expect(pexpect.EOF, timeout=20)
    finally:
        child.close(force=True)
    assert (child.signalstatus, child.exitstatus) == (None, 0)
    assert "to leave, type /quit or press Ctrl-D" in term.seen


# ---- auto-suggest from the latest history ---------------------------------------------------------------------------


def suggestion_for(entries: list[str], typed: str) -> str | None:
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import InMemoryHistory

    from repl.prompt import RecentSuggest

    history = InMemoryHistory()
    for entry in entries:
        history.append_string(entry)
    found = RecentSuggest().get_suggestion(Buffer(history=history), Document(typed))
    return None if found is None else found.text


def test_suggestions_come_from_the_latest_matching_entry_and_line() -> None:
    entries = ["the will to power", "the will to truth", "first\nthe wanderer", "other"]
    assert suggestion_for(entries, "the w") == "anderer"  # a line of a multi-line entry, the latest first
    assert suggestion_for(entries, "the will") == " to truth"
    assert suggestion_for(entries, "zebra") is None
    assert suggestion_for(entries, "   ") is None  # nothing typed: no suggestion
    assert suggestion_for(entries, "line one\nthe will to p") == "ower"  # the current line is what is completed


def test_suggestions_look_only_at_the_latest_entries() -> None:
    from repl.prompt import RECENT

    old = ["an old seed, long forgotten"]
    recent = [f"entry {i}" for i in range(RECENT)]
    assert suggestion_for(old + recent[1:], "an old") == " seed, long forgotten"  # within the latest RECENT
    assert suggestion_for(old + recent, "an old") is None  # pushed out: typing never scans the whole history


def test_a_suggestion_is_shown_and_taken_with_the_right_arrow(repl_checkpoint: Path, tmp_path: Path) -> None:
    history = tmp_path / "state" / "textgen" / "history"
    history.parent.mkdir(parents=True)
    history.write_text("\n# 2026-01-01 00:00:00\n+the will to power\n", encoding="utf-8")
    child = spawn_repl(repl_checkpoint, tmp_path, length=4)
    term = Terminal(child)
    try:
        term.wait_for("model tiny")
        child.send("the wi")
        term.wait_for("ll to power")  # the suggestion, drawn after the typed text
        child.send("\x1b[C\r")  # Right takes it, Enter runs it
        term.wait_for("chars/s")
        term.command(f"/save {tmp_path / 'out.txt'}", "saved")
    finally:
        child.terminate(force=True)
    assert "the will to power" in (tmp_path / "out.txt").read_text(encoding="utf-8")
