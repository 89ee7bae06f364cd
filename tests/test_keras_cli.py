"""Keras models as a user meets them: `textgen import`, a Keras file given where a checkpoint goes (`-c`, `/load`),
and `--window` / `/window`; the per-character output of `eval --jsonl` must be Keras's own prediction.

The fixture is made by real Keras (torch backend) once per module, as in test_keras_import: the book's shape at a
tiny size, with random weights large enough that the model says something.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Terminal, assert_one_line_error, injected_pythonpath, run_cli, terminal_env

pytest.importorskip("h5py")
os.environ["KERAS_BACKEND"] = "torch"  # keras reads it once, at its first import
keras = pytest.importorskip("keras")

import pexpect  # noqa: E402
from prompt_toolkit.input import create_pipe_input  # noqa: E402
from prompt_toolkit.output import DummyOutput  # noqa: E402

from repl.app import interactive  # noqa: E402
from repl.prompt import make_prompt  # noqa: E402
from textgen_core.keras_import import INSTALL_HINT  # noqa: E402
from textgen_core.loader import VocabSource  # noqa: E402
from textgen_core.vocab import Vocabulary  # noqa: E402

#: Keras's torch backend converts tensors with numpy 1's `__array__` signature; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TEXT = "The cat sat on the mat.\nA dog, a frog; and a log!\n" * 3
WINDOW = 10
TOL = 1e-5


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """The corpus, its (lower-cased) vocabulary, the Keras model and its files: .keras, .h5, and a GRU that runs
    backwards (refused)."""
    d = tmp_path_factory.mktemp("keras_cli")
    corpus = d / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    vocab = Vocabulary.from_text(TEXT.lower())
    v = len(vocab)
    L = keras.layers
    model = keras.Sequential([keras.Input((WINDOW, v)), L.LSTM(16), L.Dense(v, activation="softmax")])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(d / "book.keras")
    model.save(d / "book.h5")
    backwards = keras.Sequential([keras.Input((WINDOW, v)), L.GRU(8, go_backwards=True), L.Dense(v, "softmax")])
    backwards.save(d / "backwards.keras")
    return {"dir": d, "corpus": corpus, "vocab": vocab, "model": model}


def _keras_probs(book: dict, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Keras's probability of the character at each position, from the `WINDOW` characters before it."""
    windows = np.eye(len(book["vocab"]), dtype=np.float32)[ids[positions[:, None] + np.arange(-WINDOW, 0)]]
    predicted = np.asarray(book["model"].predict(windows, verbose=0), dtype=np.float64)
    return predicted[np.arange(len(positions)), ids[positions]]


