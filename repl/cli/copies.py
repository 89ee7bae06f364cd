"""`textgen copies`: the spans of a text that occur word for word in a model's training text, for scripts.

The training text is what `--corpus` gives, checked against the sha256s the model (`-c`, default the bundled one)
records; or, without `--corpus`, where the model records it was read from. `--corpus` without `-c` measures
against any text, with no model and no check. The index is built once per text and kept in the user's cache
(`textgen_core.copyindex`); the spans are the maximal stretches of at least `--min-copy` characters found there
(`textgen_core.copies`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from .options import add_checkpoint, add_corpus, open_model

if TYPE_CHECKING:
    from .options import Subcommand


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    p.add_argument("file", metavar="FILE", help="the text to measure (UTF-8), or - for standard input")
    add_checkpoint(p)
    add_corpus(p)
    p.add_argument("--json", action="store_true", help="print one JSON object: the summary and every span")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from textgen_core.copies import report, span_records, summary, training_text
    from textgen_core.copyindex import index_for
    from textgen_core.corpus import read_text

    from ..safe import visible

    text = sys.stdin.read() if args.file == "-" else read_text(args.file)
    if args.corpus and args.checkpoint is None:  # any text against any corpus: no model, nothing to check against
        found = training_text([], args.lowercase, args.corpus)
    else:
        ckpt = open_model(args)
        found = training_text(ckpt.meta.corpus, ckpt.meta.lowercase, args.corpus, anyway=args.corpus_anyway)
        if found.note:
            print(f"textgen: copy meter: {found.names}: {found.note}", file=sys.stderr)

    def building() -> None:
        print(f"textgen: indexing {found.names} for the copy meter (once for this text)…", file=sys.stderr)

    opened = index_for(found.paths, found.hashes, found.lowercase, building=building)
    if opened.damage:
        print(f"textgen: the copy index of {found.names} was unreadable ({opened.damage}): rebuilt", file=sys.stderr)
    index = opened.index
    result = report(index, text, args.min_copy)
    spans = span_records(index, text, result)
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "chars": result.chars,
                    "min_length": result.min_length,
                    "longest": result.longest,
                    "copied_chars": result.copied,
                    "copied_share": result.share,
                    "corpus": [
                        {"name": p.name, "path": str(p), "sha256": h}
                        for p, h in zip(found.paths, found.hashes, strict=True)
                    ],
                    "checked": found.checked,
                    "lowercase": found.lowercase,
                    "spans": spans,
                },
                ensure_ascii=False,
            )
        )
        return 0
    clean = visible if sys.stdout.isatty() else str
    print(clean(f"{args.file}: {summary(index, text, result)}".replace("\n", "⏎")))
    for span in spans:
        quote = str(span["text"]).replace("\n", "⏎")
        print(
            clean(
                f"  {span['start']:>8,} +{span['length']:<5,} {span['source']} line {span['line']:,} "
                f"(×{span['occurrences']}): {quote}"
            )
        )
    return 0
