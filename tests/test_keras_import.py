"""Importing Keras character-level LSTMs: textgen must predict what Keras itself predicts.

The fixtures are made by real Keras (torch backend) once per module: tiny models with random weights large
enough that the gates saturate (so the hard sigmoid's clipping is exercised), saved as `.keras` and legacy `.h5`.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import as_keras2_file

pytest.importorskip("h5py")
os.environ["KERAS_BACKEND"] = "torch"  # keras reads it once, at its first import
keras = pytest.importorskip("keras")


from textgen_core import checkpoint  # noqa: E402
from textgen_core.errors import TextgenError  # noqa: E402
from textgen_core.generate import Generator, sample_many  # noqa: E402
from textgen_core.inference import NumpyLSTM  # noqa: E402
from textgen_core.keras_import import (  # noqa: E402
    INSTALL_HINT,
    import_keras,
    load_keras,
    read_keras,
)
from textgen_core.loader import keras_vocabulary  # noqa: E402
from textgen_core.sampling import SamplingSettings  # noqa: E402
from textgen_core.scoring import score  # noqa: E402
from textgen_core.vocab import Vocabulary  # noqa: E402

#: Keras's torch backend converts tensors with numpy 1's `__array__` signature; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TEXT = "The cat sat on the mat.\nA dog, a frog; and a log!\n" * 3
WINDOW = 10
TOL = 1e-5


def _randomise(model, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, scale, w.shape).astype(np.float32) for w in model.get_weights()])


def _onehot(windows: np.ndarray, v: int) -> np.ndarray:
    return np.eye(v, dtype=np.float32)[windows]


def _predict(model, windows: np.ndarray, v: int, embedded: bool = False) -> np.ndarray:
    x = windows if embedded else _onehot(windows, v)
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The Keras models and their files: name → (keras model, {format: path}, embedded input?)."""
    d = tmp_path_factory.mktemp("keras")
    vocab = Vocabulary.from_text(TEXT.lower())
    v = len(vocab)
    L = keras.layers
    models = {
        # The book's shape: one-hot windows → LSTM → Dense softmax.
        "sigmoid": keras.Sequential([keras.Input((WINDOW, v)), L.LSTM(16), L.Dense(v, activation="softmax")]),
        # Hard sigmoid, no LSTM bias, the softmax as its own layer, an input of any length.
        "hard": keras.Sequential(
            [
                keras.Input((None, v)),
                L.LSTM(16, recurrent_activation="hard_sigmoid", use_bias=False),
                L.Dense(v),
                L.Activation("softmax"),
            ]
        ),
    }
    ids = keras.Input((WINDOW,))
    x = L.Embedding(v, 8)(ids)
    x = L.LSTM(12, return_sequences=True)(x)
    x = L.Dropout(0.3)(x)
    x = L.LSTM(12)(x)
    models["stacked"] = keras.Model(ids, L.Dense(v, activation="softmax")(x))
    files = {}
    for i, (name, model) in enumerate(models.items()):
        _randomise(model, i, 0.8)
        files[name] = {"keras": d / f"{name}.keras", "h5": d / f"{name}.h5"}
        model.save(files[name]["keras"])
        model.save(files[name]["h5"])
    # A Keras 2.0-era file: the same bytes as a legacy .h5 but for the version its writer recorded.
    files["hard"]["keras2"] = as_keras2_file(files["hard"]["h5"], d / "keras2.h5")
    for kind, layer in (("backwards", L.GRU(8, go_backwards=True)), ("bidirectional", L.Bidirectional(L.LSTM(8)))):
        m = keras.Sequential([keras.Input((WINDOW, v)), layer, L.Dense(v, activation="softmax")])
        files[kind] = {"keras": d / f"{kind}.keras"}
        m.save(files[kind]["keras"])
    return {"vocab": vocab, "models": models, "files": files, "dir": d}


def _windows(vocab: Vocabulary, n: int = 24) -> np.ndarray:
    ids = vocab.encode(TEXT.lower()).ids
    starts = np.linspace(0, len(ids) - WINDOW - 1, n).astype(int)
    return ids[starts[:, None] + np.arange(WINDOW)]


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", ["sigmoid", "hard", "stacked"])
def test_next_char_probabilities_equal_keras_predict(made, name, fmt):
    vocab, model = made["vocab"], made["models"][name]
    ckpt = load_keras(made["files"][name][fmt], vocab, lowercase=True)
    windows = _windows(vocab)
    ours = _softmax(NumpyLSTM.from_checkpoint(ckpt).window_logits(windows).astype(np.float64))
    theirs = _predict(model, windows, len(vocab), embedded=name == "stacked")
    assert np.abs(ours - theirs).max() < TOL
    assert np.abs(theirs - 1 / len(vocab)).max() > 0.05  # the weights say something: not a near-uniform model


