"""Options several subcommands share, defined once (one spelling, one help text)."""

from __future__ import annotations

import argparse


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """The `-c` option every command that reads a model takes."""
    parser.add_argument(
        "-c", "--checkpoint", metavar="CKPT", help="a .safetensors file or a run folder (default: the bundled model)"
    )
