"""The slash-command registry, every command's parsing and errors, and the REPL under random abuse."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from unittest import mock

import pytest
from conftest import write_random_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from repl import values
from repl.commands import REGISTRY
from repl.features import steering
from repl.features.model import banner
from repl.values import parse_temperatures
from textgen_core.errors import TextgenError

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def completions(text: str) -> list[str]:
    """The lines that accepting each completion of `text` would give."""
    doc = Document(text, len(text))
    return [
        text[: len(text) + c.start_position] + c.text
        for c in REGISTRY.completer().get_completions(doc, CompleteEvent())
    ]


# ---- registry ---------------------------------------------------------------------------------------------------


def test_every_command_has_one_line_help_ending_with_a_period() -> None:
    for cmd in REGISTRY.commands:
        assert cmd.help.endswith(".") and "\n" not in cmd.help, cmd.name
        assert len(cmd.usage) + len(cmd.help) < 150, cmd.name


def test_issue_commands_and_aliases_exist() -> None:
    wanted = "temp len topk topp greedy seed color compare score alts info load continue reset save help quit exit"
    for name in wanted.split():
        assert REGISTRY.find(name) is not None, name
    assert REGISTRY.find("EXIT") is REGISTRY.find("quit")


def test_completion_lists_every_command() -> None:
    assert completions("/") == [f"/{c.name}" for c in REGISTRY.commands]
    assert completions("/te") == ["/temp"]
    assert completions("plain seed text") == []


def test_completion_of_arguments() -> None:
    assert completions("/color e") == ["/color entropy"]
    assert completions("/continue ") == ["/continue on", "/continue off"]
    assert "/help temp" in completions("/help t")


def test_load_completes_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert completions("/load mod") == ["/load model.safetensors"]


@pytest.mark.parametrize(
    ("typo", "meant"), [("tmep", "temp"), ("lne", "len"), ("cmopare", "compare"), ("qit", "quit"), ("te", "temp")]
)
def test_unknown_command_suggests_the_nearest(typo: str, meant: str) -> None:
    assert REGISTRY.suggest(typo) == meant


# ---- value rules (shared with the command-line flags) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (values.parse_temperature, {"0": 0.0, "0.5": 0.5, "10": 10.0}, ["-0.1", "nan", "inf", "1e999", "x", "10.5"]),
        (values.parse_length, {"1": 1, "100000": 100_000}, ["0", "-5", "100001", "1.5", "9" * 5000, ""]),
        (values.parse_top_k, {"off": None, "1": 1, "40": 40}, ["0", "-1", "2.5", "many"]),
        (values.parse_top_p, {"off": None, "1": 1.0, "0.9": 0.9}, ["0", "1.01", "-0.5", "nan"]),
        (values.parse_seed, {"off": None, "0": 0, "42": 42}, ["-1", str(2**32), "1.5"]),
    ],
)
def test_value_rules(parse, good: dict, bad: list[str]) -> None:
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(TextgenError) as e:
            parse(text)
        assert "must be" in str(e.value) and "\n" not in str(e.value)
        assert len(str(e.value)) < 150  # a pasted megabyte is not echoed back


@given(st.text(max_size=40))
def test_value_rules_never_raise_anything_else(text: str) -> None:
    for parse in (
        values.parse_temperature,
        values.parse_length,
        values.parse_top_k,
        values.parse_top_p,
        values.parse_seed,
        parse_temperatures,
    ):
        with contextlib.suppress(TextgenError):
            parse(text)


def test_compare_defaults_to_the_books_temperatures() -> None:
    assert parse_temperatures("") == (0.2, 0.5, 1.0, 1.2)
    assert parse_temperatures("0.1, 2") == (0.1, 2.0)
    with pytest.raises(TextgenError):
        parse_temperatures(" ".join(["1"] * 9))


def test_on_a_narrow_terminal_the_banner_breaks_between_its_parts(repl_session) -> None:
    """A terminal's own wrap cuts words and numbers ("val 1.78" / "1 bits/char"); the banner breaks at its dots."""
    from conftest import ANSI

    s, out = repl_session()
    banner(s)
    one_line = out.getvalue().rstrip("\n")  # without colour the console is not a terminal: one line, for pipes
    assert "\n" not in one_line and one_line.endswith(" · type /help")
    s, out = repl_session(color=True)
    s.console.width = 40
    banner(s)
    lines = ANSI.sub("", out.getvalue()).splitlines()
    assert len(lines) > 2 and all(len(line) <= 40 for line in lines)
    assert " · ".join(lines) == one_line


