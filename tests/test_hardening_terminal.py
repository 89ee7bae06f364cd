"""No character from a model, a checkpoint's metadata or a user's input reaches the terminal as a control sequence.

The rule: C0 controls other than newline and tab, DEL and C1 controls are shown as visible stand-ins (ESC → ␛,
BEL → ␇, backspace → ␈, CR → ␍, C1 as ``\\x9b``); newline and tab stay themselves. A checkpoint whose vocabulary
holds such a character is refused at load (test_hardening_checkpoints); these tests cover everything else: seeds
typed, pasted or piped into the REPL, ``textgen sample --prompt``, metadata strings shown by ``info`` and
``/info``, and error messages that quote a user's path or argument. Checks read the raw bytes a pseudo-terminal
received, where the only escape sequences allowed are the REPL's own (rich's colours, prompt_toolkit's drawing).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from conftest import ROOT, Terminal, injected_pythonpath, run_cli, run_on_pty_stdout, terminal_env

from repl import cli
from textgen_core import checkpoint
from textgen_core.sources import Source

#: An OSC that retitles the window, a CSI that clears the screen and one that moves the cursor, a bell, a
#: backspace, a carriage return, an 8-bit CSI, and a tab that must stay a tab.
HOSTILE = "A\x1b]0;pwned\x07B\x1b[2JC\x1b[66;6HD\x08E\rF\x9bG\tH"
#: What a person must see instead (the CR in a seed becomes ␍ where it is not a line break).
SHOWN = "A␛]0;pwned␇B␛[2JC␛[66;6HD␈E␍F\\x9bG\tH"
#: Byte sequences that must never reach the terminal (the injected controls, raw).
FORBIDDEN = (b"\x1b]0;", b"pwned\x07", b"\x1b[2J", b"\x1b[66;6H", b"\xc2\x9b", b"\x08E")
#: rich's colour codes: the only escape sequences a REPL without a prompt may write.
SGR = re.compile(rb"\x1b\[[0-9;]*m")


def assert_no_injected_controls(raw: bytes) -> None:
    for seq in FORBIDDEN:
        assert seq not in raw, f"{seq!r} reached the terminal"


def _repl_shows(expected: str, screen: str) -> bool:
    """Whether `expected` appears on the REPL's screen, where rich draws a tab as spaces up to the next tab stop
    (whitespace, as a terminal shows a tab, and never a control)."""
    before, _, after = expected.partition("\t")
    return re.search(re.escape(before) + r" +" + re.escape(after), screen) is not None


# ---- the REPL ------------------------------------------------------------------------------------------------------


def test_a_seed_piped_into_the_repl_is_shown_visibly(repl_checkpoint: Path, tmp_path: Path) -> None:
    """Piped stdin, stdout a terminal (colour on): the echoed seed shows every control as a picture, and the only
    escape sequences in the output are rich's colours."""
    seed = HOSTILE.replace("\r", "")  # piped input is read in lines: a CR would end the line here
    args = [sys.executable, "-m", "repl.cli", "repl", "-c", str(repl_checkpoint), "--len", "20"]
    raw = run_on_pty_stdout(args, terminal_env(tmp_path), f"{seed}\n/quit\n")
    assert_no_injected_controls(raw)
    assert SGR.search(raw), "colour is on: the check below is not vacuous"
    assert b"\x1b" not in SGR.sub(b"", raw)
    shown = SGR.sub(b"", raw).decode().replace("\r\n", "\n")
    assert _repl_shows(SHOWN.replace("E␍F", "EF"), shown)
    assert "skipped characters this model does not know: '\\x1b' ×3" in shown


@pytest.mark.parametrize("how", ["pasted", "typed"])
def test_controls_typed_or_pasted_at_the_prompt_never_reach_the_terminal(terminal: Terminal, how: str) -> None:
    """The real REPL in a pseudo-terminal. A bracketed paste puts the controls into the line verbatim (the REPL
    then echoes them visibly); typed, prompt_toolkit reads them as keys. Either way the session goes on and the
    raw output never holds the injected sequences."""
    term = terminal
    if how == "pasted":
        term.child.send("\x1b[200~" + HOSTILE + "\x1b[201~")
        term.command("", "bits/char")
        # prompt_toolkit turns a pasted CR into a newline: the seed is two lines, each shown visibly.
        assert _repl_shows(SHOWN.replace("␍", "\n"), term.seen.replace("\r\n", "\n"))
    else:
        term.child.send(HOSTILE.replace("\r", "") + "\r")
        term.wait_for("bits/char")
    term.command("/len 5", "length  5")  # still a working prompt
    assert_no_injected_controls(term.raw.encode())


SLOW_LOAD = """
import time
from textgen_core import checkpoint
_load = checkpoint.load
def _slow(arg):
    if "slow" in str(arg):
        print("(loading slowly)", flush=True)
        time.sleep(30)
    return _load(arg)
checkpoint.load = _slow
"""


