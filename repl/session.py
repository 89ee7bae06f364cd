"""The REPL's session: the state (the model, the settings, the branches, the transcript), the streaming run,
and the one place its output is printed.

What a slash command does lives in its feature module (`repl.features`: steering, pick, scoring, cells, save,
model, settings), a function of the session and the command's argument; the registry (`repl.commands`) maps names
to those functions. The session knows nothing of the prompt, the slash commands or the command line: a typed line
reaches it through `submit`, which hands slash commands to the `dispatch` it was given. Features hand what they
show to `print` (rich renderables, built where they are decided), `show`, `note` or `error`, so the session's
console is written in one place; only the stream of characters goes through `render.StreamWriter`, which batches
it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, RenderableType
from rich.text import Text

from textgen_core import checkpoint
from textgen_core.cells import CellTracker
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, Token, chars
from textgen_core.loader import VocabSource, run_window
from textgen_core.sampling import SamplingSettings
from textgen_core.steer import Branch, BranchTree, rng_snapshot
from textgen_core.vocab import describe_unknown

from .keys import KeyPoller
from .render import StreamWriter, cell_legend, legend, stats_line
from .safe import flat
from .statusline import StatusLine
from .transcript import Turn
from .values import MAX_TEMPERATURE, fmt_opt

if TYPE_CHECKING:
    from prompt_toolkit.input import Input

#: Alternatives recorded with every generated character, so /alts can show the model's top 5 afterwards.
ALTERNATIVES = 5
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: The toolbar while /pick reads keys: how to use step mode.
PICK_HELP = " /pick │ 1-9 take that choice │ Enter draw one │ type any character │ Backspace undo │ Esc or q leave "


class Marker(Protocol):
    """What watches each run (the copy meter and the loop flag, `repl/features/copies.py`): `start()` at the start
    of a streamed run gives a function telling, for each character in turn, whether to mark it (None: mark nothing);
    `finished(tokens)` says, after the run's stats line, what there is to say about its text."""

    def start(self) -> Callable[[str], bool] | None: ...

    def finished(self, tokens: list[Token]) -> None: ...


