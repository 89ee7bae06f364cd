"""`textgen repl` (also plain `textgen`): the interactive session.

Its flags parse with the same rules (`repl.values`) as the slash commands that change the same settings.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from textgen_core.config import DEFAULT_LENGTH

from .. import values as v
from .options import add_checkpoint, add_corpus, add_window

if TYPE_CHECKING:
    from .options import Subcommand


DEFAULT_TEMPERATURE = 0.8


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    add_checkpoint(p)
    p.add_argument(
        "--temp",
        type=v.flag(v.parse_temperature),
        default=DEFAULT_TEMPERATURE,
        metavar="T",
        help=f"temperature, 0 = greedy (default {DEFAULT_TEMPERATURE})",
    )
    p.add_argument(
        "--len",
        type=v.flag(v.parse_length),
        default=DEFAULT_LENGTH,
        metavar="N",
        help=f"characters per run (default {DEFAULT_LENGTH})",
    )
    p.add_argument(
        "--top-k", type=v.flag(v.parse_top_k), metavar="K", help="sample among the K likeliest (default off)"
    )
    p.add_argument("--top-p", type=v.flag(v.parse_top_p), metavar="P", help="nucleus sampling mass (default off)")
    p.add_argument(
        "--seed", type=v.flag(v.parse_seed), metavar="N", help="random seed: reproducible runs (default off)"
    )
    add_window(p)
    p.add_argument(
        "--follow",
        action="store_true",
        help="when the run writing CKPT saves a new best model, switch to it between turns (default: only say so)",
    )
    p.add_argument(
        "--copies",
        action="store_true",
        help="turn the copy meter on from the start: underline what the model copies from its training text (/copies)",
    )
    add_corpus(p)
    p.add_argument("--no-color", action="store_true", help="plain text, no escape codes (also NO_COLOR=1)")
    p.add_argument(
        "--history",
        metavar="FILE",
        help="input history file (default: history in the user's state folder, e.g. ~/.local/state/textgen)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # Imported here, not above: the REPL loads rich, prompt_toolkit and numpy, which the other commands don't need.
    from ..app import main as run_app
    from .options import open_model, vocab_source

    return run_app(args, open_model(args), vocab_source(args))
