"""A line pinned to the bottom of the terminal while output scrolls above it.

prompt_toolkit draws the bottom toolbar only while it reads a line. While a continuation streams (or /compare
runs), prompt_toolkit is not running, and it cannot print partial lines above a live application either: it
re-renders below each write and loses the cursor's column. So the REPL pins the toolbar itself with a scroll
region (DECSTBM), the technique apt's progress bar uses: rows 1..H-1 scroll, row H is left alone and redrawn
in place. Every terminal emulator in common use (xterm, VTE, kitty, iTerm2, Windows Terminal, tmux, screen)
supports it. The region is always reset on the way out, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import IO

from rich.cells import set_cell_size

from .safe import flat

SAVE, RESTORE = "\x1b7", "\x1b8"  # DECSC / DECRC: cursor position and attributes
INDEX, REVERSE_INDEX = "\x1bD", "\x1bM"  # down / up one row, scrolling at the margin, column kept
REVERSE, RESET, ERASE_LINE = "\x1b[7m", "\x1b[0m", "\x1b[2K"
#: Below this many rows there is no room for output and a pinned line.
MIN_ROWS = 3


def terminal_rows_cols(out: IO[str]) -> tuple[int, int] | None:
    """The size of the terminal `out` writes to, or None when it is not one (a file, a pipe, a StringIO)."""
    try:
        size = os.get_terminal_size(out.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return size.lines, size.columns


class StatusLine:
    """`text()` shown in reverse video on the terminal's last row for as long as `pinned()` lasts.

    `refresh()` redraws it when the text or the terminal's size changed; it is cheap enough to call after
    every printed batch. Callers flush their own output before calling in: this writes straight to `out`.
    """

    def __init__(self, out: IO[str], text: Callable[[], str]):
        self.out = out
        self.text = text
        self._size: tuple[int, int] | None = None  # (rows, columns) the region was set for; None: not pinned
        self._shown = ""

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Keep the line at the bottom inside the block; a terminal too small (or no terminal) gets none."""
        size = terminal_rows_cols(self.out)
        if size is None or size[0] < MIN_ROWS:
            yield
            return
        self._pin(size)
        try:
            yield
        finally:
            self._unpin()

    def refresh(self) -> None:
        """Redraw after a change of text; re-pin after a resize."""
        if self._size is None:
            return
        size = terminal_rows_cols(self.out)
        if size is None or size[0] < MIN_ROWS:
            return
        if size != self._size:
            # A grown window still shows the old toolbar row: blank it. A shrunk one has cut it off, and the
            # row now there may hold the cursor's line, which must stay.
            self._unpin(clear=self._size[0] <= size[0])
            self._pin(size)
        elif self.text() != self._shown:
            self._draw()

    def _pin(self, size: tuple[int, int]) -> None:
        # First make sure a row is free below the cursor (scrolling up if it is on the last one), keeping its
        # column. Setting the margins homes the cursor: save and restore around it.
        self._size = size
        self._write(f"{INDEX}{REVERSE_INDEX}{SAVE}\x1b[1;{size[0] - 1}r{RESTORE}")
        self._draw()

    def _draw(self) -> None:
        assert self._size is not None
        rows, cols = self._size
        self._shown = self.text()
        # One column short of the edge, so that no terminal wraps or scrolls the last row.
        line = set_cell_size(flat(self._shown), cols - 1)
        self._write(f"{SAVE}\x1b[{rows};1H{RESET}{REVERSE}{line}{RESET}\x1b[K{RESTORE}")

    def _unpin(self, clear: bool = True) -> None:
        """Give the whole screen back to scrolling; `clear` blanks the row the toolbar was drawn on."""
        if self._size is None:
            return
        rows = self._size[0]
        self._size = None
        self._write(f"{SAVE}\x1b[r{RESTORE}" + (f"{SAVE}\x1b[{rows};1H{ERASE_LINE}{RESTORE}" if clear else ""))

    def _write(self, codes: str) -> None:
        self.out.write(codes)
        self.out.flush()
