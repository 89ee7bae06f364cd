"""One set of value rules: a setting that both the command line and the REPL take is refused in the same words.

`textgen sample --temp 50`, `textgen repl --temp 50` and `/temp 50` run the same rule (`repl.values`); these
tests hold the real programs to that: the CLI as a subprocess (exit 2, one line), the REPL command in a session.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from repl.cli import build_parser

#: Every setting the command line and the REPL share: (flags' name, slash command, bad values).
SHARED = [
    ("--temp", "/temp", ["50", "-0.1", "hot", "nan"]),
    ("--len", "/len", ["0", "100001", "2.5"]),
    ("--top-k", "/topk", ["0", "100001", "many"]),
    ("--top-p", "/topp", ["0", "1.01"]),
    ("--seed", "/seed", ["-1", str(2**32)]),
    ("--window", "/window", ["maybe"]),
    ("--min-copy", "/copies min", ["0", "-5", "many"]),
]
CASES = [(flag, slash, value) for flag, slash, values in SHARED for value in values]


def _cli_message(command: str, flag: str, value: str) -> str:
    """What `textgen COMMAND FLAG=VALUE` says after `argument FLAG: `, as a subprocess (exit 2, one line)."""
    proc = run_cli(command, f"{flag}={value}")
    assert_one_line_error(proc, f"argument {flag}: ")
    match = re.fullmatch(
        rf"textgen {command}: error: argument {flag}: (.*) \(see textgen {command} --help\)\n", proc.stderr
    )
    assert match, proc.stderr
    return match.group(1)


def _repl_message(repl_session, line: str) -> str:
    s, out = repl_session()
    s.submit(line)
    slash = line.split()[0]
    assert out.getvalue().count("\n") == 1 and out.getvalue().startswith(f"{slash}: "), out.getvalue()
    assert s.running
    return out.getvalue().removeprefix(f"{slash}: ").rstrip("\n")


@pytest.mark.parametrize(("flag", "slash", "value"), CASES, ids=[f"{f}={v}" for f, _, v in CASES])
def test_the_command_line_and_the_repl_refuse_a_value_alike(repl_session, flag: str, slash: str, value: str) -> None:
    said = _repl_message(repl_session, f"{slash} {value}")
    assert "must be" in said and repr(value) in said
    assert _cli_message("sample", flag, value) == said
    assert _cli_message("repl", flag, value) == said


def test_the_table_covers_every_setting_the_repl_flags_take() -> None:
    """A value flag added to `textgen repl` (the REPL's settings) must join SHARED, or the test above misses it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.option_strings[-1] for a in sub.choices["repl"]._actions if a.type is not None}
    assert options == {flag for flag, _, _ in SHARED}


def test_too_many_temperatures_are_refused_alike(repl_session) -> None:
    """`sample --temp T…` and `/compare T…` draw their temperatures in one batch, with one limit."""
    temps = ["1"] * 9
    proc = run_cli("sample", "--temp", *temps)
    assert_one_line_error(proc)
    said = _repl_message(repl_session, "/compare " + " ".join(temps))
    assert proc.stderr == f"textgen: error: {said}\n"


def test_sample_jsonl_and_the_repl_transcript_write_the_same_record(
    repl_checkpoint: Path, repl_session, tmp_path: Path
) -> None:
    """One record per character (`Token.record`): the same fields in both files, plus where it belongs."""
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--len", "5", "--seed", "1", "--jsonl")
    assert proc.returncode == 0, proc.stderr
    sampled = [json.loads(line) for line in proc.stdout.splitlines()]
    s, _ = repl_session(length=5)
    s.submit("the will")
    s.submit(f"/save {tmp_path / 'run.jsonl'}")
    saved = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    saved_chars = [r for r in saved if "char" in r]
    assert len(sampled) == len(saved_chars) == 5
    where = {"turn", "branch", "parent", "n"}  # the session's records also say which branch each belongs to
    assert {k for r in sampled for k in r} - {"sample"} == {k for r in saved_chars for k in r} - where
    assert {"char", "index", "prob", "sampled_prob", "entropy", "temperature"} <= set(saved_chars[0])
