"""Render docs/learning-curve.svg: what `textgen info -c RUN` prints for a run folder, learning curve included,
exported by rich as SVG (the same renderables the terminal gets, so the picture is the real output).

    python docs/make_curve_chart.py RUN
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from repl.describe import info_renderables
from textgen_core import checkpoint
from textgen_core.describe import describe

WIDTH = 100


def main() -> None:
    info = describe(checkpoint.load(sys.argv[1]))
    if info["curve"] is None:
        sys.exit(f"{sys.argv[1]}: no metrics.jsonl; give a training run folder")
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=sink)
        for part in info_renderables(info, WIDTH)[1:]:  # the chart (the table above it is in the README already)
            console.print(part, soft_wrap=True)
    out = Path(__file__).with_name("learning-curve.svg")
    console.save_svg(str(out), title="textgen info -c RUN")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
