"""The REPL's line editor: a prompt_toolkit `PromptSession` with its key bindings, history and completion.

Enter submits (or accepts the highlighted completion), Esc+Enter / Alt+Enter inserts a newline (so do pasted
newlines), Ctrl-C clears a typed line or, on an empty one, tells the loop so. History lives in a file with
auto-suggest (from the latest entries) and Ctrl-R search; slash commands complete from the registry; the toolbar
shows the settings.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession, search
from prompt_toolkit.auto_suggest import AutoSuggest, Suggestion
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.output import ColorDepth

from .commands import REGISTRY
from .session import Session

if TYPE_CHECKING:
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.document import Document
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

PROMPT = "› "
#: How many of the latest history entries a suggestion is looked for in.
RECENT = 1000


class RecentSuggest(AutoSuggest):
    """Suggest the rest of a line from history, as prompt_toolkit's `AutoSuggestFromHistory` does (the latest
    entry with a line that starts with the current line), but from the latest `RECENT` entries only, and splitting
    only the entries that hold several lines.

    Why: the suggestion is looked for at every key typed, and `AutoSuggestFromHistory` splits every entry of the
    whole history into lines each time. A history that has kept long seeds (megabytes, after enough use) made typing
    one 4,000-character line take 45 s before the REPL answered it."""

    def get_suggestion(self, buffer: Buffer, document: Document) -> Suggestion | None:
        text = document.text.rsplit("\n", 1)[-1]
        if not text.strip():
            return None
        for entry in itertools.islice(reversed(buffer.history.get_strings()), RECENT):
            lines = entry.split("\n") if "\n" in entry else (entry,)
            for line in reversed(lines):
                if line.startswith(text):
                    return Suggestion(line[len(text) :])
        return None


def key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _submit(event) -> None:
        if event.app.layout.is_searching:  # Ctrl-R found a line: Enter runs it, as in a shell
            search.accept_search()
        buffer = event.app.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
        else:
            buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-c")
    def _interrupt(event) -> None:
        # Leave Ctrl-R's search first: the next prompt would otherwise keep typing into the search field, and
        # no key but Esc would bring the line back.
        if event.app.layout.is_searching:
            search.stop_search()
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return bindings


def history_store(session: Session, history: Path | None) -> History:
    """The history file, or (when its folder cannot be made) history in memory and a note saying so."""
    if history is None:
        return InMemoryHistory()
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        session.note(f"history will not be kept: cannot create {history.parent} ({e.strerror or e})")
        return InMemoryHistory()
    return FileHistory(str(history))


def default_history() -> Path:
    """`history` in the user's state folder (XDG_STATE_HOME, else ~/.local/state/textgen on Linux)."""
    from platformdirs import user_state_path

    return user_state_path("textgen") / "history"


def make_prompt(
    session: Session, history: Path | None, *, input: Input | None = None, output: Output | None = None
) -> PromptSession:
    """The line editor for `session` (its toolbar, its colour depth), history kept in `history` (None: memory)."""
    return PromptSession(
        PROMPT,
        multiline=True,
        prompt_continuation="· ",
        key_bindings=key_bindings(),
        history=history_store(session, history),
        auto_suggest=RecentSuggest(),
        completer=REGISTRY.completer(),
        complete_while_typing=True,
        bottom_toolbar=session.toolbar,
        color_depth=None if session.colour_shown else ColorDepth.MONOCHROME,
        input=input,
        output=output,
    )
