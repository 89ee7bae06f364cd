"""`textgen eval`: bits per character of a checkpoint over text files (the numbers of `generate.score`)."""

from __future__ import annotations

import argparse
import json
import math

from textgen_core.config import DEFAULT_VAL_FRACTION

from .. import values as v
from .options import add_checkpoint, add_window, open_model, window

NAME = "eval"
SUMMARY = "bits per character of a model over text files (characters it does not know are counted, not scored)"
EXAMPLE = "textgen eval -c runs/book nietzsche.txt --split val --json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=SUMMARY, description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}. Example: {EXAMPLE}")
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
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument(
        "--jsonl",
        action="store_true",
        help="print one JSON object per scored character: its index in the scored text, char, prob and bits",
    )
    p.set_defaults(func=main)


def evaluate(args: argparse.Namespace, records: bool = False) -> dict:
    """Score the files as training would see them: decoded and checked by `corpus.read_text`, concatenated,
    lower-cased for a lower-case model, then (for ``--split val``) cut like `Corpus.split`. With `records`, the
    report also holds ``"records"``: each scored character's index, char, prob and bits."""
    from textgen_core.corpus import read_text, val_start
    from textgen_core.errors import TextgenError
    from textgen_core.generate import score
    from textgen_core.inference import NumpyLSTM

    ckpt = open_model(args)
    win = window(args, ckpt)
    text = "".join(read_text(f, args.encoding) for f in args.files)
    if ckpt.meta.lowercase:
        text = text.lower()  # before the split, as training lower-cases before splitting
    if args.split == "val":
        text = text[val_start(len(text), args.val_fraction) :]
    result = score(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, text, window=win)
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
    }
    if records:
        report["records"] = [
            {"index": i, "char": ch, "prob": float(p), "bits": -math.log2(max(float(p), 1e-300))}
            for i, (ch, p) in enumerate(zip(result.text, result.probs, strict=True))
        ]
    return report


def main(args: argparse.Namespace) -> int:
    from textgen_core.vocab import describe_unknown

    report = evaluate(args, records=args.jsonl)
    if args.jsonl:
        print("\n".join(json.dumps(r, ensure_ascii=False) for r in report["records"]))
        return 0
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    where = f"the last {args.val_fraction:.0%}" if args.split == "val" else "all"
    print(
        f"{report['bpc']:.4f} bits/char ({report['nats_per_char']:.4f} nats/char) over {report['chars']:,} "
        f"characters ({where} of {', '.join(args.files)})"
    )
    if report["unknown_chars"]:
        print(
            f"{report['unknown_chars']:,} characters outside the model's vocabulary were skipped, not scored: "
            f"{describe_unknown(report['unknown'])}"
        )
    return 0
