"""Keras GRU and SimpleRNN models, alone and stacked with an LSTM, as a user imports them: `textgen import` then
`eval --jsonl` must give, at every position, the probability Keras's own `predict` gives.

Each model is made by real Keras (torch backend) once per module with random weights large enough to saturate the
gates. Its file has a fixed window (the book's way), so the windowed prediction is compared with `predict` on each
window; for the stateful one, a twin with the same weights that accepts any length and returns every step's
prediction gives Keras's probability after each prefix (the start character first, as textgen starts).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import as_keras2_file, assert_one_line_error, run_cli

pytest.importorskip("h5py")
os.environ["KERAS_BACKEND"] = "torch"  # keras reads it once, at its first import
keras = pytest.importorskip("keras")


from textgen_core.generate import start_id  # noqa: E402
from textgen_core.inference import NumpyLSTM  # noqa: E402
from textgen_core.keras_import import load_keras  # noqa: E402
from textgen_core.vocab import Vocabulary  # noqa: E402

#: Keras's torch backend converts tensors with numpy 1's `__array__` signature; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TEXT = "The cat sat on the mat.\nA dog, a frog; and a log!\n" * 2
WINDOW = 8
TOL = 1e-5


def _layers(name: str, sequences: bool) -> list:
    """The recurrent layers of model `name`; `sequences`: the last one returns every step (the stateful twin)."""
    L = keras.layers
    specs = {
        "gru": [("GRU", {})],  # reset_after=True: Keras 3's default, two bias rows
        "gru_reset_before": [("GRU", {"reset_after": False})],
        "gru_hard": [("GRU", {"reset_after": False, "recurrent_activation": "hard_sigmoid"})],
        "rnn": [("SimpleRNN", {})],
        "mixed": [("GRU", {"return_sequences": True}), ("LSTM", {})],
    }[name]
    units = 12 if name == "mixed" else 16
    out = []
    for i, (kind, options) in enumerate(specs):
        last = i == len(specs) - 1
        options = {**options, "return_sequences": True} if last and sequences else options
        out.append(getattr(L, kind)(units, **options))
    return out


def _build(name: str, v: int, length: int | None, sequences: bool = False):
    L = keras.layers
    if name == "mixed":  # Embedding → GRU → LSTM, the functional API
        ids = keras.Input((length,))
        x = L.Embedding(v, 8)(ids)
        for layer in _layers(name, sequences):
            x = layer(x)
        return keras.Model(ids, L.Dense(v, activation="softmax")(x))
    return keras.Sequential([keras.Input((length, v)), *_layers(name, sequences), L.Dense(v, activation="softmax")])


NAMES = ["gru", "gru_reset_before", "gru_hard", "rnn", "mixed"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("keras_cells")
    corpus = d / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    vocab = Vocabulary.from_text(TEXT.lower())
    v = len(vocab)
    models, twins, files = {}, {}, {}
    for i, name in enumerate(NAMES):
        model = _build(name, v, WINDOW)
        rng = np.random.default_rng(i)
        model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
        twin = _build(name, v, None, sequences=True)
        twin.set_weights(model.get_weights())
        files[name] = {"keras": d / f"{name}.keras", "h5": d / f"{name}.h5"}
        model.save(files[name]["keras"])
        model.save(files[name]["h5"])
        models[name], twins[name] = model, twin
    # The same reset-before hard-sigmoid GRU as written by Keras 2.0: the older hard sigmoid, clip(0.2x + 0.5).
    files["gru_hard"]["keras2"] = as_keras2_file(files["gru_hard"]["h5"], d / "gru_hard_keras2.h5")
    L = keras.layers
    for bad, layer in (
        ("backwards", L.GRU(8, go_backwards=True)),
        ("relu_rnn", L.SimpleRNN(8, activation="relu")),
        ("bidirectional", L.Bidirectional(L.GRU(8))),
    ):
        m = keras.Sequential([keras.Input((WINDOW, v)), layer, L.Dense(v, activation="softmax")])
        files[bad] = {"keras": d / f"{bad}.keras"}
        m.save(files[bad]["keras"])
    return {"dir": d, "corpus": corpus, "vocab": vocab, "models": models, "twins": twins, "files": files}


def _inputs(name: str, ids: np.ndarray, v: int) -> np.ndarray:
    return ids.astype(np.float32) if name == "mixed" else np.eye(v, dtype=np.float32)[ids]


def _import_and_eval(made: dict, name: str, fmt: str, tmp_path, window: str) -> list[dict]:
    out = tmp_path / f"{name}-{fmt}.safetensors"
    corpus = str(made["corpus"])
    args = ["--vocab-from", corpus, "--lowercase", "--out", str(out)]
    proc = run_cli("import", str(made["files"][name][fmt]), *args)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", "-c", str(out), corpus, "--jsonl", "-", "--exact", "--window", window)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", NAMES)
def test_import_then_eval_jsonl_is_keras_predict_windowed_and_stateful(made, name, tmp_path):
    vocab, v = made["vocab"], len(made["vocab"])
    ids = vocab.encode(TEXT.lower()).ids
    # Windowed, the book's way: the character at p from the WINDOW before it.
    records = _import_and_eval(made, name, "keras", tmp_path, "on")
    assert [r["char"] for r in records] == list(TEXT.lower())
    at = np.arange(WINDOW, len(ids))
    predicted = made["models"][name].predict(_inputs(name, ids[at[:, None] + np.arange(-WINDOW, 0)], v), verbose=0)
    theirs = np.asarray(predicted, np.float64)[np.arange(len(at)), ids[at]]
    ours = np.array([records[p]["prob"] for p in at])
    assert np.abs(ours - theirs).max() < TOL
    assert np.abs(theirs - 1 / v).max() > 0.05  # the weights say something: not a near-uniform model
    # Statefully: every character from the start character and all before it.
    records = _import_and_eval(made, name, "h5", tmp_path, "off")
    seq = np.concatenate(
        [[start_id(NumpyLSTM.from_checkpoint(load_keras(made["files"][name]["h5"], vocab)), vocab)], ids]
    )
    steps = np.asarray(made["twins"][name].predict(_inputs(name, seq[None, :-1], v), verbose=0), np.float64)[0]
    theirs = steps[np.arange(len(ids)), ids]
    assert np.abs(np.array([r["prob"] for r in records]) - theirs).max() < TOL


def test_the_files_keras_version_decides_the_grus_hard_sigmoid(made):
    """A file from Keras 2.0 means clip(0.2x + 0.5, 0, 1); Keras 3 writes relu6(x + 3) / 6 (slope 1/6)."""
    vocab, model = made["vocab"], made["models"]["gru_hard"]
    kernel, recurrent, bias, dense_w, dense_b = model.get_weights()
    ids = vocab.encode(TEXT.lower()).ids
    windows = ids[np.arange(WINDOW, len(ids))[:, None] + np.arange(-WINDOW, 0)]
    x = np.eye(len(vocab))[windows]
    u = recurrent.shape[0]

    def reference(slope: float) -> np.ndarray:
        """Keras's reset-before GRU: z, r, h blocks; h' = z ⊙ h + (1 − z) ⊙ tanh(x W_h + (r ⊙ h) U_h + b_h)."""
        hard = lambda a: np.clip(slope * a + 0.5, 0.0, 1.0)  # noqa: E731
        h = np.zeros((len(x), u))
        for t in range(x.shape[1]):
            xw = x[:, t] @ kernel + bias
            z = hard(xw[:, :u] + h @ recurrent[:, :u])
            r = hard(xw[:, u : 2 * u] + h @ recurrent[:, u : 2 * u])
            candidate = np.tanh(xw[:, 2 * u :] + (r * h) @ recurrent[:, 2 * u :])
            h = z * h + (1 - z) * candidate
        logits = h @ dense_w + dense_b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    keras2, keras3 = reference(0.2), reference(1 / 6)
    assert np.abs(keras2 - keras3).max() > 1e-2  # the two formulas differ on these inputs
    assert np.abs(keras3 - np.asarray(model.predict(x.astype(np.float32), verbose=0))).max() < TOL
    for path, expected, name in (
        (made["files"]["gru_hard"]["keras2"], keras2, "hard_sigmoid_keras2"),
        (made["files"]["gru_hard"]["h5"], keras3, "hard_sigmoid"),
    ):
        ckpt = load_keras(path, vocab)
        assert ckpt.config.cell == "gru_reset_before" and ckpt.config.recurrent_activation == name
        logits = NumpyLSTM.from_checkpoint(ckpt).window_logits(windows).astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        assert np.abs(e / e.sum(axis=1, keepdims=True) - expected).max() < TOL


def test_imported_cells_are_recorded_and_shown(made, tmp_path):
    vocab = made["vocab"]
    cells = {name: load_keras(made["files"][name]["keras"], vocab).config.cell for name in NAMES}
    assert cells == {
        "gru": "gru",
        "gru_reset_before": "gru_reset_before",
        "gru_hard": "gru_reset_before",
        "rnn": "rnn",
        "mixed": "gru+lstm",
    }
    out = tmp_path / "mixed.safetensors"
    proc = run_cli(
        "import",
        str(made["files"]["mixed"]["keras"]),
        "--vocab-from",
        str(made["corpus"]),
        "--lowercase",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(run_cli("info", "-c", str(out), "--json").stdout)
    assert info["cell"] == "GRU+LSTM" and info["config"]["cell"] == "gru+lstm"
    assert "2×12 GRU+LSTM" in run_cli("info", "-c", str(out)).stdout


@pytest.mark.parametrize(
    ("bad", "needle"), [("backwards", "backwards"), ("relu_rnn", "relu"), ("bidirectional", "Bidirectional")]
)
def test_unsupported_recurrent_options_get_one_line(made, tmp_path, bad, needle):
    out = tmp_path / "out.safetensors"
    proc = run_cli("import", str(made["files"][bad]["keras"]), "--vocab-from", str(made["corpus"]), "--out", str(out))
    assert_one_line_error(proc, needle, "not supported" if bad == "bidirectional" else needle)
    assert not out.exists()


def test_a_keras_only_cell_cannot_be_fine_tuned(made, tmp_path):
    """torch has no reset-before GRU, so `--init` from one is refused before any training."""
    out = tmp_path / "before.safetensors"
    corpus = str(made["corpus"])
    imported = run_cli(
        "import",
        str(made["files"]["gru_reset_before"]["keras"]),
        "--vocab-from",
        corpus,
        "--lowercase",
        "--out",
        str(out),
    )
    assert imported.returncode == 0, imported.stderr
    proc = run_cli("train", corpus, "--out", str(tmp_path / "run"), "--init", str(out), "--steps", "1")
    assert_one_line_error(proc, "GRU (reset before)", "cannot")
