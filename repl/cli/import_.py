"""`textgen import`: a Keras character-level LSTM (``.keras`` or legacy ``.h5``) as a textgen checkpoint.

The conversion is `textgen_core.keras_import`'s; this command adds what a file on disk needs: the output is written
atomically and never replaces an existing file unless ``--force`` says so (nor ever the Keras file itself).
Opening a Keras file directly (``-c model.keras`` with the same vocabulary flags) needs no import; importing makes
a file that opens without them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .options import add_vocab, vocab_source

if TYPE_CHECKING:
    from .options import Subcommand


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    p.add_argument("model", metavar="MODEL", help="the Keras model file: .keras (Keras 3) or .h5 (Keras 2, legacy)")
    p.add_argument("--out", required=True, metavar="FILE", help="the checkpoint to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_vocab(p)
    p.set_defaults(func=main)


def _check_out(out: Path, model: Path, force: bool) -> None:
    """Refuse, before any work, an output that would lose something or cannot be written."""
    from textgen_core.errors import TextgenError

    if out.is_dir():
        raise TextgenError(f"{out}: is a folder; give --out a file name, e.g. book.safetensors")
    if not out.parent.is_dir():
        raise TextgenError(f"{out}: the folder {out.parent} does not exist; create it or choose another --out")
    if out.exists() and model.exists() and out.samefile(model):
        raise TextgenError(f"{out}: is the Keras model itself; choose another --out")
    if out.exists() and not force:
        raise TextgenError(f"{out}: already exists; pass --force to replace it, or choose another --out")


def main(args: argparse.Namespace) -> int:
    from textgen_core.describe import describe
    from textgen_core.keras_import import save_imported
    from textgen_core.loader import keras_checkpoint

    from ..describe import summary
    from ..safe import flat

    out, model = Path(args.out).expanduser(), Path(args.model).expanduser()
    _check_out(out, model, args.force)
    ckpt = save_imported(keras_checkpoint(model, vocab_source(args)), out)
    print(f"wrote {flat(str(out))}: {' · '.join(summary(describe(ckpt))[:-1])}")
    return 0
