"""Steering the last output by hand: the same seed continued other ways (/compare, /beam), a restart at any
character (/fork), and the branches that all of these make (/tree, /go). The model's side (branches, forks that
replay their random numbers, beam search) is `textgen_core.steer` and `textgen_core.beam`; this module decides
what each command shows and records the branches in the session."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from textgen_core.beam import BeamSearch
from textgen_core.errors import TextgenError
from textgen_core.generate import GeneratorState, Token, chars, encode_seed, sample_many
from textgen_core.rng import Rng
from textgen_core.steer import Fork, rebuild

from ..render import colour_tokens, stats_line, styled
from ..safe import flat, shown_char
from ..session import ALTERNATIVES, bits, finished
from ..transcript import Turn
from ..values import Beam, Number, parse_beam, parse_columns
from .cells import coloured

if TYPE_CHECKING:
    from ..session import Session

#: Characters of a branch shown by /tree and before a fork.
PREVIEW = 48
#: A character's number in the last output (/fork), a branch's id (/go).
_parse_place = Number(int, 1, what="the character's number")
_parse_branch = Number(int, 1, what="the branch id")


def compare(s: Session, arg: str) -> None:
    """/compare [T1 T2 … beamW]: the last seed continued at each temperature, all drawn in one batched pass, and by
    each beam; one block each, in the order given. Each block becomes a branch of the tree (the current branch
    stays current)."""
    columns = parse_columns(arg)
    if s.last_seed is None:
        raise TextgenError("type a seed first: /compare continues the last one at several temperatures")
    gen = s.generator
    temperatures = [c for c in columns if not isinstance(c, Beam)]
    variants = [dataclasses.replace(s.settings, temperature=t) for t in temperatures]
    blocks: list[list[Token]] = [[] for _ in variants]
    if variants:
        steps = sample_many(
            gen.model,
            gen.vocab,
            s.last_seed,
            variants,
            s.length,
            Rng(s.seed),
            lowercase=gen.lowercase,
            window=gen.window,
            progress=s.priming,
        )
        try:
            for step in steps:
                for block, token in zip(blocks, step, strict=True):
                    if token is not None:  # a word or word-piece stream that has its characters
                        block.append(token)
        finally:
            s.priming(0, 0)
    context = encode_seed(gen.model, gen.vocab, s.last_seed, gen.lowercase).text
    drawn = iter(zip(variants, blocks, strict=True))
    current = s.tree.current
    # The seed is fed once for all the beam columns: each search starts from a copy of that state.
    start = _seed_state(s) if any(isinstance(c, Beam) for c in columns) else None
    for column in columns:
        if isinstance(column, Beam):
            assert start is not None
            result = BeamSearch(gen.model, gen.vocab, start, column.width, s.length).run()
            block, settings, label = result.tokens, None, column.label
        else:
            settings, block = next(drawn)
            label = settings.describe()
        s.tree.add(context, block, "compare", label=label, settings=settings)
        heading = Text()
        heading.append(f"── {label} ", style="tg.label")
        heading.append(f"· {bits(block):.2f} bits/char", style="tg.dim")
        if isinstance(column, Beam):
            heading.append(f" · {bits(block) * len(block):.1f} bits total", style="tg.dim")
        s.print(heading)
        s.print(styled([(s.last_seed, "tg.seed")]) + coloured(s, block), soft_wrap=True)
    s.tree.current = current


def _seed_state(s: Session) -> GeneratorState:
    """The generator's state after the last seed fed fresh, leaving the generator where it was."""
    gen = s.generator
    saved = gen.get_state()
    try:
        gen.prime(s.last_seed or "")
        return gen.get_state()
    finally:
        gen.set_state(saved)


