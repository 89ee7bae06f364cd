"""The REPL program: wires the session, the slash commands, the prompt and the terminal, and runs the loop.

On a terminal, input comes from a prompt_toolkit `PromptSession` (`prompt`) and keys pressed while output
streams are polled by the session (`keys`); while a line's command or run executes, `statusline` pins the
same toolbar to the terminal's last row. With piped stdin or a stdout that is not a terminal, input is read
line by line with no prompt, so `printf 'the will\\n/quit\\n' | textgen` works. Outside streaming, Ctrl-C is a
signal: the loop catches it (during /compare, /load, …) and returns to the prompt with the session intact.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import IO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app

from textgen_core.checkpoint import Checkpoint
from textgen_core.errors import TextgenError
from textgen_core.loader import VocabSource
from textgen_core.sampling import SamplingSettings

from .commands import REGISTRY
from .features.copies import Meter, turn_on
from .features.model import banner
from .follow import Follower
from .keys import ctrl_c_between_lines, quiet_terminal
from .prompt import default_history, make_prompt
from .render import make_console
from .session import Session

#: What Ctrl-C at the prompt (or between two lines) says: it never ends the session.
CTRL_C_HINT = "(Ctrl-C clears the line and stops a run; to leave, type /quit or press Ctrl-D)"


def interactive(session: Session, prompt: PromptSession, follower: Follower | None = None) -> int:
    """Read lines from a prompt until /quit or Ctrl-D. Ctrl-C never ends the session (`CtrlC` says where it
    interrupts). While the prompt waits, `follower` (by default one for `session`) watches the loaded checkpoint's
    file and reports above the prompt."""
    follower = follower or Follower(session)
    with ctrl_c_between_lines() as ctrl_c:
        while session.running:
            try:
                if ctrl_c.take():
                    session.note(CTRL_C_HINT)
                follower.check()  # what the run wrote during the last turn
                # handle_sigint=False: prompt_toolkit would swap SIGINT's handler for asyncio's and back at each
                # prompt, leaving moments where a Ctrl-C cancels the prompt's event loop; `ctrl_c` keeps it.
                line = prompt.prompt(
                    pre_run=lambda: get_app().create_background_task(follower.watch()), handle_sigint=False
                )
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a key, which prompt_toolkit turns into this
                session.note(CTRL_C_HINT)
                continue
            except EOFError:
                break
            try:
                with session.pinned_toolbar(), ctrl_c.interrupts():
                    session.submit(line)
            except KeyboardInterrupt:
                session.note("interrupted; the session goes on")
    return 0


def piped(session: Session, lines: IO[str], follower: Follower | None = None) -> int:
    """Read plain lines (no prompt, no line editing) until /quit or end of input; `follower` looks for a new
    checkpoint before each line."""
    follower = follower or Follower(session)
    for line in lines:
        follower.check()
        session.submit(line.rstrip("\r\n"))
        if not session.running:
            break
    return 0


def main(args: argparse.Namespace, ckpt: Checkpoint, vocab: VocabSource) -> int:
    """`textgen repl`: with the model `-c` opened (`ckpt`, by the command) and the vocabulary a Keras file given to
    /load gets (`vocab`), print the banner and run the loop that suits stdin and stdout."""
    interactive_tty = sys.stdin.isatty() and sys.stdout.isatty()
    colour = sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
    console = make_console(color=colour)
    settings = SamplingSettings(temperature=args.temp, top_k=args.top_k, top_p=args.top_p)
    keys = None
    if interactive_tty:
        from prompt_toolkit.input import create_input

        keys = create_input()
    session = Session(
        ckpt,
        console,
        settings=settings,
        length=args.len,
        seed=args.seed,
        keys=keys,
        dispatch=REGISTRY.dispatch,
        vocab=vocab,
        windowed=args.window,
    )
    session.meter = Meter(session)  # off until asked for, but the loop flag speaks after every run
    session.follow = args.follow
    banner(session)
    if args.copies or args.corpus:
        try:
            turn_on(session, args.corpus, anyway=args.corpus_anyway, min_length=args.min_copy)
        except TextgenError as e:  # the session starts all the same, without the meter
            session.error(f"copy meter: {e}")
    follower = Follower(session)
    if keys is None:
        return piped(session, sys.stdin, follower)
    history = Path(args.history).expanduser() if args.history else default_history()
    with quiet_terminal(sys.stdin.fileno()):
        status = interactive(session, make_prompt(session, history, input=keys), follower)
    # The session is over and what it wrote is closed; what is left is handing back its memory, seconds after many
    # long runs. A Ctrl-C pressed meanwhile (the person waiting at the terminal) must not end the process by the
    # signal instead of with its status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status
