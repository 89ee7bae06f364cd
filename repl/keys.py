"""The keyboard while output streams, and the terminal's mode between prompts.

Generation runs in the main thread and, between printed batches, polls the same prompt_toolkit `Input` the
prompt reads from, in raw mode and without blocking. Up/Down and +/- nudge the temperature; Ctrl-C (a key in
raw mode, not a signal) asks to stop between two characters, so the model's state stays consistent. Other keys
typed meanwhile are handed back to the prompt as type-ahead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit.input import Input

#: How much one Up/Down or +/- moves the temperature while streaming.
NUDGE = 0.1


def ctrl_c_interrupts() -> None:
    """Make Ctrl-C raise KeyboardInterrupt, whatever this process inherited. A program that a script starts in the
    background (`cmd &`) inherits SIGINT ignored, and so does what it starts; where textgen says Ctrl-C stops
    something (the REPL's runs, `/load`, a seed being primed), it must."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


class CtrlC:
    """SIGINT as the REPL's loop wants it: a KeyboardInterrupt only while a line executes.

    Ctrl-C stops /compare, /load or a seed being primed, which poll no keys, so while a line executes it must
    interrupt. Between two lines, in the loop's own bookkeeping, it is only recorded (`pressed`): Ctrl-C held down
    repeats faster than the loop turns round, and a KeyboardInterrupt raised where no handler waits (inside the
    handler of the one before) would end the session, which Ctrl-C never does. At the prompt, Ctrl-C is a key (raw
    mode); a SIGINT that comes meanwhile (a `kill -INT`) is recorded too, since the prompt runs without
    prompt_toolkit's own SIGINT handler.
    """

    def __init__(self) -> None:
        self.executing = False
        self.pressed = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.executing:
            raise KeyboardInterrupt
        self.pressed = True

    @contextlib.contextmanager
    def interrupts(self) -> Iterator[None]:
        """Within the block (a line executing), Ctrl-C raises KeyboardInterrupt."""
        self.executing = True
        try:
            yield
        finally:
            self.executing = False

    def take(self) -> bool:
        """Whether Ctrl-C was pressed between lines since the last call."""
        pressed, self.pressed = self.pressed, False
        return pressed


@contextlib.contextmanager
def ctrl_c_between_lines() -> Iterator[CtrlC]:
    """Install a `CtrlC` as SIGINT's handler for the block, whatever this process inherited (a background job's
    SIGINT comes ignored), and put back the previous one after. Off the main thread, where no handler can be set
    (a test driving the loop from a thread), the `CtrlC` only says nothing was pressed."""
    ctrl_c = CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c
        return
    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class Pressed:
    """What the keys pressed since the last poll ask for: stop the run, and/or move the temperature by `nudge`."""

    stop: bool = False
    nudge: float = 0.0


class KeyPoller:
    """Reads the keys pressed while a run streams, without blocking."""

    def __init__(self, keys: Input):
        self.keys = keys

    @contextlib.contextmanager
    def raw(self) -> Iterator[None]:
        """Raw mode for the block: keys arrive one by one, unechoed, and Ctrl-C is a key."""
        with self.keys.raw_mode():
            yield
        # An Escape typed alone waits in the parser for a possible sequence: hand it to the prompt.
        self._give_back(self.keys.flush_keys())

    def poll(self) -> Pressed:
        from prompt_toolkit.keys import Keys

        nudge = 0.0
        others = []
        for press in self.keys.read_keys():
            if press.key == Keys.ControlC:
                return Pressed(stop=True)
            if press.key in (Keys.Up, "+"):
                nudge += NUDGE
            elif press.key in (Keys.Down, "-"):
                nudge -= NUDGE
            else:
                others.append(press)
        self._give_back(others)
        return Pressed(nudge=nudge)

    def _give_back(self, presses: list) -> None:
        if presses:
            from prompt_toolkit.input.typeahead import store_typeahead

            store_typeahead(self.keys, presses)


@contextlib.contextmanager
def quiet_terminal(fd: int) -> Iterator[None]:
    """Keep the terminal from echoing between prompts, with Ctrl-C still a signal.

    prompt_toolkit switches to raw mode while it reads a line and back to the previous mode afterwards. If that
    mode echoed, an Up pressed just after Enter would print `^[[A` into the output before streaming takes the
    keyboard. So the loop runs with echo and line buffering off; keys typed meanwhile wait for the next read.
    """
    try:
        import termios
    except ImportError:  # not POSIX (prompt_toolkit's Windows input does not echo between reads)
        yield
        return
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
