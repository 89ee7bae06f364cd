"""`textgen versus`: one text scored by two checkpoints: each one's bits/char (what `textgen eval` reports for it)
and the characters where they disagree most.

Each model scores the text as `textgen eval` does (`textgen_core.versus.score_on`: `scoring.score`, lower-cased
for a lower-case model, windowed for a windowed one, in parallel streams unless `--exact`), so each bits/char is
eval's. The characters compared are those both models know.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from .. import values as v
from .options import add_checkpoint, add_window, vocab_source

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint

    from .options import Subcommand

#: Characters listed where the two models differ most, by default.
DEFAULT_TOP = 10
#: Characters of context shown before each listed character.
CONTEXT = 20


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    add_checkpoint(p)
    p.add_argument(
        "--against",
        required=True,
        metavar="CKPT",
        help="the second model: a .safetensors file, a run folder, a Keras .keras/.h5 model, or bundled",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text files, read one after the other (as eval does)")
    p.add_argument("--top", type=v.flag(v.parse_count), default=DEFAULT_TOP, metavar="N", help="characters to list")
    p.add_argument("--encoding", default="utf-8", metavar="E", help="text encoding of the files (default utf-8)")
    p.add_argument("--exact", action="store_true", help="score in one sequential pass each (as eval --exact)")
    add_window(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def _open(name: str | None, args: argparse.Namespace) -> Checkpoint:
    from textgen_core.loader import open_model

    return open_model(None if name in (None, "bundled") else name, vocab_source(args))


def main(args: argparse.Namespace) -> int:
    from textgen_core.corpus import read_text
    from textgen_core.errors import TextgenError
    from textgen_core.loader import run_window
    from textgen_core.versus import Scorer, largest_differences, score_on

    from ..safe import visible

    models = [_open(args.checkpoint, args), _open(args.against, args)]
    text = "".join(read_text(f, args.encoding) for f in args.files)
    scored = []
    for ckpt in models:
        scorer = Scorer.from_checkpoint(ckpt, run_window(ckpt.meta, args.window if ckpt.meta.window else None))
        result = score_on(scorer, text, exact=args.exact)
        if not result.result.chars:
            raise TextgenError(
                f"{', '.join(args.files)}: {ckpt.path.name} knows none of its characters; nothing to score"
            )
        scored.append(result)
    a, b = scored
    differences = largest_differences(text, a, b, args.top)
    report = {
        "files": list(args.files),
        "chars": len(text),
        "models": [
            {
                "checkpoint": str(ckpt.path),
                "bpc": s.bpc,
                "chars": s.result.chars,
                "unknown_chars": s.result.unknown_count,
            }
            for ckpt, s in zip(models, scored, strict=True)
        ],
        "bpc_difference": a.bpc - b.bpc,
        "differences": [
            {
                "index": d.index,
                "char": d.char,
                "context": text[max(0, d.index - CONTEXT) : d.index],
                "a_bits": d.a_bits,
                "b_bits": d.b_bits,
                "gap": d.gap,
            }
            for d in differences
        ],
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    clean = visible if sys.stdout.isatty() else str
    for label, ckpt, s in zip("AB", models, scored, strict=True):
        print(clean(f"{label}: {s.bpc:.4f} bits/char over {s.result.chars:,} characters ({ckpt.path})"))
    gap = a.bpc - b.bpc
    if abs(gap) < 5e-5:
        print("A and B score the text alike (to 4 decimals)")
    else:
        print(f"{'A' if gap < 0 else 'B'} is better by {abs(gap):.4f} bits/char")
    print("where they differ most (bits under A, under B):")
    for d in report["differences"]:
        context = str(d["context"]).replace("\n", "⏎")
        print(clean(f"  {d['index']:>9,}  {context:>{CONTEXT}}[{d['char']!r}]  {d['a_bits']:6.2f}  {d['b_bits']:6.2f}"))
    return 0
