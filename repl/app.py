"""The REPL session: read a line, stream a continuation coloured by probability, or run a slash command.

Two loops share one `Session`. On a terminal, input comes from a prompt_toolkit `PromptSession` (history,
completion, Esc+Enter for a newline, a bottom toolbar). With piped stdin or a stdout that is not a terminal,
input is read line by line with no prompt, so `printf 'the will\\n/quit\\n' | textgen` works.

Keys while streaming: generation runs in the main thread and, between printed batches, polls the same
prompt_toolkit `Input` the prompt reads from, in raw mode and without blocking. Up/Down and +/- change the
temperature that the next characters are drawn with; Ctrl-C (a key in raw mode, not a signal) ends the run
cleanly between two characters, so the model state stays consistent and empty Enter can carry on from there.
Other keys typed meanwhile are handed back to the prompt as type-ahead. While a line's command or run
executes, `statusline` pins the same toolbar to the terminal's last row. Outside streaming, Ctrl-C is a signal:
the loop catches it (during /compare, /load, …) and returns to the prompt with the session intact.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from textgen_core import checkpoint
from textgen_core.atomic import atomic_write_text
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, Token, sample_many, score
from textgen_core.sampling import SamplingSettings
from textgen_core.vocab import describe_unknown

from .cmd_repl import MAX_TEMPERATURE
from .commands import REGISTRY, Registry, fmt_opt
from .render import StreamWriter, colour_tokens, legend, make_console, prob_style, shown_char, stats_line, styled
from .safe import shown, visible
from .statusline import StatusLine

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

#: Alternatives recorded with every generated character, so /alts can show the model's top 5 afterwards.
ALTERNATIVES = 5
#: How much one Up/Down or +/- moves the temperature while streaming.
NUDGE = 0.1
PROMPT = "› "
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Turn:
    """One run: the seed typed ("" when empty Enter continued the previous run), what was generated, and the
    temperature each character was drawn at (it can change mid-run)."""

    seed: str
    tokens: list[Token] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint and the generator built from it, swapped in as one object so that an interrupted or failed
    /load never leaves a half-replaced model."""

    checkpoint: checkpoint.Checkpoint
    generator: Generator


