"""`textgen info`: what a checkpoint is (config, size, vocabulary, corpus, training record)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from ..describe import info_renderables
from ..safe import json_visible
from .options import add_checkpoint, open_model

if TYPE_CHECKING:
    from .options import Subcommand


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
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
