"""The REPL's transcript: the runs of a session, and the two files /save writes from them.

Plain text is the session as a reader would want it back (each seed followed by its continuation, runs that
continued the previous one joined to it). JSONL keeps everything: a line per run with its seed, then one
object per generated character, the same record `textgen sample --jsonl` writes (`Token.record`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from textgen_core.generate import Token


@dataclass
class Turn:
    """One run: the seed typed ("" when empty Enter continued the previous run), what was generated, and the
    temperature each character was drawn at (it can change mid-run)."""

    seed: str
    tokens: list[Token] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)


def plain_text(transcript: list[Turn]) -> str:
    parts: list[str] = []
    for turn in transcript:
        if turn.seed and parts:
            parts.append("\n\n")
        parts.append(turn.seed)
        parts.append("".join(t.char for t in turn.tokens))
    return "".join(parts) + "\n"


def jsonl_text(transcript: list[Turn]) -> str:
    lines: list[str] = []
    for number, turn in enumerate(transcript, 1):
        lines.append(json.dumps({"turn": number, "seed": turn.seed}, ensure_ascii=False))
        for token, temperature in zip(turn.tokens, turn.temperatures, strict=True):
            lines.append(json.dumps(token.record(temperature, turn=number), ensure_ascii=False))
    return "\n".join(lines) + "\n"