class Session:
    """Everything a REPL session knows: the model, the settings, the transcript. Front-end agnostic: it
    prints to `console` and, while streaming, polls `keys` (None when input is piped)."""

    def __init__(
        self,
        ckpt: checkpoint.Checkpoint,
        console: Console,
        *,
        settings: SamplingSettings,
        length: int,
        seed: int | None = None,
        keys: Input | None = None,
    ):
        self.console = console
        self.colour_shown = console.color_system is not None
        self.color = "prob" if self.colour_shown else "off"
        self.length = length
        self.seed = seed
        self.carry = False
        self.running = True
        self.keys = keys
        #: The toolbar kept on the bottom row while output streams (prompt_toolkit shows it at the prompt).
        self.status = StatusLine(console.file, self.toolbar) if keys is not None else None
        self.transcript: list[Turn] = []
        self.last_seed: str | None = None
        self._settings = settings
        self._use(ckpt)

    # ---- state ------------------------------------------------------------------------------------------------

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
        return visible(self.loaded.checkpoint.name)

    def describe_settings(self) -> str:
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"{self.settings.describe()}{seed}"

    # ---- output -----------------------------------------------------------------------------------------------

    def show(self, what: str, value: str) -> None:
        """A setting's value (or a command's help): `what  value`."""
        line = Text()
        line.append(f"{what}  ", style="tg.key")
        line.append(visible(value))
        self.console.print(line, soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(Text(visible(message), style="tg.note"), soft_wrap=True)

    def error(self, message: str) -> None:
        self.console.print(Text(visible(message), style="tg.error"), soft_wrap=True)

    def legend(self) -> None:
        self.console.print(legend(self.color), soft_wrap=True)
        if not self.colour_shown:
            self.note("(this output shows no colour: NO_COLOR is set, --no-color was given or it is not a terminal)")

    def banner(self) -> None:
        meta = self.loaded.checkpoint.meta
        corpus = ", ".join(f"{s.name} ({s.chars:,} chars)" for s in meta.corpus) or "an unrecorded corpus"
        bpc = "val bpc —" if meta.val_bpc is None else f"val {meta.val_bpc:.3f} bits/char"
        parts = [
            Text(f"textgen · {self.name}", style="tg.label"),
            *(Text(p, style="tg.dim") for p in (meta.config.describe(), f"trained on {visible(corpus)}", bpc)),
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
            f"model {self.name} "
        )

    def pinned_toolbar(self) -> contextlib.AbstractContextManager[None]:
        """Keep the toolbar on the terminal's last row while the block runs (only on an interactive terminal)."""
        return contextlib.nullcontext() if self.status is None else self.status.pinned()

    def help_overview(self, registry: Registry) -> None:
        table = Table.grid(padding=(0, 2))
        for cmd in registry.commands:
            table.add_row(Text(cmd.usage, style="tg.key"), Text(cmd.help))
        self.console.print(table)
        self.note(
            "Type text and Enter: the model continues it. Empty Enter: continue the last output. "
            "Esc+Enter (or Alt+Enter): new line. While streaming: Up/Down or +/- change the temperature, "
            "Ctrl-C stops. Ctrl-R searches history. Ctrl-D or /quit leaves."
        )

    # ---- input ------------------------------------------------------------------------------------------------

    def submit(self, line: str) -> None:
        """Handle one input: a slash command, empty (continue the last output) or seed text.

        Undecodable input bytes arrive as lone surrogates (Python's surrogateescape); they become U+FFFD here,
        so that they are reported like any character the model does not know.
        """
        line = LONE_SURROGATE.sub("\ufffd", line)
        if line.startswith("/"):
            REGISTRY.dispatch(self, line)
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
        with self._raw_keys():
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

    @contextlib.contextmanager
    def _raw_keys(self) -> Iterator[None]:
        if self.keys is None:
            yield
            return
        with self.keys.raw_mode():
            yield
        # An Escape typed alone waits in the parser for a possible sequence: hand it to the prompt.
        self._give_back(self.keys.flush_keys())

    def _poll_keys(self, writer: StreamWriter) -> bool:
        """Apply the keys pressed since the last batch; True when Ctrl-C asks to stop."""
        if self.keys is None:
            return False
        from prompt_toolkit.keys import Keys

        delta = 0.0
        others = []
        for press in self.keys.read_keys():
            if press.key == Keys.ControlC:
                return True
            if press.key in (Keys.Up, "+"):
                delta += NUDGE
            elif press.key in (Keys.Down, "-"):
                delta -= NUDGE
            else:
                others.append(press)
        self._give_back(others)
        if delta:
            temperature = round(min(max(self._settings.temperature + delta, 0.0), MAX_TEMPERATURE), 2)
            self.update(temperature=temperature)
            writer.insert(f"‹T {temperature:g}›")
        if self.status is not None:
            self.status.refresh()
        return False

    def _give_back(self, presses: list) -> None:
        if presses and self.keys is not None:
            from prompt_toolkit.input.typeahead import store_typeahead

            store_typeahead(self.keys, presses)

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
        """Exactly what `textgen info` prints for this checkpoint (one implementation)."""
        from . import cmd_info

        text = cmd_info.render(cmd_info.describe(self.loaded.checkpoint))
        self.console.print(Text(text), soft_wrap=True)

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
        atomic_write_text(target, _jsonl(self.transcript) if jsonl else _plain(self.transcript))
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


def _plain(transcript: list[Turn]) -> str:
    parts: list[str] = []
    for turn in transcript:
        if turn.seed and parts:
            parts.append("\n\n")
        parts.append(turn.seed)
        parts.append("".join(t.char for t in turn.tokens))
    return "".join(parts) + "\n"


def _jsonl(transcript: list[Turn]) -> str:
    lines: list[str] = []
    for number, turn in enumerate(transcript, 1):
        lines.append(json.dumps({"turn": number, "seed": turn.seed}, ensure_ascii=False))
        for t, temperature in zip(turn.tokens, turn.temperatures, strict=True):
            record = {
                "turn": number,
                "char": t.char,
                "prob": t.prob,
                "sampled_prob": t.sampled_prob,
                "entropy": t.entropy,
                "temperature": temperature,
            }
            lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + "\n"


# ---- loops ------------------------------------------------------------------------------------------------


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


def interactive(session: Session, prompt: PromptSession) -> int:
    """Read lines from a prompt until /quit or Ctrl-D. Ctrl-C never ends the session."""
    while session.running:
        try:
            line = prompt.prompt()
        except KeyboardInterrupt:
            session.note("(Ctrl-C clears the line and stops a run; to leave, type /quit or press Ctrl-D)")
            continue
        except EOFError:
            break
        try:
            with session.pinned_toolbar():
                session.submit(line)
        except KeyboardInterrupt:
            session.note("interrupted; the session goes on")
    return 0


def piped(session: Session, lines: IO[str]) -> int:
    """Read plain lines (no prompt, no line editing) until /quit or end of input."""
    for line in lines:
        session.submit(line.rstrip("\r\n"))
        if not session.running:
            break
    return 0


def make_prompt(
    session: Session, history: Path | None, *, input: Input | None = None, output: Output | None = None
) -> PromptSession:
    """The line editor: Enter submits, Esc+Enter / Alt+Enter inserts a newline (so do pasted newlines),
    history in a file with auto-suggest and Ctrl-R search, slash-command completion, and the toolbar."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.output import ColorDepth

    bindings = KeyBindings()

    @bindings.add("enter")
    def _submit(event) -> None:
        buffer = event.current_buffer
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
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    store: History = InMemoryHistory()
    if history is not None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            store = FileHistory(str(history))
        except OSError as e:
            session.note(f"history will not be kept: cannot create {history.parent} ({e.strerror or e})")
    return PromptSession(
        PROMPT,
        multiline=True,
        prompt_continuation="· ",
        key_bindings=bindings,
        history=store,
        auto_suggest=AutoSuggestFromHistory(),
        completer=REGISTRY.completer(),
        complete_while_typing=True,
        bottom_toolbar=session.toolbar,
        color_depth=None if session.colour_shown else ColorDepth.MONOCHROME,
        input=input,
        output=output,
    )


def default_history() -> Path:
    """`history` in the user's state folder (XDG_STATE_HOME, else ~/.local/state/textgen on Linux)."""
    from platformdirs import user_state_path

    return user_state_path("textgen") / "history"


def main(args: argparse.Namespace) -> int:
    """`textgen repl`: load the model, print the banner, run the loop that suits stdin and stdout."""
    interactive_tty = sys.stdin.isatty() and sys.stdout.isatty()
    colour = sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
    console = make_console(color=colour)
    settings = SamplingSettings(temperature=args.temp, top_k=args.top_k, top_p=args.top_p)
    ckpt = checkpoint.load(args.checkpoint)
    keys = None
    if interactive_tty:
        from prompt_toolkit.input import create_input

        keys = create_input()
    session = Session(ckpt, console, settings=settings, length=args.len, seed=args.seed, keys=keys)
    session.banner()
    if keys is None:
        return piped(session, sys.stdin)
    history = Path(args.history).expanduser() if args.history else default_history()
    # A program that a script starts in the background (`cmd &`) inherits SIGINT ignored, and so does what it
    # starts; Ctrl-C must still stop /compare or /load here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with quiet_terminal(sys.stdin.fileno()):
        return interactive(session, make_prompt(session, history, input=keys))
