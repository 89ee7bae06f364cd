"""`textgen import`: a Keras character-level LSTM (``.keras`` or legacy ``.h5``) as a textgen checkpoint.

The conversion is `textgen_core.keras_import`'s; this command adds what a file on disk needs: the output is written
atomically and never replaces an existing file unless ``--force`` says so (nor ever the Keras file itself). A
named pipe, a device or ``-`` (standard output) gets the checkpoint as a stream (`textgen_core.atomic`).
Opening a Keras file directly (``-c model.keras`` with the same vocabulary flags) needs no import; importing makes
a file that opens without them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .options import add_vocab, vocab_source

if TYPE_CHECKING:
    from textgen_core.atomic import Output

    from .options import Subcommand


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    p.add_argument("model", metavar="MODEL", help="the Keras model file: .keras (Keras 3) or .h5 (Keras 2, legacy)")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="the checkpoint to write (.safetensors), or - for standard output"
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_vocab(p)
    p.set_defaults(func=main)


def _check_out(out: Output, model: Path, force: bool) -> None:
    """Refuse, before any work, an output that would lose something: an existing file (unless `force`), and
    never the Keras file itself. A stream (a pipe, a device, standard output) loses nothing and is written into."""
    from textgen_core.errors import TextgenError

    if not out.is_file or out.replaces is None or not out.replaces.exists():
        return
    if model.exists() and out.replaces.samefile(model):
        raise TextgenError(f"{out.path}: is the Keras model itself; choose another --out")
    if not force:
        raise TextgenError(f"{out.path}: already exists; pass --force to replace it, or choose another --out")


def main(args: argparse.Namespace) -> int:
    from textgen_core.atomic import target
    from textgen_core.describe import describe
    from textgen_core.keras_import import save_imported
    from textgen_core.loader import keras_checkpoint

    from ..describe import summary
    from ..safe import flat

    out, model = target(args.out, binary=True), Path(args.model).expanduser()
    _check_out(out, model, args.force)
    ckpt = save_imported(keras_checkpoint(model, vocab_source(args)), out.path)
    # On standard output the checkpoint is the output: the report goes to stderr.
    print(
        f"wrote {flat(str(out.path))}: {' · '.join(summary(describe(ckpt))[:-1])}",
        file=sys.stderr if out.to_stdout else sys.stdout,
    )
    return 0
