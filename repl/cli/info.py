"""`textgen info`: what a checkpoint is (config, size, vocabulary, corpus, training record)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..describe import info_renderables
from ..safe import json_visible
from .options import add_checkpoint, open_model

NAME = "info"
SUMMARY = "describe a checkpoint: config, parameters, vocabulary, corpus, steps, val bpc"
EXAMPLE = "textgen info -c runs/book --json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=SUMMARY, description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}. Example: {EXAMPLE}")
    add_checkpoint(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # Imported when the command runs: loading a checkpoint needs numpy, which registering the flags does not.
    from textgen_core.describe import describe

    from ..render import make_console

    info = describe(open_model(args))
    if args.json:
        print(json_visible(json.dumps(info, ensure_ascii=False)))
        return 0
    console = make_console(color=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    for part in info_renderables(info, console.width):
        console.print(part, soft_wrap=True)
    return 0
