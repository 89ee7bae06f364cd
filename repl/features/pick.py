"""/pick, step mode: the keys that choose each next character, and the live list of choices.

The model's work (choices, taking, drawing, exact undo) is `textgen_core.steer.Stepper`; the session records
the result as a branch (`begin` / `end` here). This module reads keys, draws the list and keeps the result.

Keys are read from the session's prompt_toolkit `Input` in raw mode, blocking on its file descriptor (so a
waiting step mode costs nothing), with Ctrl-C a key like any other: it leaves, as Esc and `q` do, and keeps
what was picked. A lone Esc is only known to be one when no more bytes follow, so it is flushed from the
parser after a short quiet moment, as prompt_toolkit itself does.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from textgen_core.errors import TextgenError
from textgen_core.steer import DEFAULT_CHOICES, Branch, Stepper
from textgen_core.vocab import describe_unknown

from ..render import colour_tokens, prob_style, styled
from ..safe import flat, shown_char
from ..session import ALTERNATIVES, PICK_HELP, Session
from ..transcript import Turn

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.key_binding import KeyPress

#: Seconds of quiet after which a pending Esc is taken as the Esc key, not the start of a sequence.
ESC_WAIT = 0.05
#: Width of the longest probability bar, in cells.
BAR = 24
#: Characters of text shown before the cursor.
TAIL = 72


def pick(session: Session, seed_text: str) -> None:
    """Run step mode on `session` until Esc, `q`, Ctrl-C or the end of input; what was picked is kept."""
    if session.keys is None:
        raise TextgenError("step mode reads single keys: run textgen repl in a terminal to use /pick")
    stepper, parent, context = begin(session, seed_text)
    session.picking = True
    message = ""
    live = Live(
        console=session.console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
    )
    try:
        with session.keys.raw(), live:
            if session.status is not None:
                session.status.refresh()
            live.update(_view(session, stepper, context, message), refresh=True)
            for press in _presses(session.keys.keys):
                leave, message = _apply(stepper, press)
                if leave:
                    break
                live.update(_view(session, stepper, context, message), refresh=True)
    finally:
        session.picking = False
        end(session, stepper, parent, context, seed_text)


def begin(session: Session, seed_text: str) -> tuple[Stepper, Branch | None, str]:
    """Step mode's start: the seed fed fresh (or, without one, the current branch's end, or the start
    character); returns the stepper, the branch it continues (None: a new root) and its context."""
    gen = session.generator
    if seed_text or not session.primed or session.tree.current is None:
        primed = gen.prime(seed_text)
        if primed.unknown:
            session.note(f"skipped characters this model does not know: {describe_unknown(primed.unknown)}")
        if seed_text:
            session.last_seed = seed_text
        session.primed = False  # until something is picked: the branch it continued no longer matches the state
        return Stepper(gen, alternatives=ALTERNATIVES), None, primed.text
    parent = session.tree.get(session.tree.current)
    return Stepper(gen, alternatives=ALTERNATIVES), parent, session.fed


def end(session: Session, stepper: Stepper, parent: Branch | None, context: str, seed_text: str) -> None:
    """Keep what was picked as a branch (a child starting after `parent`'s end, or a root) and the last output."""
    tokens = list(stepper.tokens)
    if not tokens:
        session.note("nothing picked")
        return
    split = None if parent is None else len(parent.tokens) + 1
    parent_id = None if parent is None else parent.id
    branch = session.tree.add(
        context, tokens, "pick", settings=session.settings, parent=parent_id, split=split, forced=len(tokens)
    )
    session.transcript.append(Turn(seed_text, tokens, [session.settings.temperature] * len(tokens), branch.id))
    session.now_at(branch, 0)
    lead = [(seed_text, "tg.seed")] if seed_text else [("…", "tg.note")]
    session.print(styled(lead) + colour_tokens(tokens, session.color), soft_wrap=True)
    unit = "character" if session.generator.vocab.is_chars else "token"
    session.note(f"picked {len(tokens)} {unit}(s): branch {branch.id}; /alts, /fork, /save and an empty Enter use it")


def _apply(stepper: Stepper, press: KeyPress) -> tuple[bool, str]:
    """Do what one key asks; (leave step mode, a message to show)."""
    from prompt_toolkit.keys import Keys

    key = press.key
    if key in (Keys.Escape, Keys.ControlC, "q"):
        return True, ""
    try:
        if key in (Keys.ControlM, Keys.ControlJ, Keys.Enter):
            stepper.draw()
        elif key in (Keys.Backspace, Keys.ControlH):
            if stepper.undo() is None:
                return False, "nothing to undo"
        elif isinstance(key, str) and len(key) == 1 and key.isdigit() and key != "0":
            stepper.take(int(key))
        elif isinstance(key, str) and len(key) == 1 and key.isprintable():
            stepper.type(key)
        else:
            return False, ""
    except TextgenError as e:
        return False, str(e)
    return False, ""


def _presses(keys: Input) -> Iterator[KeyPress]:
    """The keys pressed, as they come; ends when the input is closed."""
    fd = keys.fileno()
    while not getattr(keys, "closed", False):
        ready, _, _ = select.select([fd], [], [], ESC_WAIT)
        presses = keys.read_keys() if ready else keys.flush_keys()
        if ready and not presses and getattr(keys, "closed", False):
            return
        yield from presses


def _view(session: Session, stepper: Stepper, context: str, message: str) -> Group:
    """The text so far (the context dim, the picked characters coloured), the choices with bars, the keys."""
    picked = stepper.tokens[-TAIL:]
    before = flat(context.lstrip("\n")[-(TAIL - len(picked)) :]) if len(picked) < TAIL else ""
    line = Text(before, style="tg.dim") + colour_tokens(picked, session.color) + Text("▏", style="tg.key")
    table = Table.grid(padding=(0, 1))
    colour = session.color != "off"
    for choice in stepper.choices(DEFAULT_CHOICES):
        bar = Text("█" * max(1, round(choice.prob * BAR)), style=prob_style(choice.prob) if colour else None)
        table.add_row(
            Text(str(choice.number), style="tg.key"), Text(shown_char(choice.char)), f"{choice.prob:6.1%}", bar
        )
    parts: list = [line, table]
    if message:
        parts.append(Text(flat(message), style="tg.error"))
    parts.append(Text(PICK_HELP.strip(), style="tg.dim"))
    return Group(*parts)