def beam(s: Session, arg: str) -> None:
    """/beam W [norepeat N]: continue the last seed with a beam search of width W (that never repeats an N-character
    stretch, with norepeat), printed coloured with its total bits; Ctrl-C stops it and keeps the best beam so far.
    The result is the current branch and the last output."""
    width, no_repeat = parse_beam(arg)
    if s.last_seed is None:
        raise TextgenError("type a seed first: /beam continues the last one")
    gen = s.generator
    context = encode_seed(gen.model, gen.vocab, s.last_seed, gen.lowercase).text
    search = BeamSearch(
        gen.model, gen.vocab, _seed_state(s), width, s.length, alternatives=ALTERNATIVES, no_repeat=no_repeat
    )
    s.note(f"beam search, width {width}, {s.length:,} characters (Ctrl-C stops it)…")
    stopped = False
    began = time.perf_counter()
    with s.keys.raw() if s.keys is not None else contextlib.nullcontext():
        for _ in search:
            if s.keys is not None and s.keys.poll().stop:
                stopped = True
                break
    elapsed = time.perf_counter() - began
    result = search.result()
    if stopped:
        s.note(f"stopped (Ctrl-C) after {search.position:,} of {s.length:,} characters")
    if not result.tokens:
        return
    label = f"beam{width}" + ("" if no_repeat is None else f" norepeat {no_repeat}")
    branch = s.tree.add(context, result.tokens, "beam", label=label)
    gen.set_state(result.state)
    s.transcript.append(Turn(s.last_seed, list(result.tokens), [None] * len(result.tokens), branch.id))
    s.now_at(branch, 0)
    heading = Text()
    heading.append(f"── {label} ", style="tg.label")
    heading.append(f"· {result.total_bits:.1f} bits total · {result.bpc:.2f} bits/char", style="tg.dim")
    s.print(heading)
    s.print(styled([(s.last_seed, "tg.seed")]) + coloured(s, result.tokens), soft_wrap=True)
    s.print(stats_line(chars(result.tokens), elapsed, result.bpc, f"{label} (deterministic)"))
    finished(s, result.tokens)


def fork(s: Session, arg: str) -> None:
    """/fork N [CHAR]: restart the last output at its character N (as /alts numbers them) with CHAR instead
    (default: the model's likeliest other choice there) and continue for `length` characters, as a new branch."""
    place, _, char = arg.partition(" ")
    number = _parse_place(place)
    parent, start = s.last_output()
    count = len(parent.tokens) - start
    if not 1 <= number <= count:
        raise TextgenError(f"fork at a character from 1 to {count} of the last output, got {number}")
    restart = Fork(s.generator, s.tree, parent.id, start + number, char or None, length=s.length)
    old = parent.tokens[start + number - 1].char
    new = s.generator.vocab.tokens[restart.index]
    s.note(f"branch {parent.id} at {number}: {shown_char(new)} instead of {shown_char(old)}")
    before = parent.prefix(start + number - 1)
    turn = Turn(parent.context.lstrip("\n") + before)
    began = time.perf_counter()
    stopped = s.stream("…" + flat(before[-PREVIEW:]), restart, turn, seed=False)
    elapsed = time.perf_counter() - began
    turn.temperatures = [restart.settings.temperature] * len(turn.tokens)
    if restart.branch is not None:
        turn.branch = restart.branch.id
        s.transcript.append(turn)
        s.now_at(restart.branch, 0)
    if stopped:
        s.note("stopped (Ctrl-C)")
    s.print(stats_line(chars(turn.tokens), elapsed, bits(turn.tokens), restart.settings.describe()))
    finished(s, turn.tokens)


def tree(s: Session, arg: str) -> None:
    """/tree: a table of the branches: id, where each split from its parent, a preview, bits/char."""
    if not s.tree.branches:
        raise TextgenError("no branches yet: type a seed first")
    table = Table(title="branches (› current; /go ID continues one)", title_style="tg.dim")
    for column in ("id", "from", "kind", "chars", "bits/char", "text"):
        table.add_column(column, justify="right" if column in ("id", "chars", "bits/char") else "left")
    for b in s.tree.branches.values():
        mark = "›" if b.id == s.tree.current else " "
        where = "—" if b.parent is None else f"{b.parent}@{b.split}"
        kind = {"compare": f"compare {b.label}", "beam": b.label}.get(b.kind, b.kind)
        bpc = f"{b.bpc:.2f}" if b.tokens else "—"
        preview = flat(b.text[:PREVIEW]) + ("…" if len(b.text) > PREVIEW else "")
        table.add_row(f"{mark}{b.id}", where, kind, f"{len(b.text):,}", bpc, Text(preview))
    s.print(table)


def go(s: Session, arg: str) -> None:
    """/go ID: make a branch current; the model's state is rebuilt at its end, so an empty Enter continues it."""
    branch = s.tree.go(_parse_branch(arg))
    rebuild(s.generator, branch, len(branch.tokens))
    s.now_at(branch, 0)
    tail = flat(branch.context.lstrip("\n")[-PREVIEW:])
    s.print(styled([(tail, "tg.dim")]) + colour_tokens(branch.tokens, s.color), soft_wrap=True)
    s.note(f"branch {branch.id} is current: an empty Enter continues it")
