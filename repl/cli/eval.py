"""`textgen eval`: bits per character of a checkpoint over text files (the numbers of `scoring.score`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from textgen_core.config import DEFAULT_VAL_FRACTION

from .. import values as v
from .options import add_checkpoint, add_window, open_model, window

if TYPE_CHECKING:
    from collections.abc import Iterator

    from textgen_core.scoring import ScoreResult

    from .options import Subcommand


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    add_checkpoint(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="text files, read one after the other like a corpus")
    p.add_argument(
        "--split",
        choices=("all", "val"),
        default="all",
        help="score all the text, or only the validation split (its last --val-fraction, as in training)",
    )
    p.add_argument(
        "--val-fraction",
        type=v.fraction,
        default=DEFAULT_VAL_FRACTION,
        metavar="F",
        help=f"size of the validation split (default {DEFAULT_VAL_FRACTION})",
    )
    p.add_argument("--encoding", default="utf-8", metavar="E", help="text encoding of the files (default utf-8)")
    add_window(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--exact",
        action="store_true",
        help="score in one sequential pass; by default a long text is scored in parallel streams, faster "
        "and within 0.002 bits/char of it (docs/record/benchmarks.md)",
    )
    p.add_argument(
        "--jsonl",
        metavar="FILE",
        help="also write one JSON object per scored character (char, index, prob, bits) to FILE (a named pipe or a "
        "device is written into), or to stdout with - (the summary then goes to stderr)",
    )
    p.set_defaults(func=main)


def evaluate(args: argparse.Namespace) -> tuple[dict, ScoreResult]:
    """Score the files as training would see them: decoded and checked by `corpus.read_text`, concatenated,
    lower-cased for a lower-case model, then (for ``--split val``) cut like `Corpus.split`. Returns the report
    and the per-character result behind it."""
    from rich.console import Console

    from textgen_core.corpus import read_text, val_start
    from textgen_core.errors import TextgenError
    from textgen_core.inference import NumpyLSTM
    from textgen_core.scoring import score

    from ..bars import CharsBar

    ckpt = open_model(args)
    win = window(args, ckpt)
    text = "".join(read_text(f, args.encoding) for f in args.files)
    if ckpt.meta.lowercase:
        text = text.lower()  # before the split, as training lower-cases before splitting
    if args.split == "val":
        text = text[val_start(len(text), args.val_fraction) :]
    model = NumpyLSTM.from_checkpoint(ckpt)
    what = "scoring" if args.exact else "scoring (parallel streams)"
    with CharsBar(Console(stderr=True), what, delay=1.0) as bar:
        result = score(model, ckpt.vocab, text, exact=args.exact, window=win, progress=bar)
    if result.chars == 0:
        what = "the validation split" if args.split == "val" else "the text"
        why = "is empty" if not text else "has no character the model knows"
        raise TextgenError(f"{', '.join(args.files)}: {what} {why}; nothing to score")
    report = {
        "bpc": result.bpc,
        "nats_per_char": result.bpc * math.log(2),
        "chars": result.chars,
        "total_bits": result.total_bits,
        "unknown_chars": result.unknown_count,
        "unknown": result.unknown,
        "split": args.split,
        "val_fraction": args.val_fraction if args.split == "val" else None,
        "files": list(args.files),
        "checkpoint": str(ckpt.path),
        "window": win,
        "exact": args.exact,
        "tokens": ckpt.vocab.kind,
        "token_count": result.tokens,
        "bits_per_token": result.bits_per_token,
        "perplexity": result.perplexity,
    }
    return report, result


def main(args: argparse.Namespace) -> int:
    from textgen_core.atomic import target
    from textgen_core.errors import TextgenError
    from textgen_core.vocab import describe_unknown

    # Where the records go is decided (and a folder, a missing folder refused) before scoring, which may take
    # minutes. `-` or /dev/stdout is standard output, a pipe or a device a stream, a file replaced atomically.
    records = target(args.jsonl) if args.jsonl else None
    to_stdout = records is not None and records.to_stdout
    if to_stdout and args.json:
        raise TextgenError(f"--json and --jsonl {args.jsonl} would both write to stdout; give --jsonl a file name")
    report, result = evaluate(args)
    if records is not None:
        # A failed or interrupted write to a file leaves no half file (and an older file of that name intact).
        records.write(lambda f: f.writelines(line.encode("utf-8") for line in _jsonl(result)))
    out = sys.stderr if to_stdout else sys.stdout
    if args.json:
        print(json.dumps(report, ensure_ascii=False), file=out)
        return 0
    where = f"the last {args.val_fraction:.0%}" if args.split == "val" else "all"
    print(
        f"{report['bpc']:.4f} bits/char ({report['nats_per_char']:.4f} nats/char) over {report['chars']:,} "
        f"characters ({where} of {', '.join(args.files)})",
        file=out,
    )
    if report["tokens"] != "char":
        print(
            f"{report['bits_per_token']:.4f} bits per token, perplexity {report['perplexity']:.2f}, over "
            f"{report['token_count']:,} tokens ({report['chars'] / report['token_count']:.2f} characters each)",
            file=out,
        )
    if report["unknown_chars"]:
        print(
            f"{report['unknown_chars']:,} characters outside the model's vocabulary were skipped, not scored: "
            f"{describe_unknown(report['unknown'])}",
            file=out,
        )
    return 0


def _jsonl(result: ScoreResult) -> Iterator[str]:
    """The `--jsonl` lines, one per scored character (the records `ScoreResult.records` builds)."""
    return (json.dumps(r, ensure_ascii=False) + "\n" for r in result.records())