# ---- each command in a session ------------------------------------------------------------------------------------


def test_commands_show_without_argument_and_set_with_one(repl_session) -> None:
    s, out = repl_session()
    for line, shown in [
        ("/temp 0.5", "temperature  0.5"),
        ("/temp", "temperature  0.5"),
        ("/greedy", "temperature  0 (greedy)"),
        ("/len 77", "length  77 characters"),
        ("/topk 5", "top-k  5"),
        ("/topk off", "top-k  off"),
        ("/topp 0.9", "top-p  0.9"),
        ("/seed 7", "seed  7"),
        ("/seed off", "seed  off"),
        ("/continue on", "continue  on"),
        ("/color entropy", "colour  entropy"),
    ]:
        s.submit(line)
        assert shown in out.getvalue(), line
    assert s.settings.top_p == 0.9 and s.length == 77 and s.carry and s.color == "entropy"
    assert s.generator.settings is s.settings
    assert "surprising" in out.getvalue()  # /color prints the legend


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/temp -1", "/temp: temperature must be a number from 0 to 10 (0 = greedy), not '-1'"),
        ("/len 100001", "/len: length must be a whole number from 1 to 100,000, not '100001'"),
        ("/topk zero", "/topk: top-k must be a whole number"),
        ("/topp 2", "/topp: top-p must be a number above 0 and at most 1, or off, not '2'"),
        ("/color rainbow", "/color: colour mode must be one of prob, sampled, entropy, off"),
        ("/continue maybe", "/continue: give on or off"),
        ("/quit now", "/quit takes no argument"),
        ("/load", "usage: /load PATH"),
        ("/tmep 0.5", "unknown command /tmep — did you mean /temp?"),
        ("/xyzzy", "unknown command /xyzzy — type /help for the list"),
        ("/alts", "/alts: nothing generated yet"),
        ("/compare", "/compare: type a seed first"),
        ("/save out.txt", "/save: nothing to save yet"),
        ("/help nosuch", "/help: no command 'nosuch'"),
    ],
)
def test_bad_values_get_one_line_and_the_session_goes_on(repl_session, line: str, message: str) -> None:
    s, out = repl_session()
    s.submit(line)
    assert out.getvalue().startswith(message)
    assert out.getvalue().count("\n") == 1
    assert s.running


def test_seed_streams_a_continuation_and_a_stats_line(repl_session) -> None:
    s, out = repl_session(length=30, temperature=0.5)
    s.submit("the will")
    text = out.getvalue()
    assert text.startswith("the will")
    assert len(s.transcript[-1].tokens) == 30
    assert re.fullmatch(r"30 chars · [\d,]+ chars/s · \d+\.\d\d bits/char · T=0\.5", text.splitlines()[-1])


def test_empty_enter_continues_and_reset_forgets(repl_session) -> None:
    s, out = repl_session(length=10)
    s.submit("")
    assert "type some text" in out.getvalue()
    s.submit("the")
    state = s.generator.get_state()
    s.submit("")
    assert s.transcript[-1].seed == "" and len(s.transcript[-1].tokens) == 10
    assert not (state.lstm.h == s.generator.get_state().lstm.h).all()  # it went on from where it was
    s.submit("/reset")
    s.submit("")
    assert out.getvalue().rstrip().endswith("an empty line continues the last output")


