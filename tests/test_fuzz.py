"""The fuzz record (`bench/fuzz.py`, figures in docs/errors.md): a short seeded slice of it runs here against the
installed command, and what the full runs found is pinned, one test each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Terminal, assert_one_line_error, make_text, run_cli

#: Keras's torch backend converts tensors with numpy 1's `__array__` signature; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_a_seeded_slice_of_the_fuzz_finds_nothing(tmp_path: Path) -> None:
    """Mutated checkpoints through several commands, one REPL session of fuzzed lines in a pseudo-terminal and a
    random corpus trained on, scored and fed as a seed: no traceback, crash, hang, stray exit status or write
    outside the work folder."""
    work = tmp_path / "fuzz"
    args = ["--seed", "11", "--checkpoints", "8", "--keras", "0", "--repl-lines", "15", "--lines-per-session", "15"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), *args, "--corpora", "1", "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    record = json.loads((work / "record.json").read_text())
    assert proc.returncode == 0, proc.stdout + json.dumps(record, indent=1)[:4000]
    tried = {kind: record["kinds"][kind]["tried"] for kind in ("checkpoints", "repl lines", "corpora")}
    assert tried == {"checkpoints": 8, "repl lines": 15, "corpora": 1}
    for kind, found in record["kinds"].items():
        for failure in ("tracebacks", "crash signals", "hangs", "other exit statuses", "errors not one line"):
            assert found[failure] == 0, (kind, failure, found["examples"])
    assert record["writes outside the work folder (count)"] == 0 and record["/dev and /etc entries changed"] == []


# ---- what the fuzz found ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "needle"),
    [
        ("utf-16", "not valid utf-16 (UTF-16 stream does not start with BOM)"),  # the codec's own error
        ("base64", "'base64' is not a text encoding"),  # a bytes-to-bytes codec: bytes.decode("") passes it
    ],
)
def test_an_encoding_that_cannot_read_the_file_is_one_line(repl_checkpoint: Path, tmp_path: Path, encoding, needle):
    text = tmp_path / "text.txt"
    text.write_text(make_text(300), encoding="utf-8")
    assert_one_line_error(run_cli("eval", "-c", str(repl_checkpoint), str(text), "--encoding", encoding), needle)
    out = tmp_path / "run"
    assert_one_line_error(run_cli("train", str(text), "--out", str(out), "--encoding", encoding), needle)
    assert not out.exists()


def test_ctrl_c_in_a_history_search_gives_the_prompt_back(terminal: Terminal) -> None:
    """Ctrl-R then Ctrl-C left the focus in the search field: every key after it went there and Enter did
    nothing, for ever. Now Ctrl-C leaves the search, and Enter in a search runs the line found, as a shell does."""
    term = terminal
    term.command("/temp 0.7", "temperature  0.7")
    term.wait_for("T 0.7 │")  # the next prompt's toolbar: keys go to the line editor now
    term.pause(0.3)
    term.child.send("\x12\x03")
    term.wait_for("Ctrl-C clears the line")
    term.command("/temp 0.4", "temperature  0.4")
    term.wait_for("T 0.4 │")
    term.pause(0.3)
    term.child.send("\x12temp 0.7")
    term.pause(0.5)
    term.command("", "temperature  0.7")  # the line found, run
    term.wait_for("T 0.7 │")


def _small_keras_model(tmp_path: Path, recurrent: str, saved_as: str) -> tuple[Path, Path]:
    """A corpus and a small Keras model over its characters (`recurrent` layer, then a softmax Dense), saved as
    `saved_as` in `tmp_path`: what a damaged file is made from."""
    import os

    pytest.importorskip("h5py")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n" * 3, encoding="utf-8")
    v = len(set(corpus.read_text()))
    layer = getattr(keras.layers, recurrent)(4, name=recurrent.lower().replace("simplernn", "simple_rnn"))
    model = keras.Sequential([keras.Input((5, v)), layer, keras.layers.Dense(v, activation="softmax", name="dense")])
    path = tmp_path / saved_as
    model.save(path)
    return corpus, path


@pytest.mark.parametrize(
    ("layer", "weight", "needles"),
    [
        ("dense", "kernel", ("kernel weights are stored with 3 dimensions", "a matrix has 2")),
        # A recurrent bias cut short: numpy's error while it was converted, as a traceback.
        ("simple_rnn", "bias", ("not a readable Keras model", "same shape")),
    ],
    ids=["dense-kernel", "recurrent-bias"],
)
def test_a_keras_weight_of_the_wrong_shape_is_one_line(tmp_path: Path, layer: str, weight: str, needles) -> None:
    """A weight stored in the wrong shape (a damaged .h5) ended in a traceback while it was unpacked."""
    corpus, path = _small_keras_model(tmp_path, "SimpleRNN", "damaged.h5")
    import h5py

    with h5py.File(path, "r+") as f:
        found: list[str] = []
        f.visititems(
            lambda name, obj: (
                found.append(name) if name.startswith(f"model_weights/{layer}/") and name.endswith(weight) else None
            )
        )
        data = f[found[0]][()]
        del f[found[0]]
        f[found[0]] = data[:, :, None] if weight == "kernel" else data[:3]
    for command in (["info", "-c", str(path)], ["import", str(path), "--out", str(tmp_path / "out.safetensors")]):
        assert_one_line_error(run_cli(*command, "--vocab-from", str(corpus)), *needles)
    assert not (tmp_path / "out.safetensors").exists()


def test_a_keras_layer_without_its_config_is_one_line(tmp_path: Path) -> None:
    """A `.keras` whose config.json lists a layer without its "config" ended in a KeyError traceback while the
    layers were gathered (found by the fuzz, seed 7)."""
    import json
    import zipfile

    corpus, saved = _small_keras_model(tmp_path, "GRU", "sound.keras")
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                del config["config"]["layers"][-1]["config"]  # the Dense layer's
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    for command in (["info", "-c", str(damaged)], ["import", str(damaged), "--out", str(tmp_path / "out.safetensors")]):
        assert_one_line_error(run_cli(*command, "--vocab-from", str(corpus)), "not a readable Keras model", "'config'")
    assert not (tmp_path / "out.safetensors").exists()
