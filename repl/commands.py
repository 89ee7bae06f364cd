"""The REPL's slash commands: one registry that dispatch, `/help`, completion and suggestions all read.

A command is a name, aliases, an argument spec (``[T]`` optional, ``PATH`` required, empty for none), one line
of help and a handler. Handlers parse their argument with the rules of `values`, which are also the argparse
types of the command line's flags, so a value is judged (and refused, in the same words) the same way on the
command line and at the prompt. A bad value raises `TextgenError` saying what is allowed; dispatch prints it
as one line and the session goes on. Handlers only parse and report: the work is `Session`'s.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from rich.table import Table
from rich.text import Text

from textgen_core.config import BOOK_TEMPERATURES
from textgen_core.errors import TextgenError

from . import cellview
from .pick import pick
from .safe import shown
from .session import Session
from .values import (
    MAX_LENGTH,
    MODES,
    Number,
    fmt_opt,
    parse_beam_width,
    parse_color,
    parse_columns,
    parse_count,
    parse_length,
    parse_seed,
    parse_switch,
    parse_temperature,
    parse_top_k,
    parse_top_p,
    parse_window,
)

Handler = Callable[["Session", str], None]


@dataclass(frozen=True)
class Command:
    """One slash command. `args` is the spec shown in help: ``[X]`` optional, ``X`` required, empty none."""

    name: str
    args: str
    help: str
    run: Handler
    aliases: tuple[str, ...] = ()
    #: Values completion offers for the argument.
    choices: tuple[str, ...] = ()
    #: The argument is a file path (completion offers paths).
    path: bool = False

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.args}".rstrip()

    @property
    def needs_arg(self) -> bool:
        return bool(self.args) and not self.args.startswith("[")


class Registry:
    """Looks commands up by name or alias, dispatches a line, suggests a near miss, completes."""

    def __init__(self, commands: Iterable[Command]):
        self.commands = list(commands)
        self._by_name: dict[str, Command] = {}
        for cmd in self.commands:
            for key in (cmd.name, *cmd.aliases):
                if key in self._by_name:
                    raise ValueError(f"duplicate command name /{key}")
                self._by_name[key] = cmd

    @property
    def names(self) -> list[str]:
        """Every name and alias (what a user may type)."""
        return list(self._by_name)

    def find(self, name: str) -> Command | None:
        return self._by_name.get(name.lower())

    def suggest(self, name: str) -> str | None:
        """The command a mistyped name most likely meant: a unique prefix match, else the closest spelling."""
        name = name.lower()
        prefixed = {c.name for c in self.commands if name and c.name.startswith(name)}
        if len(prefixed) == 1:
            return prefixed.pop()
        close = difflib.get_close_matches(name, self.names, n=1, cutoff=0.6)
        return self._by_name[close[0]].name if close else None

    def dispatch(self, session: Session, line: str) -> None:
        """Run a `/command args` line. Every user error becomes one line; the session always goes on."""
        match = re.match(r"/(\S*)(.*)", line, re.DOTALL)
        name, arg = (match.group(1), match.group(2).strip()) if match else ("", "")
        cmd = self.find(name)
        if cmd is None:
            guess = self.suggest(name)
            hint = f"did you mean /{guess}?" if guess else "type /help for the list"
            session.error(f"unknown command /{shown(name)[1:-1]} — {hint}")
            return
        if arg and not cmd.args:
            session.error(f"/{cmd.name} takes no argument")
        elif not arg and cmd.needs_arg:
            session.error(f"usage: {cmd.usage} — {cmd.help}")
        else:
            try:
                cmd.run(session, arg)
            except TextgenError as e:
                session.error(f"/{cmd.name}: {e}")

    def completer(self) -> Completer:
        return _RegistryCompleter(self)


class _RegistryCompleter(Completer):
    """Completes `/name` from the registry, then the argument: its choices, or a path for `/load`."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        name, space, arg = text[1:].partition(" ")
        if not space:
            for cmd in self.registry.commands:
                if cmd.name.startswith(name.lower()):
                    yield Completion(f"/{cmd.name}", -len(text), display_meta=cmd.help)
            return
        cmd = self.registry.find(name)
        if cmd is None:
            return
        if cmd.path:
            yield from self.paths.get_completions(Document(arg), complete_event)
        for choice in cmd.choices:
            if choice.startswith(arg.lower()):
                yield Completion(choice, -len(arg))


# ---- handlers -------------------------------------------------------------------------------------------------