def test_hard_sigmoid_follows_the_files_keras_version(made):
    """Keras 3's hard sigmoid is relu6(x + 3) / 6; a file written by Keras 2.0 means clip(0.2x + 0.5, 0, 1)."""
    vocab, model = made["vocab"], made["models"]["hard"]
    kernel, recurrent, dense_w, dense_b = model.get_weights()
    windows = _windows(vocab)
    x = _onehot(windows, len(vocab)).astype(np.float64)
    u = recurrent.shape[0]

    def reference(slope: float) -> np.ndarray:
        hard = lambda z: np.clip(slope * z + 0.5, 0.0, 1.0)  # noqa: E731
        h = np.zeros((len(x), u))
        c = np.zeros((len(x), u))
        for t in range(x.shape[1]):
            z = x[:, t] @ kernel + h @ recurrent
            i, f, g, o = hard(z[:, :u]), hard(z[:, u : 2 * u]), np.tanh(z[:, 2 * u : 3 * u]), hard(z[:, 3 * u :])
            c = f * c + i * g
            h = o * np.tanh(c)
        return _softmax(h @ dense_w + dense_b)

    keras2, keras3 = reference(0.2), reference(1 / 6)
    assert np.abs(keras2 - keras3).max() > 1e-2  # the two formulas differ on these inputs
    old = load_keras(made["files"]["hard"]["keras2"], vocab)
    new = load_keras(made["files"]["hard"]["h5"], vocab)
    assert old.config.recurrent_activation == "hard_sigmoid_keras2"
    assert old.meta.origin["keras_version"] == "2.0.8"
    for ckpt, expected in ((old, keras2), (new, keras3)):
        probs = _softmax(NumpyLSTM.from_checkpoint(ckpt).window_logits(windows).astype(np.float64))
        assert np.abs(probs - expected).max() < TOL
    assert np.abs(keras3 - _predict(model, windows, len(vocab))).max() < TOL


@pytest.mark.parametrize("name", ["sigmoid", "stacked"])
def test_windowed_score_is_keras_prediction_from_the_previous_window(made, name):
    vocab, model = made["vocab"], made["models"][name]
    ckpt = load_keras(made["files"][name]["keras"], vocab, lowercase=True)
    text = TEXT[:70]
    result = score(NumpyLSTM.from_checkpoint(ckpt), vocab, text, lowercase=True, window=WINDOW)
    ids = vocab.encode(text.lower()).ids
    positions = np.arange(WINDOW, len(ids))
    theirs = _predict(model, ids[positions[:, None] + np.arange(-WINDOW, 0)], len(vocab), embedded=name == "stacked")
    assert np.abs(result.probs[positions] - theirs[np.arange(len(positions)), ids[positions]]).max() < TOL
    # The first positions see the start character and all before them, as the stateful pass does.
    stateful = score(NumpyLSTM.from_checkpoint(ckpt), vocab, text, lowercase=True)
    assert np.allclose(result.probs[:WINDOW], stateful.probs[:WINDOW], atol=1e-6)
    assert not np.allclose(result.probs[WINDOW:], stateful.probs[WINDOW:], atol=1e-3)


def test_windowed_sampling_predicts_each_character_from_the_last_window(made):
    vocab, model = made["vocab"], made["models"]["sigmoid"]
    ckpt = load_keras(made["files"]["sigmoid"]["h5"], vocab, lowercase=True)
    seed = TEXT[:15]
    gen = Generator.from_checkpoint(ckpt, seed=3, window=WINDOW)
    gen.prime(seed)
    tokens = list(gen.stream(20))
    ids = vocab.encode(seed.lower() + "".join(t.char for t in tokens)).ids
    at = np.arange(len(ids) - len(tokens), len(ids))
    theirs = _predict(model, ids[at[:, None] + np.arange(-WINDOW, 0)], len(vocab))
    assert np.abs(np.array([t.prob for t in tokens]) - theirs[np.arange(len(at)), ids[at]]).max() < TOL
    # Several settings at once: stream i equals a Generator whose RNG is the i-th child.
    settings = [SamplingSettings(temperature=0.5), SamplingSettings(temperature=1.2)]
    rng = np.random.default_rng(7)
    batched = list(sample_many(gen.model, vocab, seed, settings, 12, rng, lowercase=True, window=WINDOW))
    child = np.random.default_rng(7).spawn(2)[1]
    single = Generator.from_checkpoint(ckpt, settings=settings[1], window=WINDOW)
    single.rng = child
    single.prime(seed)
    assert [step[1].char for step in batched] == [t.char for t in single.stream(12)]