def test_same_seed_same_output(repl_session) -> None:
    s, _ = repl_session(length=50, temperature=1.0, seed=3)
    s.submit("the will")
    s.submit("the will")
    first, second = ("".join(t.char for t in turn.tokens) for turn in s.transcript)
    assert first == second


def test_continue_on_carries_the_state(repl_session) -> None:
    s, _ = repl_session(length=5, temperature=0)
    s.submit("the will")
    fresh = s.generator.get_state()
    s.submit("/continue on")
    s.submit("the will")
    assert not (fresh.lstm.h == s.generator.get_state().lstm.h).all()


def test_unknown_seed_characters_are_reported(repl_session) -> None:
    s, out = repl_session(length=5)
    s.submit("the ☃ will")
    assert "skipped characters this model does not know: '☃' ×1" in out.getvalue()
    s.submit("the \udcff will")  # an undecodable byte from stdin
    assert "skipped characters this model does not know: '\ufffd' ×1" in out.getvalue()


def test_compare_prints_one_labelled_block_per_temperature(repl_session) -> None:
    s, out = repl_session(length=20)
    s.submit("the will")
    s.submit("/compare")
    labels = re.findall(r"^── (T=[\d.]+) · [\d.]+ bits/char$", out.getvalue(), re.MULTILINE)
    assert labels == ["T=0.2", "T=0.5", "T=1", "T=1.2"]
    s.submit("/compare 0 3")
    assert "── greedy" in out.getvalue() and "── T=3" in out.getvalue()


def test_compare_is_one_batched_pass(repl_session) -> None:
    s, _ = repl_session(length=7)
    s.submit("the")
    with mock.patch("repl.features.steering.sample_many", wraps=steering.sample_many) as spy:
        s.submit("/compare 0.2 0.5 1.0")
    assert spy.call_count == 1 and len(spy.call_args.args[3]) == 3


def test_score_colours_the_text_and_reports_bits(repl_session) -> None:
    s, out = repl_session(color=True)
    s.submit("/score the will to power")
    text = out.getvalue()
    assert "\x1b[" in text
    assert re.search(r"\d+\.\d{3} bits/char over 17 characters", text)


def test_alts_shows_the_least_likely_characters_with_alternatives(repl_session) -> None:
    s, out = repl_session(length=60, temperature=2.0)
    s.submit("the will")
    s.submit("/alts 3")
    tokens = s.transcript[-1].tokens
    lowest = sorted(t.prob for t in tokens)[:3]
    table = out.getvalue().split("least likely characters")[1]
    for p in lowest:
        assert f"{p:.3f}" in table
    assert table.count("0.") >= 3 * 5  # five alternatives each


def test_info_describes_the_checkpoint(repl_session) -> None:
    s, out = repl_session()
    s.submit("/info")
    text = out.getvalue()
    for word in ("checkpoint", "1×32 LSTM", "parameters", "vocabulary", "41 characters", "steps", "val bpc"):
        assert word in text


def test_load_switches_and_a_bad_checkpoint_keeps_the_old_one(repl_session, tmp_path: Path) -> None:
    s, out = repl_session()
    old = s.loaded
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint at all")
    s.submit(f"/load {bad}")
    assert out.getvalue().startswith("/load: ") and "not a textgen checkpoint: it is a Python pickle" in out.getvalue()
    assert s.loaded is old
    s.submit(f"/load {tmp_path / 'missing'}")
    s.submit("/load " + "x" * 5000)  # longer than any file name may be
    s.submit("/load ~nosuchuser/model.safetensors")
    assert "/load: cannot use 'xxxx" in out.getvalue() and "/load: cannot use '~nosuchuser" in out.getvalue()
    s.submit("/load model\0.safetensors")  # Ctrl-@ types a NUL, which no path can hold
    assert out.getvalue().splitlines()[-1].endswith("as a path (it contains a NUL character)")
    assert s.loaded is old
    other = write_random_checkpoint(tmp_path / "other.safetensors", hidden=16, seed=1)
    s.submit(f"/load {other}")
    assert s.loaded is not old and s.loaded.checkpoint.name == "other"
    assert "textgen · other" in out.getvalue()


