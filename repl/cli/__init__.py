"""The `textgen` command: subcommands for training, sampling, evaluation, inspection, and the REPL.

Each subcommand lives in its own module of this package exposing ``register(subparsers, spec)``, which adds its
arguments and sets ``func``; ``python -m repl.cli`` runs `run`. `SUBCOMMANDS` lists them (name, module, one
line, an example) without importing them: a command line imports only the module of the subcommand it names,
and that module imports the library (numpy, rich, prompt_toolkit, torch) only inside its `main`, so every
command starts with nothing loaded that it does not use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from textgen_core.errors import TextgenError

from ..safe import flat
from .options import Subcommand

PROG = "textgen"
#: Every subcommand, in the order `textgen --help` lists them; each module is imported only when it runs.
SUBCOMMANDS = (
    Subcommand(
        "repl",
        "repl",
        "interactive session: type a seed, watch it continue, coloured by the model's probabilities",
        "textgen repl -c runs/book --temp 0.5",
    ),
    Subcommand(
        "train",
        "train",
        "train a character-level LSTM (or GRU, RNN) on text files (val bits/char, resumable checkpoints)",
        "textgen train book.txt --out runs/book --minutes 10",
    ),
    Subcommand(
        "sample",
        "sample",
        "continue a prompt with a trained model, streamed, at one or more temperatures",
        'textgen sample -c runs/book --prompt "the will to " --temp 0.2 0.5 1.0 1.2 --seed 1',
    ),
    Subcommand(
        "eval",
        "eval",
        "bits per character of a model over text files (characters it does not know are counted, not scored)",
        "textgen eval -c runs/book nietzsche.txt --split val --json",
    ),
    Subcommand(
        "versus",
        "versus",
        "score one text with two models: each one's bits/char and the characters where they differ most",
        "textgen versus -c runs/book --against bundled nietzsche.txt --json",
    ),
    Subcommand(
        "copies",
        "copies",
        "the spans of a text that occur word for word in a model's training text (start, length, where)",
        "textgen copies out.txt -c runs/book --json",
    ),
    Subcommand(
        "info",
        "info",
        "describe a checkpoint: config, parameters, vocabulary, corpus, steps, val bpc",
        "textgen info -c runs/book --json",
    ),
    Subcommand(
        "cells",
        "cells",
        "rank the model's LSTM cells by how well they follow a feature of a text (quotes, brackets, line position)",
        "textgen cells -c runs/book nietzsche.txt --feature quote --top 5 --json",
    ),
    Subcommand(
        "import",
        "import_",
        "turn a Keras character-level LSTM (.keras or .h5, e.g. the book's) into a textgen checkpoint",
        "textgen import book.keras --vocab-from nietzsche.txt --lowercase --out book.safetensors",
    ),
)


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` finds it ($COLUMNS, else standard output's terminal,
    else 80), found here because argparse's help formatter imports shutil to ask, and shutil imports three
    compression modules: milliseconds of every command's start-up, since argparse builds a formatter for each
    argument it is given, help or not."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Formatter(argparse.HelpFormatter):
    """Help laid out at the terminal's width (`_columns`, less argparse's own two-column margin)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _AsWritten(argparse.RawDescriptionHelpFormatter, Formatter):
    """`Formatter`, keeping the description and the command list (`textgen --help`) as written."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit with status 2; help at the terminal's
    width (`Formatter`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {flat(message)} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> Parser:
    """The `textgen` parser. With `command`, only that subcommand's module is imported and given its arguments,
    and the others are left out (argv names this one; building nine parsers is a tenth of a one-character
    sample's start-up); with "" (no known command) every one is listed by name and summary; with None every
    subcommand is complete."""
    epilog = "commands:\n" + "\n".join(f"  {c.name:<8} {c.summary}\n  {'':<8}   e.g. {c.example}" for c in SUBCOMMANDS)
    epilog += "\n\nRun `textgen` with no command to open the REPL on the bundled Nietzsche model."
    parser = Parser(
        prog=PROG,
        description=(
            "Character-level recurrent language model (LSTM, GRU, RNN): train on any text, sample, explore in a "
            "coloured REPL."
        ),
        epilog=epilog,
        formatter_class=_AsWritten,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for spec in SUBCOMMANDS:
        if command is None or spec.name == command:
            import_module(f"{__name__}.{spec.module}").register(sub, spec)
        elif not command:
            sub.add_parser(spec.name, help=spec.summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv) or ["repl"]
    names = {c.name for c in SUBCOMMANDS}
    parser = build_parser(argv[0] if argv[0] in names else "")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TextgenError as e:
        print(f"{PROG}: error: {flat(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error for the user.
        sys.stderr.close()
        return 0


def run() -> None:
    code = main()
    if "textgen_core.training.distributed" in sys.modules:  # only `train` imports it; the REPL must not pay for torch
        from textgen_core.training.distributed import exit_if_worker

        exit_if_worker(code)
    sys.exit(code)
