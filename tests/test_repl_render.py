"""Colouring and batched printing of the REPL (no model needed)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest
from rich.color import Color

from repl import render, safe, values

SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def colour_terminal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads TERM and NO_COLOR: make them a colour terminal's, whatever runs the tests."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)


@dataclass
class Tok:
    char: str
    prob: float = 0.5
    sampled_prob: float = 0.5
    entropy: float = 1.0


def _contrast(hex_colour: str, background: tuple[int, int, int]) -> float:
    """WCAG contrast ratio between a colour and a background."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        lin = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    triplet = Color.parse(hex_colour).get_truecolor()
    a, b = luminance((triplet.red, triplet.green, triplet.blue)), luminance(background)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def test_scale_has_six_to_eight_steps_readable_on_dark_and_light() -> None:
    assert 6 <= len(render.SCALE) <= 8
    for style in render.SCALE:
        colour = style.split()[-1]
        assert _contrast(colour, (255, 255, 255)) >= 3.0, colour
        assert _contrast(colour, (0, 0, 0)) >= 5.0, colour


@pytest.mark.parametrize("mode", ["prob", "sampled"])
def test_probability_modes_run_from_surprising_to_certain(mode: str) -> None:
    probs = [0.0, 0.01, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0]
    field = "prob" if mode == "prob" else "sampled_prob"
    levels = [render.token_style(Tok("a", **{field: p}), mode) for p in probs]
    indices = [int(level.removeprefix("tg.level")) for level in levels]
    assert indices == sorted(indices)
    assert indices[0] == 0 and indices[-1] == len(render.SCALE) - 1


def test_entropy_mode_is_certain_when_entropy_is_low() -> None:
    low = render.token_style(Tok("a", entropy=0.01), "entropy")
    high = render.token_style(Tok("a", entropy=5.0), "entropy")
    assert low == f"tg.level{len(render.SCALE) - 1}" and high == "tg.level0"
    assert render.token_style(Tok("a"), "off") is None


@pytest.mark.parametrize("mode", values.MODES)
def test_legend_explains_every_mode(mode: str) -> None:
    text = render.legend(mode).plain
    if mode == "off":
        assert "off" in text
    else:
        assert "surprising" in text and "certain" in text
        assert len(render.legend(mode).spans) >= len(render.SCALE)


def test_every_style_lives_in_the_one_theme() -> None:
    for name in ("tg.seed", "tg.dim", "tg.note", "tg.error", "tg.label", "tg.key", *render._LEVELS):
        assert name in render.THEME.styles


def test_styled_merges_runs_and_neutralises_controls() -> None:
    text = render.styled([("a", "x"), ("b", "x"), ("\x1b", "y"), ("\n", "y")])
    assert text.plain == "ab␛\n"
    assert len(text.spans) == 2


def _console(color: bool) -> tuple[io.StringIO, object]:
    out = io.StringIO()
    return out, render.make_console(out, color=color)


def test_plain_console_writes_no_escape_codes_even_for_hostile_tokens() -> None:
    out, console = _console(color=False)
    writer = render.StreamWriter(console, "prob")
    for ch in "ok\x1b[31m\x07\x08\r\x9b done\n":
        writer.add(Tok(ch, prob=0.01))
    writer.end_line()
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue() and "\r" not in out.getvalue()
    assert "␛[31m␇␈␍\\x9b done" in out.getvalue()


def test_colour_console_colours_but_never_passes_raw_controls() -> None:
    out, console = _console(color=True)
    writer = render.StreamWriter(console, "prob")
    for ch in "a\x1bb":
        writer.add(Tok(ch, prob=0.01))
    writer.end_line()
    value = out.getvalue()
    assert "\x1b[" in value  # styled
    # Take away rich's own colour codes: what is left is the text, its ESC shown as a picture, no other escape.
    assert SGR.sub("", value) == "a␛b\n"


def test_stream_writer_prints_in_batches_first_char_at_once() -> None:
    now = [0.0]
    calls: list[str] = []

    class Counting:
        def print(self, text: object = "", **kwargs: object) -> None:
            calls.append(getattr(text, "plain", str(text)))

    writer = render.StreamWriter(Counting(), "off", chunk=32, interval=10.0, clock=lambda: now[0])
    flushed = [writer.add(Tok("x")) for _ in range(100)]
    writer.end_line()
    assert flushed[0] is True  # the first character shows at once
    assert sum(flushed) == 1 + (99 // 32)
    assert "".join(calls) == "x" * 100
    assert len(calls) == 1 + 99 // 32 + 1 + 1  # first char, full chunks, the rest, the final newline


def test_stream_writer_flushes_on_time_for_slow_models() -> None:
    now = [0.0]
    out, console = _console(color=False)
    writer = render.StreamWriter(console, "off", chunk=32, interval=0.02, clock=lambda: now[0])
    assert writer.add(Tok("a"))
    now[0] += 0.005
    assert not writer.add(Tok("b"))
    now[0] += 0.03
    assert writer.add(Tok("c"))
    assert out.getvalue() == "abc"


def test_shown_char_makes_whitespace_visible() -> None:
    assert [safe.shown_char(c) for c in "\n\t a\x1b"] == ["⏎", "⇥", "␠", "a", "␛"]


def test_stats_line_reports_rate_bits_and_settings() -> None:
    line = render.stats_line(400, 0.2, 1.234, "T=0.5").plain
    assert line == "400 chars · 2,000 chars/s · 1.23 bits/char · T=0.5"


# ---- the toolbar pinned while a run streams -------------------------------------------------------------------


def _pty_writer(rows: int, cols: int):
    """A text file on the slave side of a pseudo-terminal of the given size, and a reader of what it got."""
    import fcntl
    import os
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = os.fdopen(slave, "w", encoding="utf-8")

    def written() -> str:
        """Everything written so far: the kernel passes it to the master side a little later, so read until the
        line has been quiet for 0.2 s."""
        out.flush()
        data = b""
        while select.select([master], [], [], 0.2)[0]:
            data += os.read(master, 1 << 16)
        return data.decode()

    return out, written, lambda: (out.close(), os.close(master))


def test_the_status_line_pins_a_scroll_region_and_always_gives_it_back() -> None:
    from repl.statusline import StatusLine

    out, written, close = _pty_writer(10, 40)
    try:
        status = StatusLine(out, lambda: " T 0.8 │ len 400 ")
        with pytest.raises(KeyboardInterrupt), status.pinned():
            codes = written()
            assert "\x1b[1;9r" in codes and "\x1b[10;1H" in codes and " T 0.8 │ len 400 " in codes
            raise KeyboardInterrupt  # a Ctrl-C mid-run
        assert "\x1b[r" in written(), "the region is reset on the way out, whatever happened"
        status.refresh()  # not pinned: nothing to redraw
        assert written() == ""
    finally:
        close()


@pytest.mark.parametrize("rows", [2, None])
def test_no_status_line_on_a_tiny_terminal_or_without_one(rows: int | None) -> None:
    from repl.statusline import StatusLine

    if rows is None:
        out, written, close = io.StringIO(), lambda: out.getvalue(), lambda: None
    else:
        out, written, close = _pty_writer(rows, 40)
    try:
        with StatusLine(out, lambda: " T 0.8 ").pinned():
            pass
        assert written() == ""
    finally:
        close()