def _temp(s: Session, arg: str) -> None:
    if arg:
        s.update(temperature=parse_temperature(arg))
    s.show("temperature", f"{s.settings.temperature:g}" + (" (greedy)" if s.settings.temperature == 0 else ""))


def _greedy(s: Session, arg: str) -> None:
    _temp(s, "0")


def _len(s: Session, arg: str) -> None:
    if arg:
        s.length = parse_length(arg)
    s.show("length", f"{s.length:,} characters per run")


def _topk(s: Session, arg: str) -> None:
    if arg:
        s.update(top_k=parse_top_k(arg))
    s.show("top-k", fmt_opt(s.settings.top_k))


def _topp(s: Session, arg: str) -> None:
    if arg:
        s.update(top_p=parse_top_p(arg))
    s.show("top-p", fmt_opt(s.settings.top_p))


def _seed(s: Session, arg: str) -> None:
    if arg:
        s.seed = parse_seed(arg)
    s.show("seed", "off (fresh randomness each run)" if s.seed is None else f"{s.seed} (restarted by each new seed)")


def _color(s: Session, arg: str) -> None:
    if arg.lower() == "cell":
        cellview.cell_colour(s)
    elif arg:
        s.color = parse_color(arg)
    s.show("colour", s.colour_name)
    s.legend()


def _continue(s: Session, arg: str) -> None:
    if arg:
        s.carry = parse_switch(arg)
    s.show("continue", "on: each turn carries the model's state on" if s.carry else "off: each seed starts fresh")


def _window(s: Session, arg: str) -> None:
    if arg:
        s.set_window(parse_window(arg))
    window = s.loaded.checkpoint.meta.window
    if window is None:
        s.show("window", "none: this model was not trained on fixed windows; it runs statefully")
    elif s.generator.window is None:
        s.show("window", f"off: each character from all before it, statefully (the model was trained on {window})")
    else:
        s.show("window", f"on: each character from the last {window}, from a zero state, as the model was trained")


def _compare(s: Session, arg: str) -> None:
    s.compare(parse_columns(arg))


def _beam(s: Session, arg: str) -> None:
    s.beam(parse_beam_width(arg))


#: A character's number in the last output (/fork), a branch's id (/go).
_parse_place = Number(int, 1, what="the character's number")
_parse_branch = Number(int, 1, what="the branch id")


def _fork(s: Session, arg: str) -> None:
    number, _, char = arg.partition(" ")
    s.fork(_parse_place(number), char if char else None)


def _pick(s: Session, arg: str) -> None:
    pick(s, arg)


def _tree(s: Session, arg: str) -> None:
    s.show_tree()


def _go(s: Session, arg: str) -> None:
    s.go(_parse_branch(arg))


def _score(s: Session, arg: str) -> None:
    s.score(arg)


def _alts(s: Session, arg: str) -> None:
    s.alternatives(parse_count(arg) if arg else 10)


def _info(s: Session, arg: str) -> None:
    s.info()


def _load(s: Session, arg: str) -> None:
    s.load(arg)


def _follow(s: Session, arg: str) -> None:
    if arg:
        s.follow = parse_switch(arg)
    s.show(
        "follow",
        "on: a new best model the run writes is switched to between turns"
        if s.follow
        else "off: a new best model the run writes is announced; /load switches",
    )


def _reset(s: Session, arg: str) -> None:
    s.reset()


def _save(s: Session, arg: str) -> None:
    s.save(arg)


def _quit(s: Session, arg: str) -> None:
    s.running = False


def _help(s: Session, arg: str) -> None:
    if not arg:
        _overview(s)
        return
    cmd = REGISTRY.find(arg.lstrip("/"))
    if cmd is None:
        guess = REGISTRY.suggest(arg.lstrip("/"))
        raise TextgenError(f"no command {shown(arg)}" + (f"; did you mean /{guess}?" if guess else ""))
    aliases = f" (also {', '.join('/' + a for a in cmd.aliases)})" if cmd.aliases else ""
    s.show(cmd.usage + aliases, cmd.help)


def _overview(s: Session) -> None:
    table = Table.grid(padding=(0, 2))
    for cmd in REGISTRY.commands:
        table.add_row(Text(cmd.usage, style="tg.key"), Text(cmd.help))
    s.console.print(table)
    s.note(
        "Type text and Enter: the model continues it. Empty Enter: continue the last output. "
        "Esc+Enter (or Alt+Enter): new line. While streaming: Up/Down or +/- change the temperature, "
        "Ctrl-C stops. Ctrl-R searches history. Ctrl-D or /quit leaves."
    )


