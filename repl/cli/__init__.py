"""The `textgen` command: subcommands for training, sampling, evaluation, inspection, and the REPL.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser and sets
``func``. Registration imports nothing heavy: torch is imported only inside `train` and friends when they run,
so `textgen` (the REPL) and `textgen sample` start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from textgen_core.errors import TextgenError

PROG = "textgen"


def one_line(message: str) -> str:
    """An error message as one line a terminal shows as text: messages quote file names and values the user (or a
    stranger's file) chose, which may hold newlines or escape sequences."""
    from .safe import visible

    return visible(message.replace("\n", "\u240a"))


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    from . import cmd_eval, cmd_info, cmd_repl, cmd_sample, cmd_train

    modules = (cmd_repl, cmd_train, cmd_sample, cmd_eval, cmd_info)
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
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
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
    if "textgen_core.distributed" in sys.modules:  # only `train` imports it; the REPL must not pay for torch
        from textgen_core.distributed import exit_if_worker

        exit_if_worker(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
