"""Is this checkpoint better? `/versus CKPT` continues the last seed with the loaded model (A) and a second
checkpoint (B) with the same settings and the same random numbers, and shows both texts, each coloured by its own
model's probabilities, where they first differ, and each model's bits/char on both texts.

The same random numbers: both generators start from one seed (the session's, else one drawn for the occasion and
named), and each character is drawn by inverting its distribution with the next uniform number, so the two texts
agree for as long as the two models' distributions put the same character under the same number. B is any model:
a checkpoint file or run folder, `bundled`, `run` (the newest weights the run writing the loaded model's file has
saved: the run being followed), or a Keras file (with the session's vocabulary); each runs its own way (windowed
or stateful, `loader.run_window`). The scores are `textgen_core.versus.continuation_bits`: `scoring.score` on the
seed and the text, as `textgen eval` scores. B is loaded for the command only; a failure to load it is one line.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from textgen_core import checkpoint
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, Token, chars
from textgen_core.loader import open_model, run_window
from textgen_core.rng import fresh_seed
from textgen_core.versus import Scorer, continuation_bits, first_difference
from textgen_core.vocab import describe_unknown

from ..render import colour_tokens, styled
from ..safe import flat, shown_char
from ..values import MAX_SEED, MODES
from .model import NEEDS_VOCAB

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint

    from ..session import Session

#: The second model's names that are not paths.
BUNDLED, RUN = "bundled", "run"
#: From this terminal width the two texts are shown side by side; below it, one block after the other.
SIDE_BY_SIDE = 100
#: Characters of context quoted before the first difference.
BEFORE = 24


def versus(s: Session, arg: str) -> None:
    """/versus CKPT: see the module doc."""
    if s.last_seed is None:
        raise TextgenError("type a seed first: /versus continues the last one with both models")
    other = open_other(s, arg.strip())
    seed = s.seed if s.seed is not None else fresh_seed(MAX_SEED)
    gen = s.generator
    window = run_window(other.meta, s.windowed if other.meta.window is not None else None)
    a = Generator(gen.model, gen.vocab, lowercase=gen.lowercase, settings=s.settings, seed=seed, window=gen.window)
    b = Generator.from_checkpoint(other, settings=s.settings, seed=seed, window=window)
    a.prime(s.last_seed)
    primed = b.prime(s.last_seed)
    if primed.unknown:
        s.note(f"B skips seed characters it does not know: {describe_unknown(primed.unknown)}")
    a_tokens, b_tokens, stopped = _draw(s, a, b)
    if stopped:
        s.note(f"stopped (Ctrl-C) after {chars(a_tokens):,} characters")
    names = (
        f"A · {s.name} @ step {s.loaded.checkpoint.meta.step:,}",
        f"B · {flat(other.name)} @ step {other.meta.step:,}",
    )
    s.note(f"the last seed continued by both, {s.settings.describe()}, the same random numbers (seed {seed})")
    shown = _texts(s, names, a_tokens, b_tokens)
    s.print(shown, soft_wrap=isinstance(shown, Text))  # blocks keep their own line breaks; a table wraps its cells
    a_text, b_text = "".join(t.char for t in a_tokens), "".join(t.char for t in b_tokens)
    s.note(_difference(a_text, b_text))
    scorers = (Scorer(gen.model, gen.vocab, gen.lowercase, gen.window), Scorer.from_checkpoint(other, window))
    s.print(_bits_table(names, scorers, s.last_seed, (a_text, b_text)))


def open_other(s: Session, arg: str) -> Checkpoint:
    """The second model: `bundled`, `run` (the loaded model's file as the run has last written it), or any path
    `loader.open_model` opens (a Keras file with the session's vocabulary)."""
    if arg.lower() == BUNDLED:
        return open_model(None)
    if arg.lower() == RUN:
        path = s.loaded.checkpoint.path
        if path == checkpoint.bundled_path() or not path.is_file() or path.suffix != ".safetensors":
            raise TextgenError("the loaded model is not a training run's checkpoint: give a file or a run folder")
        return checkpoint.load(path)
    return open_model(arg, s.vocab, needs_vocab=NEEDS_VOCAB)


def _draw(s: Session, a: Generator, b: Generator) -> tuple[list[Token], list[Token], bool]:
    """Both continuations, token by token (Ctrl-C stops both where they are)."""
    a_tokens: list[Token] = []
    b_tokens: list[Token] = []
    with s.keys.raw() if s.keys is not None else contextlib.nullcontext():
        # A word or word-piece model reaches the length in fewer tokens than a character model: each stream
        # goes on until it has its characters.
        for x, y in itertools.zip_longest(a.stream(s.length), b.stream(s.length)):
            if x is not None:
                a_tokens.append(x)
            if y is not None:
                b_tokens.append(y)
            if s.keys is not None and s.keys.poll().stop:
                return a_tokens, b_tokens, True
    return a_tokens, b_tokens, False


def _texts(s: Session, names: tuple[str, str], *blocks: list[Token]) -> RenderableType:
    """The seed and each continuation, coloured by its own model's probabilities (the session's colour mode; a cell
    view colours by probability, the cells of two models not being the same cells): side by side on a wide
    terminal, labelled blocks otherwise."""
    mode = s.color if s.color in MODES else "prob"
    texts = [styled([(s.last_seed or "", "tg.seed")]) + colour_tokens(block, mode) for block in blocks]
    if s.console.width >= SIDE_BY_SIDE:
        table = Table(show_edge=False, expand=True, header_style="tg.label")
        for name in names:
            table.add_column(name, ratio=1)
        table.add_row(*texts)
        return table
    parts = Text()
    for name, text in zip(names, texts, strict=True):
        parts.append(f"── {name}\n", style="tg.label")
        parts.append_text(text)
        parts.append("\n")
    return parts


def _difference(a: str, b: str) -> str:
    where = first_difference(a, b)
    if where is None:
        return "the two texts are the same"
    before = flat(a[max(0, where - BEFORE) : where])
    first = shown_char(a[where]) if where < len(a) else "(end)"
    second = shown_char(b[where]) if where < len(b) else "(end)"
    return f"first difference at character {where + 1:,}, after «{before}»: A «{first}», B «{second}»"


def _bits_table(names: tuple[str, str], scorers: tuple[Scorer, Scorer], seed: str, texts: tuple[str, str]) -> Table:
    """Each model's bits/char on each text, after the seed (lower is likelier; a model on its own text is the
    diagonal)."""
    table = Table(title="bits/char after the seed (lower: the model finds the text likelier)", title_style="tg.dim")
    table.add_column("model")
    table.add_column("on A's text", justify="right")
    table.add_column("on B's text", justify="right")
    for name, scorer in zip(names, scorers, strict=True):
        table.add_row(name, *(f"{continuation_bits(scorer, seed, text):.3f}" for text in texts))
    return table