_COMMANDS = [
    Command(
        "temp",
        "[T]",
        "Show or set the temperature: 0 is greedy, 1 samples as trained, higher is wilder.",
        _temp,
        aliases=("temperature",),
    ),
    Command(
        "len",
        "[N]",
        f"Show or set how many characters a run generates (1 to {MAX_LENGTH:,}).",
        _len,
        aliases=("length", "n"),
    ),
    Command(
        "topk",
        "[K|off]",
        "Show or set top-k: sample only among the K most likely characters.",
        _topk,
        aliases=("top-k", "k"),
        choices=("off",),
    ),
    Command(
        "topp",
        "[P|off]",
        "Show or set top-p: sample among the likeliest characters that make up P.",
        _topp,
        aliases=("top-p", "p"),
        choices=("off",),
    ),
    Command("greedy", "", "Always take the most likely character (the same as /temp 0).", _greedy),
    Command(
        "seed",
        "[N|off]",
        "Show or set the random seed: then the same text and settings give the same output.",
        _seed,
        choices=("off",),
    ),
    Command(
        "color",
        "[prob|sampled|entropy|cell|off]",
        "Show or set what the colours mean, with a legend.",
        _color,
        aliases=("colour",),
        choices=(*MODES, "cell"),
    ),
    Command(
        "cells",
        "[FEATURE [FILE]|find REGEX]",
        "Rank the model's cells by how well they follow a feature (quotes, brackets, line…); no argument: all.",
        cellview.rank,
        choices=(*cellview.FEATURES, cellview.FIND),
    ),
    Command(
        "cell",
        "[L:N|off]",
        "Colour output, /score and /compare by cell L:N's value (layer:index, as /cells lists them).",
        cellview.choose_cell,
        choices=("off",),
    ),
    Command(
        "compare",
        "[T1 T2 … beamW]",
        "Continue the last seed at several temperatures in one pass, and beams as beamW "
        f"(default {' '.join(map(str, BOOK_TEMPERATURES))}).",
        _compare,
        aliases=("cmp",),
    ),
    Command(
        "beam",
        "W",
        "Continue the last seed with a beam search of width W: the likeliest text it finds, with its total bits.",
        _beam,
    ),
    Command(
        "pick",
        "[TEXT]",
        "Step mode: choose each next character from the model's top choices (after TEXT, else where it stands).",
        _pick,
    ),
    Command(
        "fork",
        "N [CHAR]",
        "Restart the last output at its character N (as /alts numbers) with CHAR, else the likeliest other one.",
        _fork,
    ),
    Command("tree", "", "List the branches: every run, /compare column, pick, beam and fork.", _tree),
    Command("go", "ID", "Make branch ID current: an empty Enter continues it, /alts and /fork use it.", _go),
    Command(
        "score", "TEXT", "Colour TEXT by how likely the model finds each character and give its bits/char.", _score
    ),
    Command(
        "alts",
        "[N]",
        "Table of the last output's N least likely characters with the model's top 5 instead.",
        _alts,
        aliases=("alternatives",),
    ),
    Command(
        "info", "", "Describe the checkpoint: config, parameters, vocabulary, corpus, steps, val bits/char.", _info
    ),
    Command(
        "load",
        "PATH",
        "Switch to another checkpoint (file or run folder); on error the current one stays.",
        _load,
        path=True,
    ),
    Command(
        "continue",
        "[on|off]",
        "Show or set whether the model's state carries across turns, chat-like.",
        _continue,
        choices=("on", "off"),
    ),
    Command(
        "window",
        "[on|off]",
        "Show or set how a model trained on fixed windows predicts: from its last window (on) or statefully (off).",
        _window,
        choices=("on", "off"),
    ),
    Command(
        "follow",
        "[on|off]",
        "Show or set whether a new best model that the training run writes is loaded by itself between turns.",
        _follow,
        choices=("on", "off"),
    ),
    Command("reset", "", "Forget the model's state and the last output (settings stay).", _reset),
    Command(
        "save",
        "FILE",
        "Save the transcript: plain text, or JSONL with probabilities if FILE ends .jsonl.",
        _save,
        path=True,
    ),
    Command("quit", "", "Leave the REPL (Ctrl-D does too).", _quit, aliases=("exit", "q")),
]
_COMMANDS.append(
    Command(
        "help",
        "[COMMAND]",
        "List the commands, or explain one.",
        _help,
        aliases=("?",),
        choices=(*(c.name for c in _COMMANDS), "help"),
    )
)

REGISTRY = Registry(_COMMANDS)
