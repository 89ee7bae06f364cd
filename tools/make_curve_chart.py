"""Render docs/learning-curve.svg: what `textgen info -c RUN` prints for a run folder, learning curve included,
exported by rich as SVG (the same renderables the terminal gets, so the picture is the real output).

    python tools/make_curve_chart.py RUN
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.describe import info_renderables  # noqa: E402
from textgen_core import checkpoint  # noqa: E402
from textgen_core.describe import describe  # noqa: E402

WIDTH = 100


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a training run folder (its metrics.jsonl draws the curve)")
    args = p.parse_args(argv)
    info = describe(checkpoint.load(args.run))
    if info["curve"] is None:
        sys.exit(f"{args.run}: no metrics.jsonl; give a training run folder")
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=sink)
        for part in info_renderables(info, WIDTH)[1:]:  # the chart (the table above it is in the README already)
            console.print(part, soft_wrap=True)
    out = ROOT / "docs" / "learning-curve.svg"
    console.save_svg(str(out), title="textgen info -c RUN")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