def test_import_writes_a_checkpoint_that_records_origin_and_window(made, tmp_path):
    vocab = made["vocab"]
    out = tmp_path / "book.safetensors"
    ckpt = import_keras(made["files"]["sigmoid"]["keras"], out, vocab, lowercase=True)
    loaded = checkpoint.load(out)
    assert loaded.meta.window == WINDOW and loaded.meta.lowercase
    assert loaded.meta.origin == {"file": "sigmoid.keras", "format": "keras", "keras_version": keras.__version__}
    assert loaded.config.recurrent_activation == "sigmoid"
    assert loaded.config.embed_dim == len(vocab)  # the one-hot input, as an identity embedding
    assert all(np.array_equal(ckpt.tensors[k], loaded.tensors[k]) for k in loaded.tensors)
    hard = import_keras(made["files"]["hard"]["h5"], tmp_path / "hard.safetensors", vocab)
    assert hard.meta.window is None  # Input((None, V)): any length
    assert hard.meta.origin["format"] == "h5" and hard.config.recurrent_activation == "hard_sigmoid"


def test_checkpoints_without_the_new_fields_still_load():
    ckpt = checkpoint.load(None)  # the bundled model predates them
    assert ckpt.config.recurrent_activation == "sigmoid"
    assert ckpt.meta.window is None and ckpt.meta.origin == {}


def test_vocabulary_from_a_corpus_is_the_books_rule_and_from_chars_keeps_their_order(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Hello, World\r\n")
    assert keras_vocabulary(corpus=corpus, lowercase=True).tokens == sorted(set("hello, world\n"))
    assert keras_vocabulary(corpus=corpus).tokens == sorted(set("Hello, World\n"))
    chars = tmp_path / "chars.txt"
    chars.write_text("zy\nx\n")  # the final newline ends the file's line; the first is a character
    assert keras_vocabulary(chars=chars).tokens == ["z", "y", "\n", "x"]


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(TextgenError) as e:
        fn(*args, **kwargs)
    message = str(e.value)
    assert "\n" not in message and message
    return message


def test_errors_are_one_line_each(made, tmp_path):
    vocab, files = made["vocab"], made["files"]
    assert "no such file" in _one_line_error(read_keras, tmp_path / "absent.keras")
    text = tmp_path / "notes.h5"
    text.write_text("just some text, not a model\n")
    assert "not a Keras model" in _one_line_error(read_keras, text)
    assert "backwards" in _one_line_error(read_keras, files["backwards"]["keras"])
    assert "Bidirectional" in _one_line_error(read_keras, files["bidirectional"]["keras"])
    assert "vocabulary" in _one_line_error(keras_vocabulary)
    small = Vocabulary(vocab.tokens[:-1])
    message = _one_line_error(load_keras, files["sigmoid"]["keras"], small)
    assert f"predicts {len(vocab)} characters" in message and f"has {len(small)}" in message
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(files["sigmoid"]["keras"].read_bytes()[:400])
    assert "not a readable Keras model" in _one_line_error(read_keras, damaged)


def test_missing_h5py_names_the_install_command(made, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    assert INSTALL_HINT in _one_line_error(read_keras, made["files"]["sigmoid"]["h5"])


def test_training_from_a_hard_sigmoid_model_is_refused(made, tmp_path):
    """Training's nn.LSTM has only the sigmoid: starting a run from such weights would silently change the model."""
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.finetune import adopt_start

    hard = load_keras(made["files"]["hard"]["h5"], made["vocab"])
    config = TrainConfig(corpus=["corpus.txt"], out=str(tmp_path / "run"))
    assert "sigmoid" in _one_line_error(adopt_start, config, hard, frozenset())
    book = load_keras(made["files"]["sigmoid"]["keras"], made["vocab"])
    assert adopt_start(config, book, frozenset()).embed_dim == len(made["vocab"])
