"""Every numeric option of every subcommand refuses bad values with one clear line.

The options are found by walking the argparse parsers, so a flag added later is checked without editing this
file: it must refuse negative numbers, NaN, infinities, text, an empty value and (for whole numbers) values
beyond 64 bits, and it must refuse 0 unless it is listed in `ZERO_ALLOWED`. Known upper bounds are listed in
`ABOVE_MAXIMUM`. Parsing runs in-process (fast); one subprocess per command shows the real exit status.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator

import pytest
from conftest import assert_one_line_error, run_cli

from repl.cli import build_parser

#: Options where 0 is meaningful (greedy, no warm-up, no dropout, no samples, seed 0, …).
ZERO_ALLOWED = {
    "--temp", "--seed", "--warmup-steps", "--weight-decay", "--min-lr-ratio", "--sample-len", "--dropout",
    "--embed-dropout", "--weight-drop", "--ema",
}  # fmt: skip
#: (command, option) → the smallest refused value above the allowed range.
ABOVE_MAXIMUM = {
    ("sample", "--top-p"): "1.01",
    ("repl", "--top-p"): "1.01",
    ("repl", "--temp"): "10.01",
    ("repl", "--len"): "100001",
    ("repl", "--top-k"): "100001",
    ("repl", "--seed"): str(2**32),
    ("train", "--val-fraction"): "1",
    ("eval", "--val-fraction"): "1",
    ("train", "--dropout"): "1",
    ("train", "--embed-dropout"): "1",
    ("train", "--weight-drop"): "1",
    ("train", "--ema"): "1",
    ("train", "--min-lr-ratio"): "1.01",
    ("train", "--lr"): "1.01",
    ("train", "--weight-decay"): "10.01",
    ("train", "--sample-len"): "100001",
}
BAD_FOR_ALL = ["-1", "nan", "inf", "-inf", "1e999", "ten", "", "0x10", "1,5"]
BAD_FOR_WHOLE_NUMBERS = ["2.5", "9" * 30, "9" * 5000, "1e3"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def numeric_options() -> Iterator[tuple[str, str, argparse.Action]]:
    """(command, option, action) for every option that converts its value (choices, plain text and on/off
    switches excluded: test_values.py refuses those alike on the command line and in the REPL)."""
    for command, parser in _subparsers().items():
        for action in parser._actions:
            numeric = action.type not in (None, str) and action.choices is None and action.metavar != "on|off"
            if action.option_strings and numeric:
                yield command, action.option_strings[-1], action


OPTIONS = list(numeric_options())


def _base(command: str) -> list[str]:
    """The smallest command line that parses: a dummy value for each required positional and option."""
    argv = [command]
    for action in _subparsers()[command]._actions:
        if not action.option_strings and action.dest not in ("help",):
            argv.append("x")
        elif action.required:
            argv += [action.option_strings[-1], "x"]
    return argv


def _parse(command: str, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    """(accepted, stderr) for `command option=value` (the `=` form, so that "-1" is a value, not an option)."""
    try:
        build_parser().parse_args([*_base(command), f"{option}={value}"])
    except SystemExit as e:
        assert e.code == 2
        return False, capsys.readouterr().err
    return True, ""


def _is_whole_number(action: argparse.Action) -> bool:
    for text in ("1", "0.5", "3"):
        try:
            return isinstance(action.type(text), int)  # type: ignore[misc]
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    raise AssertionError(f"{action.option_strings} accepts none of 1, 0.5, 3")


def test_every_subcommand_has_numeric_options_found() -> None:
    """The walk finds the options (a guard against a refactor that would make the tests below vacuous)."""
    found = {(c, o) for c, o, _ in OPTIONS}
    for expected in [("train", "--hidden-size"), ("train", "--lr"), ("sample", "--top-p"), ("repl", "--len"),
                     ("eval", "--val-fraction"), ("sample", "--temp")]:  # fmt: skip
        assert expected in found
    assert set(ABOVE_MAXIMUM) <= found, "ABOVE_MAXIMUM names an option that no longer exists"


@pytest.mark.parametrize(("command", "option", "action"), OPTIONS, ids=[f"{c}{o}" for c, o, _ in OPTIONS])
def test_numeric_option_refuses_bad_values_with_one_line(
    command: str, option: str, action: argparse.Action, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = list(BAD_FOR_ALL)
    if _is_whole_number(action):
        bad += BAD_FOR_WHOLE_NUMBERS
    if option not in ZERO_ALLOWED:
        bad += ["0", "-0"]
    if (command, option) in ABOVE_MAXIMUM:
        bad.append(ABOVE_MAXIMUM[command, option])
    for value in bad:
        accepted, err = _parse(command, option, value, capsys)
        assert not accepted, f"{command} {option}={value!r} was accepted"
        assert err.count("\n") == 1 and f"argument {option}" in err, err
        assert len(err) < 250, err  # a pasted megabyte is not echoed back
    # A sane value passes: the refusals above are about the values, not the option.
    assert any(_parse(command, option, v, capsys)[0] for v in ("1", "0.5")), f"{command} {option}"
    if option in ZERO_ALLOWED:
        assert _parse(command, option, "0", capsys)[0]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("train", ["c.txt", "--out", "o", "--hidden-size=-3"]),
        ("sample", ["--top-k=0"]),
        ("eval", ["f.txt", "--val-fraction=1.5"]),
        ("repl", ["--len=1000000"]),
    ],
)
def test_the_real_command_exits_2_with_one_line(command: str, args: list[str]) -> None:
    proc = run_cli(command, *args)
    assert_one_line_error(proc, f"argument {args[-1].split('=')[0]}", "(see textgen")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nproc", "100000"], "--nproc 100000: this machine has"),
        (["--hidden-size", "1000000"], "GiB to train and this cpu has"),
        (["--num-layers", str(10**12)], "GiB to train and this cpu has"),
    ],
    ids=["nproc", "hidden-size", "num-layers"],
)
def test_sizes_the_machine_cannot_hold_are_refused_before_anything_starts(
    corpus_file, tmp_path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """Valid numbers that no machine here can run: refused at once (no process spawned, no allocation tried,
    no run folder made) instead of a fork storm, a torch allocation traceback or the OOM killer."""
    from repl import cli

    out = tmp_path / "run"
    status = cli.main(["train", str(corpus_file), "--out", str(out), "--device", "cpu", "--steps", "1", *flags])
    proc = subprocess.CompletedProcess([], status, *capsys.readouterr())
    assert_one_line_error(proc, message)
    assert not out.exists()
