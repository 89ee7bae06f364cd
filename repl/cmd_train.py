"""`textgen train`: train a model on text files, with safe checkpoints and exact --resume."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from . import argtypes as t

NAME = "train"
SUMMARY = "train a character-level LSTM on text files (val bits/char, resumable checkpoints)"
EXAMPLE = "textgen train book.txt --out runs/book --minutes 10"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=SUMMARY, description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}. Example: {EXAMPLE}")
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="UTF-8 text file(s), concatenated in order")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    data = p.add_argument_group("data")
    data.add_argument("--encoding", help="text encoding of the corpus (default utf-8)")
    data.add_argument("--lowercase", action="store_const", const=True, help="lower-case the text (the book's recipe)")
    data.add_argument(
        "--max-vocab",
        type=t.positive_int,
        metavar="N",
        help="refuse corpora with more distinct characters (default 1000: such files look binary)",
    )
    data.add_argument("--val-fraction", type=t.fraction, metavar="F", help="last fraction held out (default 0.1)")
    model = p.add_argument_group("model")
    model.add_argument("--embed-dim", type=t.positive_int, metavar="N", help="character embedding size (default 64)")
    model.add_argument("--hidden-size", type=t.positive_int, metavar="N", help="LSTM units per layer (default 512)")
    model.add_argument("--num-layers", type=t.positive_int, metavar="N", help="stacked LSTM layers (default 2)")
    model.add_argument("--dropout", type=t.dropout, metavar="P", help="dropout between layers (default 0.25)")
    model.add_argument("--embed-dropout", type=t.dropout, metavar="P", help="dropout on embeddings (default 0)")
    model.add_argument(
        "--weight-drop",
        type=t.dropout,
        metavar="P",
        help="DropConnect on recurrent weights, AWD-LSTM style (default 0)",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=t.positive_int, metavar="N", help="parallel text streams (default 32)")
    opt.add_argument("--seq-len", type=t.positive_int, metavar="N", help="BPTT length in characters (default 128)")
    opt.add_argument("--lr", type=t.positive_float, help="peak learning rate of AdamW (default 3e-3)")
    opt.add_argument("--min-lr-ratio", type=t.nonneg_float, metavar="R", help="final lr / peak lr (default 0.05)")
    opt.add_argument("--warmup-steps", type=t.nonneg_int, metavar="N", help="linear warm-up steps (default 100)")
    opt.add_argument("--weight-decay", type=t.nonneg_float, metavar="W", help="AdamW weight decay (default 0)")
    opt.add_argument("--clip", type=t.positive_float, help="gradient norm clip (default 1.0)")
    budget = p.add_argument_group("budget (one of; default --minutes 10; a resumed run counts from its start)")
    budget.add_argument("--steps", type=t.positive_int, metavar="N", help="total optimisation steps")
    budget.add_argument("--minutes", type=t.positive_float, metavar="M", help="total wall-clock minutes")
    budget.add_argument("--epochs", type=t.positive_float, metavar="E", help="passes over the training text")
    run = p.add_argument_group("run")
    run.add_argument("--eval-every", type=t.positive_int, metavar="N", help="evaluate every N steps (default 200)")
    run.add_argument(
        "--sample-len",
        type=t.nonneg_int,
        metavar="N",
        help="characters sampled at each evaluation per temperature (default 100; 0 = none)",
    )
    run.add_argument("--seed", type=t.nonneg_int, help="random seed (default 1337)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    run.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="autocast precision (default auto: bf16 where the hardware has it)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from textgen_core.errors import TextgenError
    from textgen_core.train import RESUME_NAME, TrainConfig, Trainer

    from .progress import RichReporter

    # Options map one-to-one onto TrainConfig fields. Their argparse default is None so that we can tell which
    # ones the user gave: a --resume must not silently change the model or the data layout.
    fields = set(TrainConfig.__dataclass_fields__) - {"corpus", "out"}
    explicit = frozenset(f for f, v in vars(args).items() if f in fields and v is not None)
    config = TrainConfig(corpus=list(args.corpus), out=args.out, **{f: getattr(args, f) for f in explicit})
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise TextgenError(f"--out {out}: is a file; give a folder for the run")
    if not args.resume and (out / RESUME_NAME).exists():
        raise TextgenError(f"--out {out} already holds a run; add --resume to continue it, or choose another --out")
    trainer = Trainer(config, resume=args.resume, explicit=explicit, reporter=RichReporter())

    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        trainer.request_stop()
        # A second signal falls back to the default (immediate exit); atomic writes keep files intact.
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        reason = trainer.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if reason == "interrupted":
        return 128 + (received[0] if received else signal.SIGINT)
    return 0
