"""`textgen train`: train a model on text files, with safe checkpoints and exact --resume."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textgen_core import config as defaults
from textgen_core.corpus import DEFAULT_MAX_VOCAB

from .. import values as v

if TYPE_CHECKING:
    from .options import Subcommand

#: Upper bounds of the optimiser's rates: far beyond any useful value, and below where AdamW's float32
#: arithmetic overflows (a traceback from torch instead of a message).
MAX_LR = 1.0
MAX_WEIGHT_DECAY = 10.0


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="UTF-8 text file(s), concatenated in order")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    data = p.add_argument_group("data")
    data.add_argument("--encoding", help="text encoding of the corpus (default utf-8)")
    data.add_argument("--lowercase", action="store_const", const=True, help="lower-case the text (the book's recipe)")
    data.add_argument(
        "--max-vocab",
        type=v.positive_int,
        metavar="N",
        help=f"refuse corpora with more distinct characters (default {DEFAULT_MAX_VOCAB}: such files look binary)",
    )
    data.add_argument(
        "--val-fraction",
        type=v.fraction,
        metavar="F",
        help=f"last fraction held out (default {defaults.DEFAULT_VAL_FRACTION})",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--embed-dim",
        type=v.positive_int,
        metavar="N",
        help=f"character embedding size (default {defaults.DEFAULT_EMBED})",
    )
    model.add_argument(
        "--hidden-size",
        type=v.positive_int,
        metavar="N",
        help=f"LSTM units per layer (default {defaults.DEFAULT_HIDDEN})",
    )
    model.add_argument(
        "--num-layers",
        type=v.positive_int,
        metavar="N",
        help=f"stacked LSTM layers (default {defaults.DEFAULT_LAYERS})",
    )
    model.add_argument(
        "--dropout",
        type=v.below_one,
        metavar="P",
        help=f"dropout between layers and before the head (default {defaults.DEFAULT_DROPOUT})",
    )
    model.add_argument(
        "--embed-dropout",
        type=v.below_one,
        metavar="P",
        help=f"dropout on embeddings (default {defaults.DEFAULT_EMBED_DROPOUT})",
    )
    model.add_argument(
        "--weight-drop",
        type=v.below_one,
        metavar="P",
        help=f"DropConnect on recurrent weights, AWD-LSTM style (default {defaults.DEFAULT_WEIGHT_DROP})",
    )
    model.add_argument(
        "--size",
        choices=("auto", "fixed"),
        help="auto: time a few candidate sizes on this machine (counted in the budget) and train the one that "
        "learns most in --minutes (docs/sizing.md); size flags given with it narrow the choice, other flags win. "
        f"fixed: train the size the flags give (default {defaults.DEFAULT_LAYERS}×{defaults.DEFAULT_HIDDEN}) without "
        "timing. Default: auto for a new run with a --minutes budget and no --hidden-size, --num-layers, --init or "
        "--nproc; fixed otherwise",
    )
    model.add_argument(
        "--init",
        metavar="CKPT",
        help="start from this checkpoint's weights (a .safetensors file, a run folder, or 'bundled' for the "
        "bundled model) to fine-tune it: the run keeps its size, vocabulary and case, and its dropout unless given",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--batch-size",
        type=v.positive_int,
        metavar="N",
        help=f"parallel text streams (default {defaults.DEFAULT_BATCH_SIZE})",
    )
    opt.add_argument(
        "--seq-len",
        type=v.positive_int,
        metavar="N",
        help=f"BPTT length in characters (default {defaults.DEFAULT_SEQ_LEN})",
    )
    opt.add_argument(
        "--lr",
        type=v.flag(v.Number(float, 0, MAX_LR, lo_open=True)),
        help=f"peak learning rate of AdamW (default {defaults.DEFAULT_LR:g})",
    )
    opt.add_argument(
        "--min-lr-ratio",
        type=v.unit_interval,
        metavar="R",
        help=f"final lr / peak lr (default {defaults.DEFAULT_MIN_LR_RATIO})",
    )
    opt.add_argument(
        "--warmup-steps",
        type=v.nonneg_int,
        metavar="N",
        help=f"linear warm-up steps (default {defaults.DEFAULT_WARMUP_STEPS})",
    )
    opt.add_argument(
        "--weight-decay",
        type=v.flag(v.Number(float, 0, MAX_WEIGHT_DECAY)),
        metavar="W",
        help=f"AdamW weight decay (default {defaults.DEFAULT_WEIGHT_DECAY:g})",
    )
    opt.add_argument("--clip", type=v.positive_float, help=f"gradient norm clip (default {defaults.DEFAULT_CLIP})")
    opt.add_argument(
        "--ema",
        type=v.below_one,
        metavar="DECAY",
        help="evaluate and save an exponential moving average of the weights with this decay per step, "
        "e.g. 0.999 (default 0: off)",
    )
    budget = p.add_argument_group(
        f"budget (one of; default --minutes {defaults.DEFAULT_MINUTES:g}, or the run's own on --resume; a resumed run "
        "counts from its start)"
    )
    budget.add_argument("--steps", type=v.positive_int, metavar="N", help="total optimisation steps")
    budget.add_argument("--minutes", type=v.positive_float, metavar="M", help="total wall-clock minutes")
    budget.add_argument("--epochs", type=v.positive_float, metavar="E", help="passes over the training text")
    run = p.add_argument_group("run")
    run.add_argument(
        "--eval-every",
        type=v.positive_int,
        metavar="N",
        help=f"evaluate every N steps (default {defaults.DEFAULT_EVAL_EVERY}, or the run's own on --resume)",
    )
    run.add_argument(
        "--sample-len",
        type=v.flag(v.Number(int, 0, v.MAX_LENGTH)),
        metavar="N",
        help=f"characters sampled at each evaluation per temperature (default {defaults.DEFAULT_SAMPLE_LEN}; 0 = none)",
    )
    run.add_argument("--seed", type=v.nonneg_int, help=f"random seed (default {defaults.DEFAULT_SEED})")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    run.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp16", "fp32"),
        help="autocast precision (default auto: bf16 where the hardware has it; fp16 is for GPUs without bf16)",
    )
    run.add_argument(
        "--nproc",
        type=v.positive_int,
        metavar="N",
        help="train with N processes on this machine, one per GPU with --device cuda (torchrun's launcher; "
        "each takes --batch-size streams; default 1). For several machines run torchrun yourself",
    )
    p.set_defaults(func=main)


#: What `textgen train` says where torch is not installed: the rest of textgen installs and runs without it.
TORCH_MISSING = "textgen train needs torch: pip install 'textgen[train]' (CPU-only machine: see README, Training)"


def size_policy(args: argparse.Namespace, launched: bool) -> str | None:
    """The TrainConfig `size` for this command: "auto" or None (the size the flags give).

    Auto is the default wherever it has something to fit: a new run, a wall-clock budget (given or the default
    --minutes), the size left open, one process. The measurements behind that (docs/sizing.md) found it far
    better where the default 2×640 gets too few steps and the same model where it gets enough; everywhere else
    it would be refused, so the fixed size is the default there."""
    if args.size is not None:
        return "auto" if args.size == "auto" else None
    open_size = args.hidden_size is None and args.num_layers is None
    one_process = (args.nproc or 1) == 1 and not launched
    minutes = args.steps is None and args.epochs is None
    new_run = not args.resume and args.init is None
    return "auto" if open_size and one_process and minutes and new_run else None


def main(args: argparse.Namespace) -> int:
    from textgen_core.errors import TextgenError

    try:
        from textgen_core.runfolder import check_new_run
        from textgen_core.training import distributed
        from textgen_core.training.config import TrainConfig
        from textgen_core.training.events import Reporter
        from textgen_core.training.hardware import cpu_threads, max_processes, pick_device
        from textgen_core.training.loop import Trainer

        from ..progress import RichReporter
    except ModuleNotFoundError as e:
        if e.name != "torch" and not (e.name or "").startswith("torch."):
            raise
        raise TextgenError(TORCH_MISSING) from None

    # Options map one-to-one onto TrainConfig fields. Their argparse default is None so that we can tell which
    # ones the user gave: a --resume must not silently change the model or the data layout.
    fields = set(TrainConfig.__dataclass_fields__) - {"corpus", "out"}
    explicit = frozenset(f for f, v in vars(args).items() if f in fields and v is not None)
    config = TrainConfig(corpus=list(args.corpus), out=args.out, **{f: getattr(args, f) for f in explicit})
    config = replace(config, size=size_policy(args, distributed.launched()))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise TextgenError(f"--out {out}: is a file; give a folder for the run")
    if args.resume and args.init is not None:
        raise TextgenError("--init starts a new run from a checkpoint; drop it when resuming (the run has its weights)")
    if not args.resume:
        check_new_run(out)  # here as well as in the Trainer: before --nproc starts any workers
    nproc = args.nproc or 1
    if distributed.launched():
        if nproc > 1 and nproc != int(os.environ.get("LOCAL_WORLD_SIZE", nproc)):
            raise TextgenError(f"--nproc {nproc}: already started by torchrun with other numbers; drop --nproc")
    elif nproc > 1:
        # Checked before anything starts: `--nproc 100000` would otherwise spawn processes until the machine stalls.
        device = pick_device(config.device)
        most = max_processes(device)
        if nproc > most:
            what = "GPUs" if device.type == "cuda" else "CPU cores"
            raise TextgenError(f"--nproc {nproc}: this machine has {most} {what}; give at most {most}")
        # The workers run this same command line; they find torchrun's variables in their environment and train.
        return distributed.launch(nproc, "repl.cli", sys.argv[1:], cpu_threads())

    with distributed.process_group(pick_device(config.device)) as world:
        try:
            reporter = RichReporter() if world.is_main else Reporter()
            trainer = Trainer(config, resume=args.resume, explicit=explicit, reporter=reporter)
        except distributed.MainFailed:
            return TextgenError.exit_code  # rank 0 printed the reason; one line is enough
        received: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)
            trainer.request_stop()
            # A second signal falls back to the default (immediate exit); atomic writes keep files intact. Not
            # under torchrun: a Ctrl-C reaches each worker twice (from the terminal, then passed on by the
            # launcher), and the launcher kills workers that do not finish in time anyway.
            if world.size == 1:
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
