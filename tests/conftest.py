"""Shared fixtures. Every test makes its own small text: the suite must pass without ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WORDS_TEXT = (
    "the will to power is the will to life and the life of the spirit is a long question of truth "
    "what is noble asks the free spirit and answers with a laugh a dance a song of the morning"
)


def make_text(n_chars: int, seed: int = 0) -> str:
    """Deterministic pseudo-English with lines and punctuation: learnable in a few dozen steps."""
    import random

    rng = random.Random(seed)
    words = WORDS_TEXT.split(" ")
    out: list[str] = []
    size = 0
    while size < n_chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        line = line.capitalize() + rng.choice([".", ",", "!", "?", ";"]) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:n_chars]


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(make_text(30_000), encoding="utf-8")
    return path


def run_cli(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 120):
    """Run `textgen ARGS` as a subprocess (the way users run it) and return the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "repl.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


#: Small, fast training settings shared by the tests that train.
TINY_TRAIN = [
    "--hidden-size",
    "32",
    "--embed-dim",
    "16",
    "--num-layers",
    "2",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--eval-every",
    "10",
    "--sample-len",
    "20",
    "--device",
    "cpu",
]
