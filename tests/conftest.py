"""Shared fixtures. Every test makes its own small text: the suite must pass without ../shared."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parent.parent

WORDS_TEXT = (
    "the will to power is the will to life and the life of the spirit is a long question of truth "
    "what is noble asks the free spirit and answers with a laugh a dance a song of the morning"
)


def as_keras2_file(h5: Path, out: Path) -> Path:
    """A copy of the legacy `.h5` model `h5` as a Keras 2.0-era file: the same bytes but for the version its writer
    recorded (which decides what `hard_sigmoid` computes)."""
    import shutil

    import h5py

    shutil.copy(h5, out)
    with h5py.File(out, "r+") as f:
        f.attrs["keras_version"] = "2.0.8"
        f["model_weights"].attrs["keras_version"] = "2.0.8"
    return out


#: A tiny training run's settings, for tests that build a `TrainConfig` (the command line's are `TINY_TRAIN`).
TINY_CONFIG = dict(
    embed_dim=16,
    hidden_size=32,
    num_layers=2,
    batch_size=4,
    seq_len=32,
    eval_every=10,
    sample_len=0,
    device="cpu",
    precision="fp32",
    warmup_steps=5,
)


def assert_resumes_exactly(corpus: Path, tmp_path: Path, steps: int = 16, **fields: object):
    """Train `steps` steps in one go, and again stopped after about half and resumed: the two models must end with
    the same weights (a resume is exact). `fields` are the run's settings besides `TINY_CONFIG`. Returns the two
    trainers (uninterrupted, resumed)."""
    import torch

    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer

    def config(out: Path) -> TrainConfig:
        return TrainConfig(corpus=[str(corpus)], out=str(out), steps=steps, **fields, **TINY_CONFIG)

    full = Trainer(config(tmp_path / "full"))
    full.run()
    part = Trainer(config(tmp_path / "part"))
    half = steps // 2 + 1
    assert part.run(should_stop=lambda tr: tr.step == half) == "interrupted"
    resumed = Trainer(config(tmp_path / "part"), resume=True)
    assert resumed.step == half and resumed.run() == "done"
    for key, value in full.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key
    return full, resumed


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


@pytest.fixture(autouse=True, scope="session")
def user_cache_folder(tmp_path_factory: pytest.TempPathFactory):
    """The user's cache folder for the whole session, in a temporary folder (for this process and every CLI it
    starts): no test reads a decision the machine's own cache holds (`--precision auto`'s) or writes into it."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield Path(os.environ["XDG_CACHE_HOME"])
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


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


def write_random_checkpoint(
    path: Path,
    *,
    hidden: int = 32,
    layers: int = 1,
    embed: int = 16,
    text: str | None = None,
    seed: int = 0,
    cell: str = "lstm",
) -> Path:
    """A valid checkpoint with random weights over the characters of `text` (default: `make_text`'s).

    No training needed, so REPL tests and benchmarks get a model of any size in milliseconds. The head is scaled
    up so that the model's distributions are peaked and varied, like a trained model's (colours then differ).
    """
    import numpy as np

    from textgen_core.checkpoint import CheckpointMeta, save
    from textgen_core.config import ModelConfig
    from textgen_core.vocab import Vocabulary

    vocab = Vocabulary.from_text(text if text is not None else make_text(5_000))
    config = ModelConfig(
        vocab_size=len(vocab), cell=cell, embed_dim=embed, hidden_size=hidden, num_layers=layers, dropout=0.0
    )
    rng = np.random.default_rng(seed)
    tensors = {
        name: (rng.standard_normal(shape) * (4.0 if name.startswith("head") else 0.5)).astype(np.float32)
        for name, shape in config.tensor_shapes().items()
    }
    save(path, tensors, CheckpointMeta(config=config, vocab=vocab, step=100, val_bpc=2.5))
    return path


@pytest.fixture(scope="session")
def repl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny (1×32) random-weights checkpoint for REPL tests."""
    return write_random_checkpoint(tmp_path_factory.mktemp("repl") / "tiny.safetensors")


@pytest.fixture
def gen_checkpoint(tmp_path: Path) -> Path:
    """A tiny 2×32 random-weights checkpoint for generation tests (two layers exercise the fused upper layer)."""
    return write_random_checkpoint(tmp_path / "gen.safetensors", layers=2)


@pytest.fixture
def repl_session(repl_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory of REPL sessions on the tiny model, printing into a StringIO: `make(color=False, keys=None,
    length=40, **settings) -> (session, output)`; `output.getvalue()` is everything printed. The environment
    is made a colour terminal's, whatever the one running the tests is (rich reads TERM and NO_COLOR)."""
    import io

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)

    from repl.commands import REGISTRY
    from repl.render import make_console
    from repl.session import Session
    from textgen_core.checkpoint import load
    from textgen_core.sampling import SamplingSettings

    ckpt = load(repl_checkpoint)

    def make(*, color: bool = False, keys=None, length: int = 40, seed: int | None = None, **settings):
        out = io.StringIO()
        console = make_console(out, color=color)
        session = Session(
            ckpt,
            console,
            settings=SamplingSettings(**settings),
            length=length,
            seed=seed,
            keys=keys,
            dispatch=REGISTRY.dispatch,
        )
        return session, out

    return make


#: Terminal control sequences (CSI, OSC, charset and keypad switches), to read what a person would see.
ANSI = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