def test_ctrl_c_during_a_real_load_keeps_the_model_and_the_prompt(repl_checkpoint: Path, tmp_path: Path) -> None:
    """The real REPL, with loading made slow (a checkpoint on a network drive): Ctrl-C interrupts /load, the
    session goes on with the old model, which still generates."""
    env = terminal_env(tmp_path)
    env["PYTHONPATH"] = injected_pythonpath(tmp_path / "inject", SLOW_LOAD)
    shutil.copyfile(repl_checkpoint, tmp_path / "slow.safetensors")  # a real file: only its loading is slow
    child = pexpect.spawn(
        sys.executable, ["-m", "repl.cli", "repl", "-c", str(repl_checkpoint), "--len", "30"],
        env=env, cwd=str(ROOT), encoding="utf-8", dimensions=(40, 120),
    )  # fmt: skip
    try:
        term = Terminal(child)
        term.wait_for("model tiny")
        child.send(f"/load {tmp_path / 'slow.safetensors'}\r")
        term.wait_for("(loading slowly)", timeout=30)  # the load has begun (however busy the machine is)
        child.sendcontrol("c")
        assert term.wait_for("interrupted; the session goes on", timeout=10) < 10  # not the 30 s of the load
        term.command("the will", "30 chars")
        term.command("/info", "1×32 LSTM")  # the model it had
    finally:
        child.close(force=True)


def test_metadata_strings_of_a_checkpoint_are_shown_visibly(repl_session, repl_checkpoint: Path, tmp_path: Path):
    """The command and corpus names in a checkpoint are anyone's text: `info`, `info --json`, the banner and
    /info show them without their controls acting (the vocabulary is refused at load; these are not)."""
    good = checkpoint.load(repl_checkpoint)
    path = tmp_path / "meta.safetensors"
    meta = good.meta
    meta.command = "textgen train \x1b]0;pwned\x07 \x9b2J"
    meta.corpus = [Source("book\x1b[2J.txt", "0" * 64, 100)]
    checkpoint.save(path, good.tensors, meta)

    for args in (["info", "-c", str(path)], ["info", "-c", str(path), "--json"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert_no_injected_controls(proc.stdout.encode())
        assert "\x1b" not in proc.stdout and "\x9b" not in proc.stdout
    info = json.loads(run_cli("info", "-c", str(path), "--json").stdout)
    assert info["command"] == meta.command  # escaped in the JSON text, exact once parsed

    s, out = repl_session()
    s.submit(f"/load {path}")
    s.submit("/info")
    assert "\x1b" not in out.getvalue() and "\x9b" not in out.getvalue()
    assert "book␛[2J.txt" in out.getvalue() and "␛]0;pwned␇" in out.getvalue()


# ---- textgen sample --prompt --------------------------------------------------------------------------------------


def _sample(ckpt: Path, prompt: str) -> list[str]:
    args = ["sample", "-c", str(ckpt), "--prompt", prompt, "--len", "10", "--seed", "1"]
    return [sys.executable, "-m", "repl.cli", *args]


def test_sample_shows_a_hostile_prompt_visibly_on_a_terminal(repl_checkpoint: Path, tmp_path: Path) -> None:
    raw = run_on_pty_stdout(_sample(repl_checkpoint, HOSTILE + "\n"), terminal_env(tmp_path), "")
    assert_no_injected_controls(raw)
    assert b"\x1b" not in raw  # plain output: no escape sequence at all, and the warning quotes the characters
    shown = raw.decode()
    assert SHOWN + "\r\n" in shown  # the terminal's own CR-LF for the newline; the prompt's CR shown as ␍
    assert "skipping prompt characters the model does not know: '\\x1b' ×3" in shown


def test_sample_into_a_pipe_keeps_the_prompt_exact(repl_checkpoint: Path) -> None:
    """Not a terminal: the output is data, written as given (a file or a program reads it, not a person)."""
    proc = subprocess.run(_sample(repl_checkpoint, HOSTILE), capture_output=True, cwd=ROOT, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(HOSTILE.encode())


def test_a_prompt_file_with_controls_is_refused_like_a_corpus(repl_checkpoint: Path, tmp_path: Path) -> None:
    from conftest import assert_one_line_error

    prompt = tmp_path / "prompt.txt"
    prompt.write_text(HOSTILE, encoding="utf-8")
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--prompt-file", str(prompt))
    assert_one_line_error(proc, "contains the control character U+001B at character 1")


# ---- error messages -------------------------------------------------------------------------------------------------


def _status(argv: list[str]) -> int:
    """`textgen ARGV` in-process: its exit status, whether argparse exits or `main` returns."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return int(e.code or 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "-c", "/nonexistent/" + HOSTILE + "\nsecond line"],
        ["info", HOSTILE],  # argparse's "unrecognized arguments"
        ["sample", "--len=-5\x0b"],  # int() takes the vertical tab for whitespace; the message quotes it
    ],
    ids=["path", "argument", "number"],
)
def test_error_messages_quoting_user_text_are_one_visible_line(argv: list[str], capsys) -> None:
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("textgen")
    assert_no_injected_controls(err.encode())
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", err), err
