"""`textgen cells`: which LSTM cells follow a feature of a text (inside quotes, bracket depth, line position, a
regex's matches), ranked by Pearson correlation; the numbers of `textgen_core.cells.rank_feature`.

Plain output is one line per cell; ``--json`` prints the ranking as one object (feature, characters, and for each
cell its layer, index and correlation). On a terminal, a passage of the text follows, coloured by the best cell
(or by ``--cell L:N``) on the REPL's diverging scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from .. import values as v
from .options import add_checkpoint

if TYPE_CHECKING:
    import numpy as np

    from textgen_core.cells import CellScore, CellTrace

    from .options import Subcommand

FEATURE_NAMES = "quote, bracket, depth, line, word, sentence"  # the help text only; the library checks the name

#: argparse names the option in their messages.
parse_top = v.Number(int, 1, 1000)
parse_max_chars = v.Number(int, 1, 10_000_000)


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    add_checkpoint(p)
    p.add_argument("file", metavar="FILE", help="the text to run through the model (UTF-8)")
    what = p.add_mutually_exclusive_group()  # one of the two: checked in `main`, in the same words as other errors
    what.add_argument("--feature", metavar="NAME", help=f"a built-in feature: {FEATURE_NAMES}")
    what.add_argument("--regex", metavar="R", help="a custom feature: 1 inside the regex's matches, 0 elsewhere")
    p.add_argument("--top", type=v.flag(parse_top), default=5, metavar="N", help="how many cells to list (default 5)")
    p.add_argument("--cell", metavar="L:N", help="also report this cell (layer:index) and colour the passage by it")
    p.add_argument(
        "--max-chars",
        type=v.flag(parse_max_chars),
        metavar="N",
        help="read at most the first N characters (default 50,000: a trace keeps 4·layers·hidden bytes each)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from textgen_core import checkpoint
    from textgen_core.cells import (
        BURN_IN,
        FIND,
        MAX_CHARS,
        STREAMS,
        CellScore,
        correlations,
        feature_values,
        parse_cell,
        rank_cells,
        regex_mask,
        trace_cells,
    )
    from textgen_core.corpus import read_text
    from textgen_core.errors import TextgenError
    from textgen_core.inference import NumpyLSTM

    # The cheap checks first: a mistyped feature or pattern is reported before the model runs.
    if args.regex is None and args.feature is None:
        raise TextgenError("say what to look for: --feature NAME (quote, bracket, …) or --regex R")
    if args.regex is not None:
        regex_mask(args.regex, "")
    else:
        feature_values(args.feature, "")
    ckpt = checkpoint.load(args.checkpoint)
    model = NumpyLSTM.from_checkpoint(ckpt)
    chosen = parse_cell(args.cell, model) if args.cell else None
    text = read_text(args.file)
    trace = trace_cells(model, ckpt.vocab, text, lowercase=ckpt.meta.lowercase, max_chars=args.max_chars or MAX_CHARS)
    if args.regex is not None:
        name, feature = f"{FIND} {args.regex}", regex_mask(args.regex, trace.text)
    else:
        name, feature = args.feature, feature_values(args.feature, trace.text)
    ranking = rank_cells(trace, feature, name=name, top=args.top)
    cell = ranking.cells[0]
    if chosen is not None:
        r = float(correlations(trace.cell(*chosen)[:, None], feature)[0])
        cell = CellScore(*chosen, r)

    report = {
        **ranking.to_dict(),
        "source_chars": trace.source_chars,
        "truncated": trace.truncated,
        "streams": STREAMS,
        "burn_in": BURN_IN,
        "file": args.file,
        "checkpoint": str(ckpt.path),
    }
    if chosen is not None:
        report["cell"] = cell.to_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    cut = f" (the first {trace.chars:,} of {trace.source_chars:,})" if trace.truncated else ""
    print(f"{name}: the cells that follow it best over {trace.chars:,} characters of {args.file}{cut}")
    for c in ranking.cells:
        print(f"  {c.label:>8}  r {c.r:+.3f}")
    if chosen is not None:
        print(f"  {cell.label:>8}  r {cell.r:+.3f}  (--cell)")
    print("r: Pearson correlation over every character, the text run in parallel streams after a burn-in")
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        _show_passage(trace, feature, cell, model.value_name(cell.layer))
    return 0


def _show_passage(trace: CellTrace, feature: np.ndarray, cell: CellScore, value: str) -> None:
    """A passage of the text coloured by `cell`'s values, with the legend (terminals only); `value` names what a
    cell's value is (`NumpyLSTM.value_name`)."""
    from ..features.cells import excerpt
    from ..render import cell_legend, cell_style, make_console, styled

    console = make_console(sys.stdout, color=True)
    a, b = excerpt(trace.text, feature)
    values = trace.cell(cell.layer, cell.index)[a:b]
    console.print(styled(zip(trace.text[a:b], map(cell_style, values), strict=True)), soft_wrap=True)
    console.print(cell_legend(cell.label, value), soft_wrap=True)
