"""The settings a user changes between runs (and the temperature mid-stream): each command shows the value, and
with an argument sets it first, parsed by the same rule (`repl.values`) as the command line's flag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..values import (
    fmt_opt,
    parse_color,
    parse_length,
    parse_seed,
    parse_switch,
    parse_temperature,
    parse_top_k,
    parse_top_p,
    parse_window,
)
from . import cells

if TYPE_CHECKING:
    from ..session import Session


def temp(s: Session, arg: str) -> None:
    if arg:
        s.update(temperature=parse_temperature(arg))
    s.show("temperature", f"{s.settings.temperature:g}" + (" (greedy)" if s.settings.temperature == 0 else ""))


def greedy(s: Session, arg: str) -> None:
    temp(s, "0")


def length(s: Session, arg: str) -> None:
    if arg:
        s.length = parse_length(arg)
    s.show("length", f"{s.length:,} characters per run")


def top_k(s: Session, arg: str) -> None:
    if arg:
        s.update(top_k=parse_top_k(arg))
    s.show("top-k", fmt_opt(s.settings.top_k))


def top_p(s: Session, arg: str) -> None:
    if arg:
        s.update(top_p=parse_top_p(arg))
    s.show("top-p", fmt_opt(s.settings.top_p))


def seed(s: Session, arg: str) -> None:
    if arg:
        s.seed = parse_seed(arg)
    s.show("seed", "off (fresh randomness each run)" if s.seed is None else f"{s.seed} (restarted by each new seed)")


def color(s: Session, arg: str) -> None:
    if arg.lower() == "cell":
        cells.cell_colour(s)
    elif arg:
        s.color = parse_color(arg)
    s.show("colour", s.colour_name)
    s.legend()


def carry(s: Session, arg: str) -> None:
    """/continue: whether the model's state carries across turns."""
    if arg:
        s.carry = parse_switch(arg)
    s.show("continue", "on: each turn carries the model's state on" if s.carry else "off: each seed starts fresh")


def window(s: Session, arg: str) -> None:
    if arg:
        s.set_window(parse_window(arg))
    trained = s.loaded.checkpoint.meta.window
    if trained is None:
        s.show("window", "none: this model was not trained on fixed windows; it runs statefully")
    elif s.generator.window is None:
        s.show("window", f"off: each character from all before it, statefully (the model was trained on {trained})")
    else:
        s.show("window", f"on: each character from the last {trained}, from a zero state, as the model was trained")


def follow(s: Session, arg: str) -> None:
    if arg:
        s.follow = parse_switch(arg)
    s.show(
        "follow",
        "on: a new best model the run writes is switched to between turns"
        if s.follow
        else "off: a new best model the run writes is announced; /load switches",
    )


def reset(s: Session, arg: str) -> None:
    s.reset()
    s.note("model state cleared; type a seed")