def finished(session: Session, tokens: list[Token]) -> None:
    """After a run's stats line (a streamed run, a fork, a beam): what the session's `Marker` has to say of it."""
    if session.meter is not None and tokens:
        session.meter.finished(tokens)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint and the generator built from it, swapped in as one object so that an interrupted or failed
    /load never leaves a half-replaced model."""

    checkpoint: checkpoint.Checkpoint
    generator: Generator


class Session:
    """Everything a REPL session knows: the model, the settings, the branches, the transcript. It prints to
    `console` and, while streaming, polls `keys` (None when input is piped). `dispatch(session, line)` runs a
    slash command."""

    def __init__(
        self,
        ckpt: checkpoint.Checkpoint,
        console: Console,
        *,
        settings: SamplingSettings,
        length: int,
        dispatch: Callable[[Session, str], None],
        seed: int | None = None,
        keys: Input | None = None,
        vocab: VocabSource | None = None,
        windowed: bool | None = None,
    ):
        self.console = console
        self.colour_shown = console.color_system is not None
        self.color = "prob" if self.colour_shown else "off"
        self.length = length
        self.seed = seed
        self.carry = False
        #: Switch by itself to a new best that the run writes into the loaded checkpoint's file (`repl.follow`).
        self.follow = False
        self.running = True
        self.dispatch = dispatch
        self.keys = KeyPoller(keys) if keys is not None else None
        #: The toolbar kept on the bottom row while output streams (prompt_toolkit shows it at the prompt).
        self.status = StatusLine(console.file, self.toolbar) if keys is not None else None
        self.transcript: list[Turn] = []
        self.last_seed: str | None = None
        #: Every run, /compare column, pick session, beam and fork, as branches (`textgen_core.steer`).
        self.tree = BranchTree()
        #: The last output, for /alts and /fork: (branch id, how many of its characters came before it).
        self.output: tuple[int, int] | None = None
        #: Exactly what the generator has been fed since its last fresh start (a new branch's context).
        self.fed = ""
        #: The branch whose draws the generator's RNG continues in order (so its forks can replay them).
        self.rng_branch: int | None = None
        #: True while /pick reads keys (the toolbar then says how to use it).
        self.picking = False
        self._priming_note = ""
        self._settings = settings
        #: The cell `/cell L:N` chose; colouring follows it while `color` is "cell" (see repl/features/cells.py).
        self.cell: CellTracker | None = None
        #: The vocabulary a Keras file given to /load gets (the command line's --vocab-from/--chars/--lowercase).
        self.vocab = vocab
        #: /window: None runs each model its own way (a windowed one windowed); False/True override that.
        self.windowed = windowed
        self.meter: Marker | None = None  # marks copied text, then says what a run copied and if it loops
        self.use(ckpt)

    # ---- state ------------------------------------------------------------------------------------------------

    def switch(self, ckpt: checkpoint.Checkpoint) -> None:
        """Switch to another model (/load): its settings stay, but the branches were the old model's (/go and /fork
        could not rebuild them), so they go; the saved transcript keeps their text, as runs of no branch."""
        self.use(ckpt)
        for turn in self.transcript:
            turn.branch = None
        self.tree, self.output, self.rng_branch = BranchTree(), None, None

    def set_window(self, on: bool) -> None:
        """/window on|off: run the model the book's way or statefully; the state starts afresh either way."""
        run_window(self.loaded.checkpoint.meta, on)  # a model without a window refuses `on`
        self.windowed = on
        self.use(self.loaded.checkpoint)

    def reset(self) -> None:
        """Forget the model's state (an empty Enter then has nothing to continue); settings stay."""
        self.generator.reset()
        self.primed = False

    def use(self, ckpt: checkpoint.Checkpoint) -> None:
        """Run a checkpoint already loaded (at the start, or the run being followed wrote a new best); settings
        stay. The /window preference applies to models that have a window; any other runs statefully."""
        window = run_window(ckpt.meta, self.windowed if ckpt.meta.window is not None else None)
        self.loaded = Loaded(
            ckpt, Generator.from_checkpoint(ckpt, settings=self._settings, seed=self.seed, window=window)
        )
        #: Whether the generator holds a context that empty Enter may continue.
        self.primed = False
        if self.cell is not None:  # a cell's index means nothing in another model
            self.cell = None
            if self.color == "cell":
                self.color = "prob"
            self.note(f"the cell view is off (cells differ between models); colour {self.color}")

    @property
    def generator(self) -> Generator:
        return self.loaded.generator

    @property
    def settings(self) -> SamplingSettings:
        return self._settings

    def update(self, **changes: object) -> None:
        """Change sampling settings; the generator reads them at its next step (so this works mid-stream)."""
        self._settings = dataclasses.replace(self._settings, **changes)
        self.generator.settings = self._settings

    def last_output(self) -> tuple[Branch, int]:
        """The branch of the last output and how many of its characters came before that output."""
        if self.output is None:
            raise TextgenError("nothing generated yet: type a seed first")
        branch_id, start = self.output
        return self.tree.get(branch_id), start

    def now_at(self, branch: Branch, start: int, *, rng: int | None = None) -> None:
        """The generator stands at the end of `branch`, which is current; its characters from `start` on are
        the last output. `rng`: the branch whose draws the generator's RNG goes on with, if any."""
        self.primed = True
        self.tree.current = branch.id
        self.fed = branch.context + branch.text
        self.output = (branch.id, start)
        self.rng_branch = rng

    @property
    def name(self) -> str:
        return flat(self.loaded.checkpoint.name)

    def describe_settings(self) -> str:
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"{self.settings.describe()}{seed}"

    # ---- output -----------------------------------------------------------------------------------------------

    def print(self, *renderables: RenderableType, soft_wrap: bool = False) -> None:
        """Print what a feature built (text, tables, coloured blocks): the one place the session's output goes.
        `soft_wrap` for text that must keep its own line breaks (a generated block, a message), not for tables."""
        self.console.print(*renderables, soft_wrap=soft_wrap)

    def show(self, what: str, value: str) -> None:
        """A setting's value (or a command's help): `what  value`."""
        line = Text()
        line.append(f"{what}  ", style="tg.key")
        line.append(flat(value))
        self.print(line, soft_wrap=True)

    def note(self, message: str) -> None:
        self.print(Text(flat(message), style="tg.note"), soft_wrap=True)

    def error(self, message: str) -> None:
        self.print(Text(flat(message), style="tg.error"), soft_wrap=True)

    def legend(self) -> None:
        if self.cell_view and self.cell is not None:
            self.print(cell_legend(self.cell.label, self.generator.model.value_name(self.cell.layer)), soft_wrap=True)
        else:
            self.print(legend(self.color), soft_wrap=True)
        if not self.colour_shown:
            self.note("(this output shows no colour: NO_COLOR is set, --no-color was given or it is not a terminal)")

    def toolbar(self) -> str:
        """The bottom toolbar: under the prompt, and pinned to the last row while a command runs (first saying
        how far the feeding of a long seed is)."""
        if self.picking:
            return PICK_HELP
        s = self.settings
        return self._priming_note + (
            f" T {s.temperature:g} │ len {self.length:,} │ top-k {fmt_opt(s.top_k)} │ top-p {fmt_opt(s.top_p)} │ "
            f"seed {fmt_opt(self.seed)} │ colour {self.colour_name} │ continue {'on' if self.carry else 'off'} │ "
            f"{window_part(self)}model {self.name} @ step {self.loaded.checkpoint.meta.step:,}"
            f"{' (following)' if self.follow else ''} "
        )

    def priming(self, done: int, total: int) -> None:
        """Progress of a seed being fed, shown in the pinned toolbar; (0, 0) clears it."""
        self._priming_note = f" priming {done:,}/{total:,} characters · Ctrl-C stops │" if done < total else ""
        if self.status is not None:
            self.status.refresh()

    @property
    def cell_view(self) -> bool:
        """Whether output is coloured by a cell (only then is the cell read while streaming)."""
        return self.color == "cell" and self.cell is not None

    @property
    def colour_name(self) -> str:
        return f"cell {self.cell.label}" if self.cell_view and self.cell is not None else self.color

    def pinned_toolbar(self) -> contextlib.AbstractContextManager[None]:
        """Keep the toolbar on the terminal's last row while the block runs (only on an interactive terminal)."""
        return contextlib.nullcontext() if self.status is None else self.status.pinned()

    # ---- input ------------------------------------------------------------------------------------------------

    def submit(self, line: str) -> None:
        """Handle one input: a slash command, empty (continue the last output) or seed text.

        Undecodable input bytes arrive as lone surrogates (Python's surrogateescape); they become U+FFFD here,
        so that they are reported like any character the model does not know.
        """
        line = LONE_SURROGATE.sub("\ufffd", line)
        if line.startswith("/"):
            self.dispatch(self, line)
        elif not line.strip("\n"):
            self.continue_last()
        else:
            self.generate(line)

    # ---- generation -------------------------------------------------------------------------------------------

    def generate(self, seed_text: str) -> None:
        """Continue `seed_text` for `length` characters (from a fresh state unless /continue is on)."""
        carry = self.carry and self.primed
        if self.seed is not None:
            self.generator.set_seed(self.seed)
        # A Ctrl-C while a long seed is fed (a signal: the keyboard is not polled before streaming starts) leaves
        # the generator as it was, so the session keeps its previous state too: `primed`, the transcript and the
        # last seed are only changed once the seed is in.
        try:
            primed = self.generator.prime(seed_text, carry=carry, progress=self.priming)
        except KeyboardInterrupt:
            self.note("stopped priming (Ctrl-C); the model's state is as before this seed")
            return
        finally:
            self.priming(0, 0)
        if primed.unknown:
            self.note(f"skipped characters this model does not know: {describe_unknown(primed.unknown)}")
        self.last_seed = seed_text
        context = (self.fed if carry else "") + primed.text
        rng_state = rng_snapshot(self.generator.rng)  # so that a fork of this run replays its draws
        branch = self.tree.add(context, [], "run", settings=self._settings, rng_state=rng_state)
        self.rng_branch = branch.id
        self._run(Turn(seed_text, branch=branch.id))

    def continue_last(self) -> None:
        if not self.primed or self.tree.current is None:
            self.note("type some text for the model to continue; an empty line continues the last output")
            return
        branch = self.tree.get(self.tree.current)
        self._run(Turn("", branch=branch.id, start=len(branch.tokens)))

    def _run(self, turn: Turn) -> None:
        """Stream one run to the console, polling the keyboard between batches; then the stats line. The
        characters extend the turn's branch, which replays its RNG in forks only while the draws stay in order."""
        assert turn.branch is not None
        branch = self.tree.get(turn.branch)
        self.transcript.append(turn)
        start = time.perf_counter()
        try:
            stopped = self.stream(
                turn.seed or "…",
                self.generator.stream(self.length, alternatives=ALTERNATIVES),
                turn,
                seed=bool(turn.seed),
            )
        finally:
            same = self.rng_branch == branch.id and self._settings == branch.settings
            same = same and all(t == self._settings.temperature for t in turn.temperatures)
            self.tree.extend(branch.id, turn.tokens, same_rng=same)
            self.now_at(branch, turn.start, rng=branch.id if same else None)
        elapsed = time.perf_counter() - start
        if stopped:
            self.note("stopped (Ctrl-C)")
        self.print(stats_line(chars(turn.tokens), elapsed, bits(turn.tokens), self.describe_settings()))
        finished(self, turn.tokens)

    def stream(self, lead: str, tokens: Iterable[Token], turn: Turn, *, seed: bool) -> bool:
        """Print `lead` (the seed, or a dim marker), then stream `tokens` into `turn` with the keys polled between
        batches; True when Ctrl-C stopped it. The iterator is closed on the way out, so a stopped one finishes
        its own bookkeeping (a `Fork` records its branch then)."""
        writer = StreamWriter(self.console, self.color, mark=self.meter.start() if self.meter is not None else None)
        writer.insert(lead, "tg.seed" if seed else "tg.note")
        stream: Iterator[Token] = iter(tokens)
        tracker = self.cell if self.cell_view else None  # the cell is read only while a cell view is on
        with self.keys.raw() if self.keys is not None else contextlib.nullcontext():
            try:
                for token in stream:
                    turn.tokens.append(token)
                    turn.temperatures.append(self._settings.temperature)
                    cell = tracker.value(self.generator.lstm_state) if tracker is not None else None
                    if writer.add(token, cell) and self._poll_keys(writer):
                        return True
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
                writer.end_line()
        return False

    def _poll_keys(self, writer: StreamWriter) -> bool:
        """Apply the keys pressed since the last batch; True when Ctrl-C asks to stop."""
        if self.keys is None:
            return False
        pressed = self.keys.poll()
        if pressed.stop:
            return True
        if pressed.nudge:
            temperature = round(min(max(self._settings.temperature + pressed.nudge, 0.0), MAX_TEMPERATURE), 2)
            self.update(temperature=temperature)
            writer.insert(f"‹T {temperature:g}›")
        if self.status is not None:
            self.status.refresh()
        return False


def bits(tokens: list[Token]) -> float:
    """Bits/char of generated text under the model at temperature 1 (how surprising it is to the model)."""
    if not tokens:
        return math.nan
    return -sum(math.log2(max(t.prob, 1e-300)) for t in tokens) / chars(tokens)


def window_part(session: Session) -> str:
    """The toolbar's `window 60 │ ` for a model trained on windows (`window off │ ` when it runs statefully), else
    nothing."""
    if session.loaded.checkpoint.meta.window is None:
        return ""
    return f"window {fmt_opt(session.generator.window)} │ "
