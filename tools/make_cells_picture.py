"""Render docs/cells.svg: passages of the Nietzsche validation tenth coloured by the bundled model's best quote cell
and its line-position cell, on the REPL's diverging scale (rich's Console(record=True).save_svg).

Each cell is read in one exact stream from the start of the validation tenth (`cells.cell_values`), so the
passage's values carry all the context before it. Run from the repository root:

    python tools/make_cells_picture.py [--corpus /path/to/nietzsche.txt]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.render import THEME, cell_legend, cell_style, styled  # noqa: E402
from textgen_core.cells import cell_values, parse_cell  # noqa: E402
from textgen_core.checkpoint import load  # noqa: E402
from textgen_core.config import DEFAULT_VAL_FRACTION  # noqa: E402
from textgen_core.corpus import val_start  # noqa: E402
from textgen_core.inference import NumpyLSTM  # noqa: E402

WIDTH = 100
#: (cell, what it follows, its r over the validation tenth as docs/record/cells.md reports it, passage start, end)
PANELS = [
    ("1:605", "inside double quotes", "−0.66", 4100, 4700),
    ("1:329", "position in the line", "+0.90", 4100, 4480),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "nietzsche.txt")
    args = ap.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    val = text[val_start(len(text), DEFAULT_VAL_FRACTION) :]
    ckpt = load(None)
    model = NumpyLSTM.from_checkpoint(ckpt)
    with open(os.devnull, "w") as sink:
        console = Console(
            record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=sink, theme=THEME
        )
        for label, what, r, a, b in PANELS:
            layer, index = parse_cell(label, model)
            read, values = cell_values(model, ckpt.vocab, val[:b], layer, index, lowercase=ckpt.meta.lowercase)
            assert len(read) == b, "the passage holds characters the model does not know"
            console.print(Text(f"cell {label} · {what} · r {r} over the validation tenth", style="tg.label"))
            console.print(styled(zip(read[a:b], map(cell_style, values[a:b]), strict=True)))
            console.print(cell_legend(label))
            console.print()
    out = ROOT / "docs" / "cells.svg"
    console.save_svg(str(out), title="textgen · /cell")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
