"""The REPL's slash commands: one registry that dispatch, `/help`, completion and suggestions all read.

A command is a name, aliases, an argument spec (``[T]`` optional, ``PATH`` required, empty for none), one line
of help and a handler. Handlers parse their argument with the rules of `values`, which are also the argparse
types of the command line's flags, so a value is judged (and refused, in the same words) the same way on the
command line and at the prompt. A bad value raises `TextgenError` saying what is allowed; dispatch prints it
as one line and the session goes on. A handler is a function of the feature module that owns the command
(`repl.features`); this module holds the table and the commands about commands (/help, /quit).
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

from .features import cells, copies, model, save, scoring, settings, steering, versus
from .features.pick import pick
from .safe import shown
from .session import Session
from .values import MAX_LENGTH, MODES

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
    s.print(table)
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
        settings.temp,
        aliases=("temperature",),
    ),
    Command(
        "len",
        "[N]",
        f"Show or set how many characters a run generates (1 to {MAX_LENGTH:,}).",
        settings.length,
        aliases=("length", "n"),
    ),
    Command(
        "topk",
        "[K|off]",
        "Show or set top-k: sample only among the K most likely characters.",
        settings.top_k,
        aliases=("top-k", "k"),
        choices=("off",),
    ),
    Command(
        "topp",
        "[P|off]",
        "Show or set top-p: sample among the likeliest characters that make up P.",
        settings.top_p,
        aliases=("top-p", "p"),
        choices=("off",),
    ),
    Command("greedy", "", "Always take the most likely character (the same as /temp 0).", settings.greedy),
    Command(
        "seed",
        "[N|off]",
        "Show or set the random seed: then the same text and settings give the same output.",
        settings.seed,
        choices=("off",),
    ),
    Command(
        "color",
        "[prob|sampled|entropy|cell|off]",
        "Show or set what the colours mean, with a legend.",
        settings.color,
        aliases=("colour",),
        choices=(*MODES, "cell"),
    ),
    Command(
        "cells",
        "[FEATURE [FILE]|find REGEX]",
        "Rank the model's cells by how well they follow a feature (quotes, brackets, line…); no argument: all.",
        cells.rank,
        choices=(*cells.FEATURES, cells.FIND),
    ),
    Command(
        "cell",
        "[L:N|off]",
        "Colour output, /score and /compare by cell L:N's value (layer:index, as /cells lists them).",
        cells.choose_cell,
        choices=("off",),
    ),
    Command(
        "compare",
        "[T1 T2 … beamW]",
        "Continue the last seed at several temperatures in one pass, and beams as beamW "
        f"(default {' '.join(map(str, BOOK_TEMPERATURES))}).",
        steering.compare,
        aliases=("cmp",),
    ),
    Command(
        "beam",
        "W [norepeat N]",
        "Continue the last seed with a beam of width W (norepeat N: no N-character stretch twice); its total bits.",
        steering.beam,
    ),
    Command(
        "versus",
        "CKPT|bundled|run",
        "Continue the last seed with this model and another, same random numbers: both texts, bits/char on each.",
        versus.versus,
        aliases=("vs",),
        choices=(versus.BUNDLED, versus.RUN),
        path=True,
    ),
    Command(
        "copies",
        "[on|off|min N|FILE|anyway FILE]",
        "Underline what the model copies word for word from its training text; sum it up after each run.",
        copies.copies,
        choices=("on", "off", "min", "anyway"),
        path=True,
    ),
    Command(
        "pick",
        "[TEXT]",
        "Step mode: choose each next character from the model's top choices (after TEXT, else where it stands).",
        pick,
    ),
    Command(
        "fork",
        "N [CHAR]",
        "Restart the last output at its character N (as /alts numbers) with CHAR, else the likeliest other one.",
        steering.fork,
    ),
    Command("tree", "", "List the branches: every run, /compare column, pick, beam and fork.", steering.tree),
    Command("go", "ID", "Make branch ID current: an empty Enter continues it, /alts and /fork use it.", steering.go),
    Command(
        "score",
        "TEXT",
        "Colour TEXT by how likely the model finds each character and give its bits/char.",
        scoring.score,
    ),
    Command(
        "alts",
        "[N]",
        "Table of the last output's N least likely characters with the model's top 5 instead.",
        scoring.alternatives,
        aliases=("alternatives",),
    ),
    Command(
        "info", "", "Describe the checkpoint: config, parameters, vocabulary, corpus, steps, val bits/char.", model.info
    ),
    Command(
        "load",
        "PATH",
        "Switch to another checkpoint (file or run folder); on error the current one stays.",
        model.load,
        path=True,
    ),
    Command(
        "continue",
        "[on|off]",
        "Show or set whether the model's state carries across turns, chat-like.",
        settings.carry,
        choices=("on", "off"),
    ),
    Command(
        "window",
        "[on|off]",
        "Show or set how a model trained on fixed windows predicts: from its last window (on) or statefully (off).",
        settings.window,
        choices=("on", "off"),
    ),
    Command(
        "follow",
        "[on|off]",
        "Show or set whether a new best model that the training run writes is loaded by itself between turns.",
        settings.follow,
        choices=("on", "off"),
    ),
    Command("reset", "", "Forget the model's state and the last output (settings stay).", settings.reset),
    Command(
        "save",
        "FILE",
        "Save the transcript: plain text, or JSONL with probabilities if FILE ends .jsonl.",
        save.save,
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