def _jsonl(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_import_then_info_and_eval_jsonl_give_keras_probabilities(book, tmp_path):
    out = tmp_path / "book.safetensors"
    corpus = str(book["corpus"])
    proc = run_cli("import", str(book["dir"] / "book.keras"), "--vocab-from", corpus, "--lowercase", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "imported from book.keras" in proc.stdout and f"window {WINDOW}" in proc.stdout

    info = json.loads(run_cli("info", "-c", str(out), "--json").stdout)
    assert info["origin"] == {"file": "book.keras", "format": "keras", "keras_version": keras.__version__}
    assert info["window"] == WINDOW and info["lowercase"]
    table = run_cli("info", "-c", str(out)).stdout
    assert f"from book.keras (Keras {keras.__version__}, .keras)" in table and f"window  {WINDOW} characters" in table

    records = _jsonl(run_cli("eval", "-c", str(out), corpus, "--jsonl", "-"))
    ids = book["vocab"].encode(TEXT.lower()).ids
    assert [r["index"] for r in records] == list(range(len(ids)))
    assert "".join(r["char"] for r in records) == TEXT.lower()  # lower-cased, as the model was trained
    ours = np.array([r["prob"] for r in records])
    positions = np.arange(WINDOW, len(ids))
    assert np.abs(ours[positions] - _keras_probs(book, ids, positions)).max() < TOL
    assert np.allclose([r["bits"] for r in records], -np.log2(ours))

    # --window off: the same model statefully; the first WINDOW positions see the same context either way.
    stateful = np.array(
        [r["prob"] for r in _jsonl(run_cli("eval", "-c", str(out), corpus, "--jsonl", "-", "--window", "off"))]
    )
    assert np.allclose(stateful[:WINDOW], ours[:WINDOW], atol=1e-6)
    assert not np.allclose(stateful[WINDOW:], ours[WINDOW:], atol=1e-3)


def test_a_keras_file_opens_directly_where_a_checkpoint_goes(book, tmp_path):
    corpus = str(book["corpus"])
    out = tmp_path / "book.safetensors"
    assert (
        run_cli(
            "import", str(book["dir"] / "book.h5"), "--vocab-from", corpus, "--lowercase", "--out", str(out)
        ).returncode
        == 0
    )
    imported = json.loads(run_cli("eval", "-c", str(out), corpus, "--json").stdout)
    vocab = ["--vocab-from", corpus, "--lowercase"]
    direct = json.loads(run_cli("eval", "-c", str(book["dir"] / "book.keras"), corpus, "--json", *vocab).stdout)
    assert direct["bpc"] == pytest.approx(imported["bpc"], abs=1e-9) and direct["window"] == WINDOW
    chars = tmp_path / "chars.txt"
    chars.write_text("".join(book["vocab"].tokens), encoding="utf-8")
    args = ["-c", str(book["dir"] / "book.h5"), "--chars", str(chars), "--lowercase"]
    sample = run_cli("sample", *args, "--prompt", "The cat ", "--len", "30", "--seed", "1")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("The cat ") and len(sample.stdout) == len("The cat ") + 30 + 1
    assert run_cli("sample", *args, "--prompt", "The cat ", "--len", "30", "--seed", "1").stdout == sample.stdout


def test_import_refuses_with_one_line_each(book, tmp_path):
    d, corpus = book["dir"], str(book["corpus"])
    vocab = ["--vocab-from", corpus, "--lowercase"]
    out = str(tmp_path / "out.safetensors")
    assert_one_line_error(run_cli("import", str(d / "absent.keras"), *vocab, "--out", out), "no such file")
    notes = tmp_path / "notes.h5"
    notes.write_text("just some text\n")
    assert_one_line_error(run_cli("import", str(notes), *vocab, "--out", out), "not a Keras model")
    assert_one_line_error(run_cli("import", str(d / "backwards.keras"), *vocab, "--out", out), "GRU", "backwards")
    assert_one_line_error(run_cli("import", str(d / "book.keras"), "--out", out), "no vocabulary", "--vocab-from")
    wrong = len(Vocabulary.from_text(TEXT))  # not lower-cased: capitals make it larger
    assert_one_line_error(
        run_cli("import", str(d / "book.keras"), "--vocab-from", corpus, "--out", out),
        f"predicts {len(book['vocab'])} characters",
        f"has {wrong}",
    )
    assert not Path(out).exists()  # nothing half-written by any of them
    no_h5py = injected_pythonpath(tmp_path / "inject", "import sys\nsys.modules['h5py'] = None\n")
    proc = run_cli("import", str(d / "book.keras"), *vocab, "--out", out, env={"PYTHONPATH": no_h5py})
    assert_one_line_error(proc, INSTALL_HINT)


def test_import_never_replaces_a_file_unless_forced(book, tmp_path):
    d, vocab = book["dir"], ["--vocab-from", str(book["corpus"]), "--lowercase"]
    out = tmp_path / "precious.safetensors"
    out.write_bytes(b"someone's work")
    assert_one_line_error(run_cli("import", str(d / "book.keras"), *vocab, "--out", str(out)), "--force")
    assert out.read_bytes() == b"someone's work"
    assert run_cli("import", str(d / "book.keras"), *vocab, "--out", str(out), "--force").returncode == 0
    assert json.loads(run_cli("info", "-c", str(out), "--json").stdout)["window"] == WINDOW
    keras_copy = tmp_path / "copy.keras"
    keras_copy.write_bytes((d / "book.keras").read_bytes())
    proc = run_cli("import", str(keras_copy), *vocab, "--out", str(keras_copy), "--force")
    assert_one_line_error(proc, "is the Keras model itself")
    assert keras_copy.read_bytes() == (d / "book.keras").read_bytes()


def test_window_flag_and_keras_files_on_every_command_refuse_in_one_line(book, repl_checkpoint):
    keras_file = str(book["dir"] / "book.keras")
    for command in (["sample"], ["eval", str(book["corpus"])], ["info"], ["repl"]):
        assert_one_line_error(run_cli(*command, "-c", keras_file, input=""), "no vocabulary", "--vocab-from")
    # A model trained without windows has no window to turn on.
    proc = run_cli("sample", "-c", str(repl_checkpoint), "--window", "on", "--len", "5")
    assert_one_line_error(proc, "records no window")
    assert_one_line_error(run_cli("sample", "--window", "maybe"), "window must be on or off")


def test_load_a_keras_file_in_the_repl_through_pipe_input(book, repl_session, tmp_path):
    d = book["dir"]
    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=5)
        old = session.loaded
        prompt = make_prompt(session, None, input=inp, output=DummyOutput())
        inp.send_text(f"/load {d / 'book.keras'}\r/len 7\r\x04")
        assert interactive(session, prompt) == 0
    assert "/load: " in out.getvalue() and "no vocabulary" in out.getvalue() and "--vocab-from" in out.getvalue()
    assert session.loaded is old and session.length == 7  # the old model stays; the session goes on
    assert "window" not in session.toolbar()  # a model without a window shows none

    with create_pipe_input() as inp:
        session, out = repl_session(keys=inp, length=5)
        session.vocab = VocabSource(corpus=book["corpus"], lowercase=True)
        prompt = make_prompt(session, None, input=inp, output=DummyOutput())
        inp.send_text(f"/load {d / 'book.keras'}\r/window\r/window off\r/load {d / 'backwards.keras'}\r\x04")
        assert interactive(session, prompt) == 0
    text = out.getvalue()
    assert "imported from book.keras" in text and f"window  on: each character from the last {WINDOW}" in text
    assert "/load: " in text and "GRU" in text  # refused; the Keras model stays
    assert session.loaded.checkpoint.meta.origin["file"] == "book.keras"
    assert session.generator.window is None and "window off" in session.toolbar()
    session.set_window(True)
    assert session.generator.window == WINDOW and f"window {WINDOW}" in session.toolbar()


def test_repl_on_a_keras_file_in_a_real_terminal(book, tmp_path):
    env = terminal_env(tmp_path)
    args = ["-m", "repl.cli", "repl", "-c", str(book["dir"] / "book.keras"), "--vocab-from", str(book["corpus"])]
    child = pexpect.spawn(
        sys.executable, [*args, "--lowercase", "--len", "20"], env=env, cwd=str(ROOT), encoding="utf-8",
        dimensions=(40, 120),
    )  # fmt: skip
    try:
        term = Terminal(child)
        term.wait_for("imported from book.keras", timeout=30)
        term.wait_for(f"window {WINDOW}")  # the toolbar: the prompt is up
        term.command("/window off", "window  off")
        term.wait_for("window off")
        term.command("/window sometimes", "window must be on or off")
        term.command("The cat", "chars/s")
        child.sendcontrol("d")
        child.expect(pexpect.EOF, timeout=20)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
