"""The REPL's transcript: the runs of a session, and the two files /save writes from them.

Plain text is the session as a reader would want it back (each seed followed by its continuation, runs that
continued the previous one joined to it). JSONL keeps everything: a line per run with its seed and the branch
of the session's tree it belongs to, then one object per generated character (the same record `textgen sample
--jsonl` writes, `Token.record`, naming its branch, parent and place in the branch), then the branches no run
printed on its own (the /compare columns), so the file holds the whole tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from textgen_core.generate import Token
from textgen_core.steer import Branch, BranchTree


@dataclass
class Turn:
    """One output: the seed typed ("" when it continued the previous output), what was generated, and the
    temperature each character was drawn at (it can change mid-run; None for a beam, which draws nothing).
    `branch` is its branch in the session's tree and `start` how many of that branch's characters came before."""

    seed: str
    tokens: list[Token] = field(default_factory=list)
    temperatures: list[float | None] = field(default_factory=list)
    branch: int | None = None
    start: int = 0


def plain_text(transcript: list[Turn]) -> str:
    parts: list[str] = []
    for turn in transcript:
        if turn.seed and parts:
            parts.append("\n\n")
        parts.append(turn.seed)
        parts.append("".join(t.char for t in turn.tokens))
    return "".join(parts) + "\n"


def _header(branch: Branch) -> dict[str, Any]:
    """Where a branch sits in the tree: its id, its parent and the parent's character it replaced."""
    return {
        "branch": branch.id,
        "parent": branch.parent,
        "split": branch.split,
        "kind": branch.kind,
        "label": branch.label,
    }


def jsonl_text(transcript: list[Turn], tree: BranchTree | None = None) -> str:
    lines: list[str] = []

    def dump(record: dict[str, Any]) -> None:
        lines.append(json.dumps(record, ensure_ascii=False))

    written: set[int] = set()
    for number, turn in enumerate(transcript, 1):
        branch = tree.branches.get(turn.branch) if tree is not None and turn.branch is not None else None
        where = {} if branch is None else {"branch": branch.id, "parent": branch.parent}
        dump({"turn": number, "seed": turn.seed, **({} if branch is None else _header(branch))})
        for n, (token, temperature) in enumerate(zip(turn.tokens, turn.temperatures, strict=True), turn.start + 1):
            dump(token.record(temperature, turn=number, **where, **({"n": n} if where else {})))
        if branch is not None:
            written.add(branch.id)
    for branch in tree.branches.values() if tree is not None else ():
        if branch.id in written:
            continue
        dump({**_header(branch), "context": branch.context, "bits_per_char": branch.bpc if branch.tokens else None})
        temperature = None if branch.settings is None else branch.settings.temperature
        for n, token in enumerate(branch.tokens, 1):
            dump(token.record(temperature, branch=branch.id, parent=branch.parent, n=n))
    return "\n".join(lines) + "\n"
