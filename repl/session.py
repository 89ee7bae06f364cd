"""The REPL's session: the model, the settings and the transcript, and what can be done with them (generate,
continue, compare, score, load, save). Front-end agnostic: it prints to a rich `Console` and, while streaming,
polls the keyboard (`keys`); it knows nothing of the prompt, the slash commands or the command line. A typed
line reaches it through `submit`, which hands slash commands to the `dispatch` it was given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from textgen_core import checkpoint
from textgen_core.atomic import atomic_write_text
from textgen_core.beam import BeamSearch
from textgen_core.cells import CellTracker, cell_values, continuation_values
from textgen_core.describe import describe
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, GeneratorState, Token, encode_seed, sample_many, score
from textgen_core.keras_import import VocabSource, open_model, run_window
from textgen_core.sampling import SamplingSettings
from textgen_core.steer import Branch, BranchTree, Fork, Stepper, rebuild, rng_snapshot
from textgen_core.vocab import describe_unknown

from .describe import info_renderables, summary
from .keys import KeyPoller
from .render import StreamWriter, cell_legend, cell_style, colour_tokens, legend, prob_style, stats_line, styled
from .safe import flat, shown, shown_char
from .statusline import StatusLine
from .transcript import Turn, jsonl_text, plain_text
from .values import MAX_TEMPERATURE, Beam, fmt_opt

if TYPE_CHECKING:
    from prompt_toolkit.input import Input

#: What /load of a Keras file asks for when the session was started without a vocabulary.
NEEDS_VOCAB = "start textgen repl with --vocab-from CORPUS (and --lowercase if it was trained so) or --chars FILE"
#: Alternatives recorded with every generated character, so /alts can show the model's top 5 afterwards.
ALTERNATIVES = 5
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: The toolbar while /pick reads keys: how to use step mode.
PICK_HELP = " /pick │ 1-9 take that choice │ Enter draw one │ type any character │ Backspace undo │ Esc or q leave "
#: Characters of a branch shown by /tree and before a fork.
PREVIEW = 48
#: The longest text /score takes. It prints every character in its colour (a styled span each, a few hundred bytes
#: of memory and a screenful per few thousand characters): past this, `textgen eval FILE` reports the same bits/char
#: without printing the text.
MAX_SCORE_CHARS = 50_000


@dataclass(frozen=True)
class Loaded:
    """A checkpoint and the generator built from it, swapped in as one object so that an interrupted or failed
    /load never leaves a half-replaced model."""

    checkpoint: checkpoint.Checkpoint
    generator: Generator


class Session:
    """Everything a REPL session knows: the model, the settings, the transcript. It prints to `console` and,
    while streaming, polls `keys` (None when input is piped). `dispatch(session, line)` runs a slash command."""

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
        self._rng_branch: int | None = None
        #: True while /pick reads keys (the toolbar then says how to use it).
        self.picking = False
        self._priming_note = ""
        self._settings = settings
        #: The cell `/cell L:N` chose; colouring follows it while `color` is "cell" (see repl/cellview.py).
        self.cell: CellTracker | None = None
        #: The vocabulary a Keras file given to /load gets (the command line's --vocab-from/--chars/--lowercase).
        self.vocab = vocab
        #: /window: None runs each model its own way (a windowed one windowed); False/True override that.
        self.windowed = windowed
        self._use(ckpt)

    # ---- state ------------------------------------------------------------------------------------------------

    def use(self, ckpt: checkpoint.Checkpoint) -> None:
        """Switch to a checkpoint already loaded (the run being followed wrote a new best); settings stay."""
        self._use(ckpt)

    def _use(self, ckpt: checkpoint.Checkpoint) -> None:
        # The preference applies to models that have a window; any other runs statefully, whatever it says.
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

    @property
    def name(self) -> str:
        return flat(self.loaded.checkpoint.name)

    def describe_settings(self) -> str:
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"{self.settings.describe()}{seed}"

    # ---- output -----------------------------------------------------------------------------------------------

    def show(self, what: str, value: str) -> None:
        """A setting's value (or a command's help): `what  value`."""
        line = Text()
        line.append(f"{what}  ", style="tg.key")
        line.append(flat(value))
        self.console.print(line, soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(Text(flat(message), style="tg.note"), soft_wrap=True)

    def error(self, message: str) -> None:
        self.console.print(Text(flat(message), style="tg.error"), soft_wrap=True)

    def legend(self) -> None:
        shown_legend = cell_legend(self.cell.label) if self.cell_view else legend(self.color)
        self.console.print(shown_legend, soft_wrap=True)
        if not self.colour_shown:
            self.note("(this output shows no colour: NO_COLOR is set, --no-color was given or it is not a terminal)")

    def banner(self) -> None:
        parts = [
            Text(f"textgen · {self.name}", style="tg.label"),
            *(Text(p, style="tg.dim") for p in summary(describe(self.loaded.checkpoint))),
            Text("type /help", style="tg.key"),
        ]
        sep = Text(" · ", style="tg.dim")
        if not self.console.is_terminal:  # a pipe or a file: one line, whatever its length
            self.console.print(sep.join(parts), soft_wrap=True)
            return
        # On a terminal, break between the parts: the terminal's own wrap would cut a word or a number in two.
        lines: list[list[Text]] = [[]]
        for part in parts:
            if lines[-1] and sum(t.cell_len + sep.cell_len for t in lines[-1]) + part.cell_len > self.console.width:
                lines.append([])
            lines[-1].append(part)
        for line in lines:
            self.console.print(sep.join(line))

    def toolbar(self) -> str:
        """The bottom toolbar: under the prompt, and pinned to the last row while a command runs (first saying
        how far the feeding of a long seed is)."""
        if self.picking:
            return PICK_HELP
        s = self.settings
        return self._priming_note + (
            f" T {s.temperature:g} │ len {self.length:,} │ top-k {fmt_opt(s.top_k)} │ top-p {fmt_opt(s.top_p)} │ "
            f"seed {fmt_opt(self.seed)} │ colour {self.colour_name} │ continue {'on' if self.carry else 'off'} │ "
            f"{self._window_part()}model {self.name} @ step {self.loaded.checkpoint.meta.step:,}"
            f"{' (following)' if self.follow else ''} "
        )

    def _priming(self, done: int, total: int) -> None:
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

    def _window_part(self) -> str:
        """`window 60 │ ` for a model trained on windows (`window off │ ` when it runs statefully), else nothing."""
        if self.loaded.checkpoint.meta.window is None:
            return ""
        return f"window {fmt_opt(self.generator.window)} │ "

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
            primed = self.generator.prime(seed_text, carry=carry, progress=self._priming)
        except KeyboardInterrupt:
            self.note("stopped priming (Ctrl-C); the model's state is as before this seed")
            return
        finally:
            self._priming(0, 0)
        if primed.unknown:
            self.note(f"skipped characters this model does not know: {describe_unknown(primed.unknown)}")
        self.last_seed = seed_text
        context = (self.fed if carry else "") + primed.text
        rng_state = rng_snapshot(self.generator.rng)  # so that a fork of this run replays its draws
        branch = self.tree.add(context, [], "run", settings=self._settings, rng_state=rng_state)
        self._rng_branch = branch.id
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
            stopped = self._stream(
                turn.seed or "…",
                self.generator.stream(self.length, alternatives=ALTERNATIVES),
                turn,
                seed=bool(turn.seed),
            )
        finally:
            same = self._rng_branch == branch.id and self._settings == branch.settings
            same = same and all(t == self._settings.temperature for t in turn.temperatures)
            self.tree.extend(branch.id, turn.tokens, same_rng=same)
            self._now_at(branch, turn.start, rng=branch.id if same else None)
        elapsed = time.perf_counter() - start
        if stopped:
            self.note("stopped (Ctrl-C)")
        self.console.print(stats_line(len(turn.tokens), elapsed, _bits(turn.tokens), self.describe_settings()))

    def _stream(self, lead: str, tokens: Iterable[Token], turn: Turn, *, seed: bool) -> bool:
        """Print `lead` (the seed, or a dim marker), then stream `tokens` into `turn` with the keys polled between
        batches; True when Ctrl-C stopped it. The iterator is closed on the way out, so a stopped one finishes
        its own bookkeeping (a `Fork` records its branch then)."""
        writer = StreamWriter(self.console, self.color)
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

    def _now_at(self, branch: Branch, start: int, *, rng: int | None = None) -> None:
        """The generator stands at the end of `branch`, which is current; its characters from `start` on are
        the last output. `rng`: the branch whose draws the generator's RNG goes on with, if any."""
        self.primed = True
        self.tree.current = branch.id
        self.fed = branch.context + branch.text
        self.output = (branch.id, start)
        self._rng_branch = rng

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

    # ---- commands ---------------------------------------------------------------------------------------------

    def compare(self, columns: tuple[float | Beam, ...]) -> None:
        """The last seed continued at each temperature, all drawn in one batched pass, and by each beam; one block
        each, in the order given. Each block becomes a branch of the tree (the current branch stays current)."""
        if self.last_seed is None:
            raise TextgenError("type a seed first: /compare continues the last one at several temperatures")
        gen = self.generator
        temperatures = [c for c in columns if not isinstance(c, Beam)]
        variants = [dataclasses.replace(self._settings, temperature=t) for t in temperatures]
        blocks: list[list[Token]] = [[] for _ in variants]
        if variants:
            steps = sample_many(
                gen.model,
                gen.vocab,
                self.last_seed,
                variants,
                self.length,
                np.random.default_rng(self.seed),
                lowercase=gen.lowercase,
                window=gen.window,
                progress=self._priming,
            )
            try:
                for step in steps:
                    for block, token in zip(blocks, step, strict=True):
                        block.append(token)
            finally:
                self._priming(0, 0)
        context = encode_seed(gen.model, gen.vocab, self.last_seed, gen.lowercase).text
        drawn = iter(zip(variants, blocks, strict=True))
        current = self.tree.current
        # The seed is fed once for all the beam columns: each search starts from a copy of that state.
        seed_state = self._seed_state() if any(isinstance(c, Beam) for c in columns) else None
        for column in columns:
            if isinstance(column, Beam):
                assert seed_state is not None
                result = BeamSearch(gen.model, gen.vocab, seed_state, column.width, self.length).run()
                block, settings, label = result.tokens, None, column.label
            else:
                settings, block = next(drawn)
                label = settings.describe()
            self.tree.add(context, block, "compare", label=label, settings=settings)
            heading = Text()
            heading.append(f"── {label} ", style="tg.label")
            heading.append(f"· {_bits(block):.2f} bits/char", style="tg.dim")
            if isinstance(column, Beam):
                heading.append(f" · {_bits(block) * len(block):.1f} bits total", style="tg.dim")
            self.console.print(heading)
            self.console.print(styled([(self.last_seed, "tg.seed")]) + self._coloured(block), soft_wrap=True)
        self.tree.current = current

    def _seed_state(self) -> GeneratorState:
        """The generator's state after the last seed fed fresh, leaving the generator where it was."""
        gen = self.generator
        saved = gen.get_state()
        try:
            gen.prime(self.last_seed or "")
            return gen.get_state()
        finally:
            gen.set_state(saved)

    def beam(self, width: int) -> None:
        """Continue the last seed with a beam search of `width`, printed coloured with its total bits; Ctrl-C
        stops it and keeps the best beam so far. The result is the current branch and the last output."""
        if self.last_seed is None:
            raise TextgenError("type a seed first: /beam continues the last one")
        gen = self.generator
        context = encode_seed(gen.model, gen.vocab, self.last_seed, gen.lowercase).text
        search = BeamSearch(gen.model, gen.vocab, self._seed_state(), width, self.length, alternatives=ALTERNATIVES)
        self.note(f"beam search, width {width}, {self.length:,} characters (Ctrl-C stops it)…")
        stopped = False
        start = time.perf_counter()
        with self.keys.raw() if self.keys is not None else contextlib.nullcontext():
            for _ in search:
                if self.keys is not None and self.keys.poll().stop:
                    stopped = True
                    break
        elapsed = time.perf_counter() - start
        result = search.result()
        if stopped:
            self.note(f"stopped (Ctrl-C) after {search.position:,} of {self.length:,} characters")
        if not result.tokens:
            return
        branch = self.tree.add(context, result.tokens, "beam", label=f"beam{width}")
        gen.set_state(result.state)
        self.transcript.append(Turn(self.last_seed, list(result.tokens), [None] * len(result.tokens), branch.id))
        self._now_at(branch, 0)
        heading = Text()
        heading.append(f"── beam{width} ", style="tg.label")
        heading.append(f"· {result.total_bits:.1f} bits total · {result.bpc:.2f} bits/char", style="tg.dim")
        self.console.print(heading)
        self.console.print(styled([(self.last_seed, "tg.seed")]) + self._coloured(result.tokens), soft_wrap=True)
        self.console.print(stats_line(len(result.tokens), elapsed, result.bpc, f"beam {width} (deterministic)"))

    def last_output(self) -> tuple[Branch, int]:
        """The branch of the last output and how many of its characters came before that output."""
        if self.output is None:
            raise TextgenError("nothing generated yet: type a seed first")
        branch_id, start = self.output
        return self.tree.get(branch_id), start

    def fork(self, number: int, char: str | None) -> None:
        """Restart the last output at its character `number` (as /alts numbers them) with `char` instead (default:
        the model's likeliest other choice there) and continue for `length` characters, as a new branch."""
        parent, start = self.last_output()
        count = len(parent.tokens) - start
        if not 1 <= number <= count:
            raise TextgenError(f"fork at a character from 1 to {count} of the last output, got {number}")
        fork = Fork(self.generator, self.tree, parent.id, start + number, char, length=self.length)
        old = parent.tokens[start + number - 1].char
        new = self.generator.vocab.chars[fork.index]
        self.note(f"branch {parent.id} at {number}: {shown_char(new)} instead of {shown_char(old)}")
        before = parent.text[: start + number - 1]
        turn = Turn(parent.context.lstrip("\n") + before)
        began = time.perf_counter()
        lead = "…" + flat(before[-PREVIEW:])
        stopped = self._stream(lead, fork, turn, seed=False)
        elapsed = time.perf_counter() - began
        turn.temperatures = [fork.settings.temperature] * len(turn.tokens)
        if fork.branch is not None:
            turn.branch = fork.branch.id
            self.transcript.append(turn)
            self._now_at(fork.branch, 0)
        if stopped:
            self.note("stopped (Ctrl-C)")
        self.console.print(stats_line(len(turn.tokens), elapsed, _bits(turn.tokens), fork.settings.describe()))

    # ---- branches: /pick (keys in repl/pick.py), /tree, /go ---------------------------------------------------

    def begin_pick(self, seed_text: str) -> tuple[Stepper, Branch | None, str]:
        """Step mode's start: the seed fed fresh (or, without one, the current branch's end, or the start
        character); returns the stepper, the branch it continues (None: a new root) and its context."""
        gen = self.generator
        if seed_text or not self.primed or self.tree.current is None:
            primed = gen.prime(seed_text)
            if primed.unknown:
                self.note(f"skipped characters this model does not know: {describe_unknown(primed.unknown)}")
            if seed_text:
                self.last_seed = seed_text
            self.primed = False  # until something is picked: the branch it continued no longer matches the state
            return Stepper(gen, alternatives=ALTERNATIVES), None, primed.text
        parent = self.tree.get(self.tree.current)
        return Stepper(gen, alternatives=ALTERNATIVES), parent, self.fed

    def end_pick(self, stepper: Stepper, parent: Branch | None, context: str, seed_text: str) -> None:
        """Keep what was picked as a branch (a child starting after `parent`'s end, or a root) and the last output."""
        tokens = list(stepper.tokens)
        if not tokens:
            self.note("nothing picked")
            return
        split = None if parent is None else len(parent.tokens) + 1
        parent_id = None if parent is None else parent.id
        branch = self.tree.add(
            context, tokens, "pick", settings=self._settings, parent=parent_id, split=split, forced=len(tokens)
        )
        self.transcript.append(Turn(seed_text, tokens, [self._settings.temperature] * len(tokens), branch.id))
        self._now_at(branch, 0)
        lead = [(seed_text, "tg.seed")] if seed_text else [("…", "tg.note")]
        self.console.print(styled(lead) + colour_tokens(tokens, self.color), soft_wrap=True)
        self.note(
            f"picked {len(tokens)} character(s): branch {branch.id}; /alts, /fork, /save and an empty Enter use it"
        )

    def show_tree(self) -> None:
        """Table of the branches: id, where each split from its parent, a preview, bits/char."""
        if not self.tree.branches:
            raise TextgenError("no branches yet: type a seed first")
        table = Table(title="branches (› current; /go ID continues one)", title_style="tg.dim")
        for column in ("id", "from", "kind", "chars", "bits/char", "text"):
            table.add_column(column, justify="right" if column in ("id", "chars", "bits/char") else "left")
        for b in self.tree.branches.values():
            mark = "›" if b.id == self.tree.current else " "
            where = "—" if b.parent is None else f"{b.parent}@{b.split}"
            kind = {"compare": f"compare {b.label}", "beam": b.label}.get(b.kind, b.kind)
            bpc = f"{b.bpc:.2f}" if b.tokens else "—"
            preview = flat(b.text[:PREVIEW]) + ("…" if len(b.tokens) > PREVIEW else "")
            table.add_row(f"{mark}{b.id}", where, kind, f"{len(b.tokens):,}", bpc, Text(preview))
        self.console.print(table)

    def go(self, branch_id: int) -> None:
        """Make a branch current: the model's state is rebuilt at its end, so an empty Enter continues it."""
        branch = self.tree.go(branch_id)
        rebuild(self.generator, branch, len(branch.tokens))
        self._now_at(branch, 0)
        tail = flat(branch.context.lstrip("\n")[-PREVIEW:])
        self.console.print(styled([(tail, "tg.dim")]) + colour_tokens(branch.tokens, self.color), soft_wrap=True)
        self.note(f"branch {branch.id} is current: an empty Enter continues it")

    def _coloured(self, block: list[Token]) -> Text:
        """A block that continues the last seed, coloured by the current mode; in a cell view by the cell's values,
        replayed from the seed (a batched run's or a beam's states are gone)."""
        cells = None
        if self.cell_view and self.cell is not None:
            gen = self.generator
            text = "".join(t.char for t in block)
            seed = self.last_seed or ""
            cells = continuation_values(
                gen.model, gen.vocab, seed, text, self.cell.layer, self.cell.index, lowercase=gen.lowercase
            )
        return colour_tokens(block, self.color, cells)

    def score(self, text: str) -> None:
        """Colour `text` by the model's probability of each character and report its bits/char."""
        if len(text) > MAX_SCORE_CHARS:
            raise TextgenError(
                f"at most {MAX_SCORE_CHARS:,} characters (this text has {len(text):,}); for a longer "
                "text, save it to a file and run: textgen eval FILE"
            )
        gen = self.generator
        result = score(gen.model, gen.vocab, text, lowercase=gen.lowercase, window=gen.window)
        if not result.chars:
            raise TextgenError("nothing to score: the model knows none of these characters")
        colour = self.color != "off"
        if self.cell_view and self.cell is not None:
            read, values = cell_values(
                gen.model, gen.vocab, text, self.cell.layer, self.cell.index, lowercase=gen.lowercase
            )
            pieces = zip(read, map(cell_style, values), strict=True)
        else:
            pieces = ((ch, prob_style(p) if colour else None) for ch, p in zip(result.text, result.probs, strict=True))
        self.console.print(styled(pieces), soft_wrap=True)
        self.note(f"{result.bpc:.3f} bits/char over {result.chars:,} characters")
        if result.unknown:
            self.note(f"not scored (unknown to the model): {describe_unknown(result.unknown)}")

    def alternatives(self, n: int) -> None:
        """Table of the last output's `n` least likely characters and what the model preferred instead."""
        branch, start = self.last_output()
        tokens = branch.tokens[start:]
        if not tokens:
            raise TextgenError("nothing generated yet: type a seed first")
        picked = sorted(sorted(range(len(tokens)), key=lambda i: tokens[i].prob)[:n])
        table = Table(title="least likely characters of the last output", title_style="tg.dim")
        for column in ("#", "context", "char", "p", "model's top 5"):
            table.add_column(column, justify="right" if column in ("#", "p") else "left")
        for i in picked:
            t = tokens[i]
            before = "".join(tok.char for tok in tokens[max(0, i - 12) : i])
            context = Text()
            context.append("".join(shown_char(c) for c in before), style="tg.dim")
            context.append(shown_char(t.char), style=prob_style(t.prob))
            alts = "  ".join(f"{shown_char(c)} {p:.2f}" for c, p in t.alternatives)
            table.add_row(str(i + 1), context, shown_char(t.char), f"{t.prob:.3f}", alts)
        self.console.print(table)

    def info(self) -> None:
        """Exactly what `textgen info` prints for this checkpoint, learning curve included (one implementation)."""
        for part in info_renderables(describe(self.loaded.checkpoint), self.console.width):
            self.console.print(part, soft_wrap=True)

    def load(self, path: str) -> None:
        """Switch checkpoints (or to a Keras file, with the session's vocabulary); any failure (or Ctrl-C) keeps the
        current model."""
        ckpt = open_model(_user_path(path), self.vocab, needs_vocab=NEEDS_VOCAB)
        self._use(ckpt)
        # The branches were another model's: /go and /fork could not rebuild them. The saved transcript keeps
        # their text, as runs of no branch.
        for turn in self.transcript:
            turn.branch = None
        self.tree, self.output, self._rng_branch = BranchTree(), None, None
        self.banner()

    def set_window(self, on: bool) -> None:
        """/window on|off: run the model the book's way or statefully; the state starts afresh either way."""
        run_window(self.loaded.checkpoint.meta, on)  # a model without a window refuses `on`
        self.windowed = on
        self._use(self.loaded.checkpoint)

    def reset(self) -> None:
        self.generator.reset()
        self.primed = False
        self.note("model state cleared; type a seed")

    def save(self, path: str) -> None:
        """Write the transcript atomically: text as the session read, or JSONL with every probability."""
        if not self.transcript:
            raise TextgenError("nothing to save yet")
        target = _user_path(path)
        if target.is_dir() or not target.name:
            raise TextgenError(f"{shown(path)} is a folder; give a file name, e.g. session.txt or session.jsonl")
        jsonl = target.suffix.lower() == ".jsonl"
        atomic_write_text(target, jsonl_text(self.transcript, self.tree) if jsonl else plain_text(self.transcript))
        self.note(
            f"saved {len(self.transcript)} run(s) to {target}"
            + (f" (JSONL: {len(self.tree.branches)} branch(es), one object per character)" if jsonl else "")
        )


def _user_path(text: str) -> Path:
    """A path typed at the prompt, `~` expanded. The checks pathlib may raise on (an unknown `~user`, a name
    too long for the filesystem) become one-line errors, and so does a NUL character, which no path can hold
    (Ctrl-@ types one; pathlib answers "does not exist" for it, and opening it raises ValueError)."""
    if "\0" in text:
        raise TextgenError(f"cannot use {shown(text)} as a path (it contains a NUL character)")
    try:
        path = Path(text).expanduser()
        path.exists()
    except (OSError, RuntimeError) as e:
        raise TextgenError(f"cannot use {shown(text)} as a path ({getattr(e, 'strerror', None) or e})") from None
    return path


def _bits(tokens: list[Token]) -> float:
    """Bits/char of generated text under the model at temperature 1 (how surprising it is to the model)."""
    if not tokens:
        return math.nan
    return -sum(math.log2(max(t.prob, 1e-300)) for t in tokens) / len(tokens)