class Terminal:
    """A pexpect child read as a person would: waits for text with the escape codes taken out, each wait
    starting where the previous one matched. It answers cursor position requests as a terminal does (so
    prompt_toolkit draws its bottom toolbar). Linear in the output, so benchmarks can stream through it."""

    def __init__(self, child: pexpect.spawn):
        self.child = child
        child.delaybeforesend = None  # pexpect sleeps 50 ms before each send by default: it would skew timings
        self.raw = ""
        self.seen = ""
        self.pos = 0
        self._tail = ""  # an escape sequence cut by the end of a read

    def read(self, timeout: float = 0.05) -> None:
        try:
            data = self.child.read_nonblocking(1 << 20, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        self.raw += data
        for _ in range(data.count("\x1b[6n")):
            self.child.send("\x1b[1;1R")
        text = ANSI.sub("", self._tail + data)
        cut = text.rfind("\x1b")
        if cut >= 0 and len(text) - cut < 64:
            text, self._tail = text[:cut], text[cut:]
        else:
            self._tail = ""
        self.seen += text

    def pause(self, seconds: float) -> None:
        """Let `seconds` pass while reading, as a terminal does: prompt_toolkit waits for the answer to its cursor
        position request before it leaves raw mode, and a Ctrl-C sent meanwhile would be read as a key."""
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.read(min(left, 0.05))

    def wait_for(self, text: str, timeout: float = 10.0) -> float:
        """Read until `text` shows after the last match; returns the seconds it took."""
        start = time.perf_counter()
        while (found := self.seen.find(text, self.pos)) < 0:
            if time.perf_counter() - start > timeout:
                raise AssertionError(f"{text!r} did not show within {timeout} s; screen: {self.seen[-800:]!r}")
            self.read()
        self.pos = found + len(text)
        return time.perf_counter() - start

    def command(self, line: str, answer: str) -> str:
        """Type a line and wait for its answer; returns the raw output it produced."""
        mark = len(self.raw)
        self.child.send(line + "\r")
        self.wait_for(answer)
        return self.raw[mark:]


def split_checkpoint(good: Path) -> tuple[dict, bytes]:
    """A valid checkpoint's header (parsed) and its tensor data: the pieces tests forge damaged files from."""
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def frame_checkpoint(header: dict | bytes, body: bytes = b"") -> bytes:
    """A safetensors file of `header` (a dict, or raw bytes) and `body`."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


def with_metadata(good: Path, edit: Callable[[dict], object]) -> bytes:
    """The checkpoint `good` with its textgen metadata replaced by `edit(metadata)` (a dict, or raw text)."""
    header, body = split_checkpoint(good)
    new = edit(json.loads(header["__metadata__"]["textgen"]))
    header["__metadata__"]["textgen"] = new if isinstance(new, str) else json.dumps(new)
    return frame_checkpoint(header, body)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """What a user must see for any bad input: exit status 2 and exactly one line on stderr (holding every
    needle), never a traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def run_on_pty_stdout(args: list[str], env: dict[str, str], stdin: str, status: int = 0) -> bytes:
    """Run with stdout and stderr on a pseudo-terminal but stdin piped; return the raw bytes the terminal got
    (programs that check `isatty()` then behave as they do for a person)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    assert proc.stdin is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == status
    return b"".join(chunks)


def terminal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a colour terminal, whatever the one running the tests is, with history kept in
    `tmp_path` so that tests never touch the user's."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    return env


def spawn_repl(
    ckpt: Path, tmp_path: Path, *, length: int = 40, rows: int = 40, cols: int = 120, args: tuple[str, ...] = (), **kw
) -> pexpect.spawn:
    """The real `textgen repl -c CKPT --len LENGTH [ARGS]` in a pseudo-terminal of `rows` × `cols` (extra keywords
    go to pexpect.spawn)."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "repl.cli", "repl", "-c", str(ckpt), "--len", str(length), *args],
        env=terminal_env(tmp_path),
        cwd=str(ROOT),
        encoding="utf-8",
        dimensions=(rows, cols),
        **kw,
    )


@pytest.fixture
def terminal(repl_checkpoint: Path, tmp_path: Path):
    """The real `textgen repl` on the tiny model in a pseudo-terminal, its prompt up."""
    child = spawn_repl(repl_checkpoint, tmp_path, length=60)
    term = Terminal(child)
    term.wait_for("type /help")
    term.wait_for("model tiny")  # the bottom toolbar: the prompt is up
    yield term
    child.close(force=True)


def injected_pythonpath(folder: Path, code: str) -> str:
    """A PYTHONPATH under which every new interpreter first runs `code` (as its sitecustomize module): a fault
    injected into the real program, which then runs unchanged in a subprocess."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(code, encoding="utf-8")
    return os.pathsep.join([str(folder), str(ROOT)])


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for real (a few seconds, through the CLI): for properties that a random-weights model
    does not have, such as a memory that fades and predictions better than chance."""
    folder = tmp_path_factory.mktemp("trained")
    corpus = folder / "corpus.txt"
    corpus.write_text(make_text(60_000, seed=3), encoding="utf-8")
    run = folder / "run"
    settings = [*TINY_TRAIN, "--batch-size", "16", "--eval-every", "100", "--sample-len", "0"]  # later flags win
    proc = run_cli("train", str(corpus), "--out", str(run), "--steps", "200", *settings, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return run / "model.safetensors"
