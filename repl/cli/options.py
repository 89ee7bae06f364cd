"""Options several subcommands share, defined once (one spelling, one help text), and how they open the model.

Registering stays light: the library (numpy, h5py) is imported only when a command runs `open_model`, through
`textgen_core.loader`, the one place that opens what a user names.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NamedTuple

from .. import values as v

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint
    from textgen_core.loader import VocabSource


class Subcommand(NamedTuple):
    """A subcommand as `textgen --help` lists it, declared without importing its module (`module`, in this
    package), so that only the subcommand that runs is loaded."""

    name: str
    module: str
    summary: str
    example: str

    def add_parser(self, sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """The subcommand's parser, described by its summary and example (its module adds the arguments)."""
        description = f"{self.summary[0].upper()}{self.summary[1:]}. Example: {self.example}"
        return sub.add_parser(self.name, help=self.summary, description=description)


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """The `-c` option every command that reads a model takes, and the vocabulary a Keras model given there needs."""
    parser.add_argument(
        "-c",
        "--checkpoint",
        metavar="CKPT",
        help="a .safetensors file, a run folder, or a Keras .keras/.h5 model (default: the bundled model)",
    )
    add_vocab(parser)


def add_vocab(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Where a Keras model's vocabulary comes from (a Keras file holds none; a textgen checkpoint ignores these)."""
    group = parser.add_argument_group("a Keras model's vocabulary (a Keras file holds none)")
    source = group.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--vocab-from",
        metavar="CORPUS",
        help="the text the model was trained on: its sorted distinct characters, as the book builds them",
    )
    source.add_argument("--chars", metavar="FILE", help="a file of the model's characters, in order")
    group.add_argument(
        "--lowercase", action="store_true", help="the model was trained on lower-cased text (the book's was)"
    )


def add_window(parser: argparse.ArgumentParser) -> None:
    """`--window on|off`: the book's windowed prediction, or the stateful one, for a model trained on windows."""
    parser.add_argument(
        "--window",
        type=v.flag(v.parse_window),
        choices=(True, False),  # what the rule returns: a switch, not a number (the rule has refused anything else)
        metavar="on|off",
        help="for a model trained on fixed windows (an imported Keras model): predict each character from the "
        "last WINDOW characters from a zero state, as it was trained (on, its default), or statefully from all "
        "before it (off: faster)",
    )


def add_corpus(parser: argparse.ArgumentParser) -> None:
    """The copy meter's options: the training text, insisting on one whose hash differs, and the shortest copy."""
    group = parser.add_argument_group("the copy meter (docs/copies.md)")
    group.add_argument(
        "--corpus",
        action="append",
        metavar="FILE",
        help="the model's training text (repeat for several files, in training's order); checked against the "
        "sha256 the model records. Default: where the model records it was read from",
    )
    group.add_argument(
        "--corpus-anyway",
        action="store_true",
        help="measure against --corpus even though its sha256 differs from the model's record",
    )
    group.add_argument(
        "--min-copy",
        type=v.flag(v.parse_min_copy),
        default=v.DEFAULT_MIN_COPY,
        metavar="N",
        help=f"a stretch of N characters found in the training text counts as copied (default {v.DEFAULT_MIN_COPY})",
    )


def vocab_source(args: argparse.Namespace) -> VocabSource:
    from textgen_core.loader import VocabSource

    return VocabSource(corpus=args.vocab_from, chars=args.chars, lowercase=args.lowercase)


def open_model(args: argparse.Namespace) -> Checkpoint:
    """The model `-c` names, a textgen checkpoint or a Keras file (`loader.open_model`)."""
    from textgen_core.loader import open_model as open_any

    return open_any(args.checkpoint, vocab_source(args))


def window(args: argparse.Namespace, ckpt: Checkpoint) -> int | None:
    """The window `ckpt` runs with under `--window` (`loader.run_window`)."""
    from textgen_core.loader import run_window

    return run_window(ckpt.meta, getattr(args, "window", None))
