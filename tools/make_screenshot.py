"""Render docs/repl.svg (and the steering pictures, docs/pick.svg and docs/tree.svg) from a real REPL session:
`textgen` runs in tmux, we type, capture the screen with its colours (`tmux capture-pane -e`) and let rich export
the captured ANSI text as SVG.

Run from the repository root with textgen installed and tmux on the PATH:

    python tools/make_screenshot.py [repl|pick|tree]   # default: all three
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

DOCS = Path(__file__).resolve().parent.parent / "docs"
WIDTH, HEIGHT = 100, 34
#: Per picture: the length of a run, then what is typed (keys, whether Enter follows, seconds to wait after).
SCENES: dict[str, tuple[int, list[tuple[str, bool, float]]]] = {
    "repl": (
        240,
        [
            ("The free spirit ", True, 3.0),
            ("/compare 0.2 1.2", True, 4.0),
            ("/score What is noble? The will to power.", True, 2.0),
        ],
    ),
    # Step mode caught mid-way: a choice taken, a character typed, another choice, the next choices showing.
    "pick": (120, [("/pick The will to", True, 2.0), ("1", False, 0.7), ("p", False, 0.7), ("1", False, 1.0)]),
    "tree": (
        40,
        [
            ("The free spirit ", True, 3.0),
            ("/fork 8", True, 3.0),
            ("/compare 0.5 beam4", True, 5.0),
            ("/tree", True, 2.0),
        ],
    ),
}


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def shoot(name: str) -> None:
    length, typed = SCENES[name]
    state = tempfile.mkdtemp()  # fresh history, so the picture shows no earlier sessions
    command = f"XDG_STATE_HOME={state} {shlex.quote(sys.executable)} -m repl.cli repl --seed 3 --len {length}"
    tmux("new-session", "-d", "-s", "textgen-shot", "-x", str(WIDTH), "-y", str(HEIGHT), "-c", os.getcwd(), command)
    try:
        time.sleep(2.0)
        for keys, enter, wait in typed:
            tmux("send-keys", "-t", "textgen-shot", "-l", keys)
            if enter:
                tmux("send-keys", "-t", "textgen-shot", "Enter")
            time.sleep(wait)
        screen = tmux("capture-pane", "-e", "-p", "-t", "textgen-shot")
    finally:
        tmux("kill-session", "-t", "textgen-shot")
    lines = screen.rstrip("\n").split("\n")
    while lines and not lines[-2].strip():  # drop the blank rows between the last output and the toolbar
        del lines[-2]
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=sink)
        for line in lines:
            console.print(Text.from_ansi(line), no_wrap=True, overflow="crop")
    out = DOCS / f"{name}.svg"
    console.save_svg(str(out), title="textgen")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pictures", nargs="*", metavar="PICTURE", help=f"any of {', '.join(SCENES)} (default: all)")
    args = p.parse_args(argv)
    for name in args.pictures:
        if name not in SCENES:
            p.error(f"no picture {name!r}; choose from {', '.join(SCENES)}")
    for name in args.pictures or SCENES:
        shoot(name)


if __name__ == "__main__":
    main()
