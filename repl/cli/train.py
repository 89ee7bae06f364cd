"""`textgen train`: train a model on text files, with safe checkpoints and exact --resume."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgen_core.config import DEFAULT_MINUTES, flag_fields, option
from textgen_core.training.config import TrainConfig

from .. import values as v

if TYPE_CHECKING:
    from .options import Subcommand

#: Upper bounds of the optimiser's rates: far beyond any useful value, and below where AdamW's float32
#: arithmetic overflows (a traceback from torch instead of a message).
MAX_LR = 1.0
MAX_WEIGHT_DECAY = 10.0
#: The value rules of the flags, by the name a setting's declaration gives (`textgen_core.config.Flag.rule`):
#: the library names a rule, as it must not import the front end that has them.
RULES: dict[str, Callable[[str], object]] = {
    "positive_int": v.positive_int,
    "nonneg_int": v.nonneg_int,
    "positive_float": v.positive_float,
    "fraction": v.fraction,
    "below_one": v.below_one,
    "unit_interval": v.unit_interval,
    "learning_rate": v.flag(v.Number(float, 0, MAX_LR, lo_open=True)),
    "weight_decay": v.flag(v.Number(float, 0, MAX_WEIGHT_DECAY)),
    "sample_len": v.flag(v.Number(int, 0, v.MAX_LENGTH)),
}
#: The argument groups of `textgen train --help`, in order, by the name a declaration gives (`Flag.group`).
GROUPS = {
    "data": "data",
    "model": "model",
    "optimisation": "optimisation",
    "budget": f"budget (one of; default --minutes {DEFAULT_MINUTES:g}, or the run's own on --resume; a resumed run "
    "counts from its start)",
    "run": "run",
}


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="UTF-8 text file(s), concatenated in order")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    groups = add_config_flags(p)
    groups["run"].add_argument(
        "--nproc",
        type=v.positive_int,
        metavar="N",
        help="train with N processes on this machine, one per GPU with --device cuda (torchrun's launcher; "
        "each takes --batch-size streams; default 1). For several machines run torchrun yourself",
    )
    p.set_defaults(func=main)


def add_config_flags(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """A flag for each setting of `TrainConfig`, built from its declaration, in its group; returns the groups.

    Every flag's default is None, so that `main` can tell which ones the user gave: a --resume must not silently
    change the model or the data layout, and the run's own settings go on where none is given."""
    groups = {name: parser.add_argument_group(title) for name, title in GROUPS.items()}
    order = list(GROUPS)
    # Group by group, each in declaration order: argparse's usage line lists the flags in the order they are added.
    for f, flag in sorted(flag_fields(TrainConfig), key=lambda field_flag: order.index(field_flag[1].group)):
        kwargs: dict[str, Any] = {"help": flag.help}
        if flag.metavar is not None:
            kwargs["metavar"] = flag.metavar
        if flag.choices is not None:
            kwargs["choices"] = flag.choices
        if flag.rule is not None:
            kwargs["type"] = RULES[flag.rule]
        if isinstance(f.default, bool):  # a switch: given, it turns the setting on
            kwargs |= {"action": "store_const", "const": True}
        groups[flag.group].add_argument(option(f.name), **kwargs)
    return groups


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
    from textgen_core.paths import user_path
    from textgen_core.runlock import hold_run

    try:
        from textgen_core.training import distributed
        from textgen_core.training.loop import Trainer  # noqa: F401 (torch is needed: said here, before any work)
    except ModuleNotFoundError as e:
        if e.name != "torch" and not (e.name or "").startswith("torch."):
            raise
        raise TextgenError(TORCH_MISSING) from None

    # The flags that map onto TrainConfig fields, and of those the ones the user gave (`add_config_flags`).
    explicit = frozenset(f.name for f, _ in flag_fields(TrainConfig) if getattr(args, f.name) is not None)
    out = user_path(args.out)
    check_folder(out)
    config = TrainConfig(corpus=list(args.corpus), out=str(out), **{f: getattr(args, f) for f in explicit})
    config = replace(config, size=size_policy(args, distributed.launched()))
    if args.resume and args.init is not None:
        raise TextgenError("--init starts a new run from a checkpoint; drop it when resuming (the run has its weights)")
    # The run folder's lock, before the check that it holds no run (two commands started together both pass it
    # otherwise), for as long as the command runs; torchrun's workers other than rank 0 never take it.
    locks = not distributed.launched() or os.environ.get("RANK", "0") == "0"
    with hold_run(out) if locks else contextlib.nullcontext():
        return _train(args, config, explicit, out)


def check_folder(out: Path) -> None:
    """`--out` must be a folder or nothing yet: a file, a named pipe or a device is refused, and left untouched."""
    from textgen_core.errors import TextgenError
    from textgen_core.paths import kind_of, read_error

    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise read_error(out, e) from None
    if not stat.S_ISDIR(mode):
        raise TextgenError(f"--out {out}: is {kind_of(mode)}, not a folder; give a folder for the run")


def _train(args: argparse.Namespace, config: TrainConfig, explicit: frozenset[str], out: Path) -> int:
    """Train (or start --nproc workers), holding the run folder's lock."""
    from textgen_core.errors import TextgenError
    from textgen_core.runfolder import check_new_run
    from textgen_core.runlock import HELD_ENV, key
    from textgen_core.training import distributed
    from textgen_core.training.events import Reporter
    from textgen_core.training.hardware import cpu_threads, max_processes, pick_device
    from textgen_core.training.loop import Trainer

    from ..progress import RichReporter

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
        # The workers run this same command line; they find torchrun's variables in their environment and train,
        # under the lock this process holds for them.
        os.environ[HELD_ENV] = key(out)
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
