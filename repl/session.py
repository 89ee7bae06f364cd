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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from textgen_core import checkpoint
from textgen_core.atomic import atomic_write_text
from textgen_core.describe import describe
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, Token, sample_many, score
from textgen_core.sampling import SamplingSettings
from textgen_core.vocab import describe_unknown

from .describe import info_renderables, summary
from .keys import KeyPoller
from .render import StreamWriter, colour_tokens, legend, prob_style, stats_line, styled
from .safe import flat, shown, shown_char
from .statusline import StatusLine
from .transcript import Turn, jsonl_text, plain_text
from .values import MAX_TEMPERATURE, fmt_opt

if TYPE_CHECKING:
    from prompt_toolkit.input import Input

#: Alternatives recorded with every generated character, so /alts can show the model's top 5 afterwards.
ALTERNATIVES = 5
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
        self._settings = settings
        self._use(ckpt)

    # ---- state ------------------------------------------------------------------------------------------------

    def use(self, ckpt: checkpoint.Checkpoint) -> None:
        """Switch to a checkpoint already loaded (the run being followed wrote a new best); settings stay."""
        self._use(ckpt)

    def _use(self, ckpt: checkpoint.Checkpoint) -> None:
        self.loaded = Loaded(ckpt, Generator.from_checkpoint(ckpt, settings=self._settings, seed=self.seed))
        #: Whether the generator holds a context that empty Enter may continue.
        self.primed = False

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
        self.console.print(legend(self.color), soft_wrap=True)
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
        """The bottom toolbar: under the prompt, and pinned to the last row while a command runs."""
        s = self.settings
        return (
            f" T {s.temperature:g} │ len {self.length:,} │ top-k {fmt_opt(s.top_k)} │ top-p {fmt_opt(s.top_p)} │ "
            f"seed {fmt_opt(self.seed)} │ colour {self.color} │ continue {'on' if self.carry else 'off'} │ "
            f"model {self.name} @ step {self.loaded.checkpoint.meta.step:,}{' (following)' if self.follow else ''} "
        )

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
        self.primed = False  # until the seed is in: a Ctrl-C while priming must not leave a half state to continue
        if self.seed is not None:
            self.generator.set_seed(self.seed)
        primed = self.generator.prime(seed_text, carry=carry)
        if primed.unknown:
            self.note(f"skipped characters this model does not know: {describe_unknown(primed.unknown)}")
        self.last_seed = seed_text
        self._run(Turn(seed_text))

    def continue_last(self) -> None:
        if not self.primed:
            self.note("type some text for the model to continue; an empty line continues the last output")
            return
        self._run(Turn(""))

    def _run(self, turn: Turn) -> None:
        """Stream one run to the console, polling the keyboard between batches; then the stats line."""
        self.transcript.append(turn)
        writer = StreamWriter(self.console, self.color)
        writer.insert(turn.seed or "…", "tg.seed" if turn.seed else "tg.note")
        stopped = False
        start = time.perf_counter()
        with self.keys.raw() if self.keys is not None else contextlib.nullcontext():
            try:
                for token in self.generator.stream(self.length, alternatives=ALTERNATIVES):
                    turn.tokens.append(token)
                    turn.temperatures.append(self._settings.temperature)
                    if writer.add(token) and self._poll_keys(writer):
                        stopped = True
                        break
            finally:
                self.primed = True
                writer.end_line()
        elapsed = time.perf_counter() - start
        if stopped:
            self.note("stopped (Ctrl-C)")
        self.console.print(stats_line(len(turn.tokens), elapsed, _bits(turn.tokens), self.describe_settings()))

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

    def compare(self, temperatures: tuple[float, ...]) -> None:
        """The last seed continued at each temperature, all drawn in one batched pass, one block each."""
        if self.last_seed is None:
            raise TextgenError("type a seed first: /compare continues the last one at several temperatures")
        gen = self.generator
        variants = [dataclasses.replace(self._settings, temperature=t) for t in temperatures]
        blocks: list[list[Token]] = [[] for _ in variants]
        steps = sample_many(
            gen.model,
            gen.vocab,
            self.last_seed,
            variants,
            self.length,
            np.random.default_rng(self.seed),
            lowercase=gen.lowercase,
        )
        for step in steps:
            for block, token in zip(blocks, step, strict=True):
                block.append(token)
        for variant, block in zip(variants, blocks, strict=True):
            label = Text()
            label.append(f"── {variant.describe()} ", style="tg.label")
            label.append(f"· {_bits(block):.2f} bits/char", style="tg.dim")
            self.console.print(label)
            self.console.print(styled([(self.last_seed, "tg.seed")]) + colour_tokens(block, self.color), soft_wrap=True)

    def score(self, text: str) -> None:
        """Colour `text` by the model's probability of each character and report its bits/char."""
        gen = self.generator
        result = score(gen.model, gen.vocab, text, lowercase=gen.lowercase)
        if not result.chars:
            raise TextgenError("nothing to score: the model knows none of these characters")
        colour = self.color != "off"
        self.console.print(
            styled((ch, prob_style(p) if colour else None) for ch, p in zip(result.text, result.probs, strict=True)),
            soft_wrap=True,
        )
        self.note(f"{result.bpc:.3f} bits/char over {result.chars:,} characters")
        if result.unknown:
            self.note(f"not scored (unknown to the model): {describe_unknown(result.unknown)}")

    def alternatives(self, n: int) -> None:
        """Table of the last output's `n` least likely characters and what the model preferred instead."""
        tokens = self.transcript[-1].tokens if self.transcript else []
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
        """Switch checkpoints; any failure (or Ctrl-C) keeps the current model."""
        ckpt = checkpoint.load(_user_path(path))
        self._use(ckpt)
        self.banner()

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
        atomic_write_text(target, jsonl_text(self.transcript) if jsonl else plain_text(self.transcript))
        self.note(
            f"saved {len(self.transcript)} run(s) to {target}" + (" (JSONL, one object per character)" if jsonl else "")
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