def test_save_writes_text_and_jsonl(repl_session, tmp_path: Path) -> None:
    s, out = repl_session(length=12)
    s.submit("the will")
    s.submit("")
    s.submit("a new seed")
    s.submit(f"/save {tmp_path / 'run.txt'}")
    s.submit(f"/save {tmp_path / 'run.jsonl'}")
    plain = (tmp_path / "run.txt").read_text()
    turns = s.transcript
    first = "the will" + "".join(t.char for t in turns[0].tokens) + "".join(t.char for t in turns[1].tokens)
    assert plain == first + "\n\na new seed" + "".join(t.char for t in turns[2].tokens) + "\n"
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records if "seed" in r] == ["the will", "", "a new seed"]
    chars = [r for r in records if "char" in r]
    assert len(chars) == 36 and all(0 <= r["prob"] <= 1 and r["entropy"] >= 0 for r in chars)
    for folder in (".", "/", str(tmp_path)):
        s.submit(f"/save {folder}")
        assert "is a folder; give a file name" in out.getvalue().splitlines()[-1]
    s.submit(f"/save {tmp_path / 'no' / 'such' / 'dir.txt'}")
    assert "/save: " in out.getvalue().splitlines()[-1] and "could not write" in out.getvalue()
    s.submit(f"/save {tmp_path / 'a'}\0.txt")
    assert out.getvalue().splitlines()[-1].endswith("as a path (it contains a NUL character)")


def test_help_lists_every_command_and_explains_one(repl_session) -> None:
    s, out = repl_session()
    s.submit("/help")
    for cmd in REGISTRY.commands:
        assert f"/{cmd.name}" in out.getvalue()
    s.submit("/help /temp")
    assert "(also /temperature)" in out.getvalue()


def test_quit_and_exit_end_the_session(repl_session) -> None:
    for line in ("/quit", "/exit", "/q"):
        s, _ = repl_session()
        s.submit(line)
        assert not s.running


# ---- abuse ------------------------------------------------------------------------------------------------------

ARGS = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "off", "on", "nan", "-inf", "1e309", "0", "-0", "1" * 400, "💥" * 50]),
    st.sampled_from(["\x1b[2J", "\r\x07", "\udcff", "a\ud800b"]),  # terminal controls, undecodable bytes
    st.sampled_from(["~nosuchuser/x", "~", "/", ".", "..", "x" * 300, "a/" * 200]),  # paths pathlib dislikes
)
LINES = st.one_of(
    st.tuples(st.sampled_from(REGISTRY.names), ARGS).map(lambda c: f"/{c[0]} {c[1]}"),
    st.text(max_size=60).map(lambda t: "/" + t),
    st.text(st.characters(exclude_categories=()), max_size=60),  # surrogates too: undecodable bytes
)


def test_random_lines_never_raise_and_never_print_controls(repl_session, tmp_path: Path) -> None:
    """Thousands of random lines, commands and arguments: nothing raises, the output stays free of controls.
    /save really writes, but only inside tmp_path (a path leading elsewhere is redirected there), and runs are
    kept short (/len is still parsed and set)."""
    from textgen_core.atomic import atomic_write
    from textgen_core.paths import user_path

    def write_inside(path: str, write):
        named = user_path(path)  # the writer's own checks first: a NUL, a name too long
        inside = named.resolve().is_relative_to(tmp_path.resolve())
        return atomic_write(path if inside else tmp_path / named.name, write)

    s, out = repl_session(length=3)

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(LINES, min_size=1, max_size=5))
    def run(lines: list[str]) -> None:
        for line in lines:
            s.submit(line)
            s.length = min(s.length, 3)
            s.running = True
        assert not CONTROL.search(out.getvalue())
        assert math.isfinite(s.settings.temperature) and 0 <= s.settings.temperature <= 10
        out.seek(0)
        out.truncate()

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with mock.patch("repl.features.save.atomic_write", write_inside):
            run()
    finally:
        os.chdir(cwd)
