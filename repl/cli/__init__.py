"""The `textgen` command: subcommands for training, sampling, evaluation, inspection, and the REPL.

Each subcommand lives in its own module of this package exposing ``register(subparsers)``, which adds its
parser and sets ``func``; ``python -m repl.cli`` runs `run`. Registration imports nothing heavy: torch, numpy,
rich and prompt_toolkit are imported only inside a subcommand's `main` when it runs, so every command starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from textgen_core.errors import TextgenError

from ..safe import flat
from . import cells, eval, import_, info, repl, sample, train

PROG = "textgen"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {flat(message)} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    modules = (repl, train, sample, eval, info, cells, import_)
    epilog = "commands:\n" + "\n".join(f"  {m.NAME:<8} {m.SUMMARY}\n  {'':<8}   e.g. {m.EXAMPLE}" for m in modules)
    epilog += "\n\nRun `textgen` with no command to open the REPL on the bundled Nietzsche model."
    parser = Parser(
        prog=PROG,
        description="Character-level LSTM language model: train on any text, sample, explore in a coloured REPL.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for m in modules:
        m.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv or ["repl"])
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
