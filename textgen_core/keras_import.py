"""Import a character-level Keras LSTM (the *Deep Learning with Python* §8.1 model) as a textgen checkpoint.

Two file formats hold such a model, told apart by their first bytes, not their names:

- Keras 3's ``.keras``: a zip of ``config.json`` (the architecture), ``metadata.json`` (``keras_version``) and
  ``model.weights.h5``, where a layer's weights live under ``layers/<name>/vars/<i>`` (an LSTM's under
  ``layers/<name>/cell/vars/<i>``). `<name>` is not the layer's own name but its class name in snake case, made
  unique in the order of the model's layers (``lstm``, ``lstm_1``, …), as Keras's `saving_lib` addresses them.
- The legacy HDF5 ``.h5`` (Keras 2, and Keras 3's legacy writer): the architecture as JSON in the root attribute
  ``model_config``, the version in ``keras_version``, and the weights in group ``model_weights/<layer name>``,
  whose attribute ``weight_names`` lists the datasets (``lstm_1/kernel:0``, ``…/lstm_cell/recurrent_kernel``).

What is read: a chain of a one-hot input (or an `Embedding`), one or more `LSTM` layers of one size (each passing
its sequence to the next, the last returning only its final output), and a `Dense` head, softmax or followed by
``Activation('softmax')``; `Dropout` layers (identity at inference) may sit in between. Anything else is refused
with one line naming it. A Keras LSTM's weights are ``kernel`` (in, 4u), ``recurrent_kernel`` (u, 4u) and one
``bias`` (4u), gates in the order i, f, c, o: PyTorch's i, f, g, o, so they map onto textgen's layout by a
transpose, with the bias as ``bias_ih`` and ``bias_hh`` zero. A one-hot input becomes an identity embedding.

``recurrent_activation='hard_sigmoid'`` (Keras's default before 2.3, so the book's model has it) names two
functions: Keras 1-2 computed ``clip(0.2x + 0.5, 0, 1)``, Keras 3 computes ``relu6(x + 3) / 6``. The file's
``keras_version`` decides which (see `config.RECURRENT_ACTIVATIONS`).

A Keras model stores no vocabulary: the book builds it as the sorted distinct characters of the lower-cased corpus
(`loader.keras_vocabulary`). Reading needs h5py only, never Keras.

This module only reads Keras files; `textgen_core.loader` decides when a file a user names is one.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint
from .checkpoint import HDF5_MAGIC, ZIP_MAGIC, Checkpoint, CheckpointMeta
from .config import MIXED, ModelConfig
from .errors import TextgenError
from .recurrent import CELLS
from .vocab import Vocabulary

#: How a user gets h5py, which textgen needs only to read Keras files.
INSTALL_HINT = "pip install 'textgen[keras]'"
#: Layers that are the identity at inference and hold no weights.
_IDENTITY = {"Dropout"}
#: What a refusal tells the user textgen can import.
_SUPPORTED = "textgen imports one-hot or Embedding → LSTM, GRU or SimpleRNN layers → Dense softmax"
#: The recurrent layers read, by Keras class: textgen's cell type and the Keras → PyTorch gate permutation of
#: their weights' column blocks (a Keras LSTM's i, f, c, o is PyTorch's i, f, g, o; a GRU's z, r, h is r, z, n).
#: A GRU's cell type also depends on `reset_after` (`_gru_cell`).
_RECURRENT = {"LSTM": ("lstm", (0, 1, 2, 3)), "GRU": ("gru", (1, 0, 2)), "SimpleRNN": ("rnn", (0,))}


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the chain: its class, its config and its weights by role (kernel, recurrent_kernel, bias,
    embeddings)."""

    kind: str
    config: dict
    weights: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.kind))


@dataclass(frozen=True)
class KerasModel:
    """What a Keras file holds, before any vocabulary: the layers after the input, in order."""

    path: Path
    format: str  # "keras" (the zip) or "h5" (legacy HDF5)
    keras_version: str | None
    layers: list[KerasLayer]
    #: The input's one-hot width (None for an Embedding input) and length (None when the model accepts any).
    input_dim: int | None
    window: int | None


def _h5py():
    try:
        import h5py
    except ImportError:
        raise TextgenError(f"reading Keras files needs h5py, which is not installed; {INSTALL_HINT}") from None
    return h5py


def _text(value: object) -> str:
    """An HDF5 string attribute: h5py gives bytes for fixed-length strings (Keras 2) and str for variable ones."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _major(version: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", version or "")
    return int(m.group(1)) if m else None


def _snake(name: str) -> str:
    """Keras's `naming.to_snake_case`: how `saving_lib` names a layer's group in ``model.weights.h5``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _activation(value: object) -> str:
    """An activation as a config holds it: a name, or (serialised) a dict whose config is the name."""
    if isinstance(value, dict):
        value = value.get("config", value.get("class_name"))
    return value if isinstance(value, str) else repr(value)


class _Refused(Exception):
    """A model this importer does not support (a message for the user, naming what)."""


def _config_layers(model_config: object) -> tuple[list[dict], bool]:
    """The layer dicts of a Sequential or functional config (InputLayers included) and whether it is functional.
    Keras 2.0's Sequential config is the bare list of layers; later ones nest it under ``layers``."""
    if not isinstance(model_config, dict):
        raise ValueError("model config is not an object")
    kind, cfg = model_config.get("class_name"), model_config.get("config")
    if kind not in ("Sequential", "Functional", "Model"):
        raise _Refused(f"a {kind} model is not supported; {_SUPPORTED}")
    layers = cfg if isinstance(cfg, list) else cfg.get("layers") if isinstance(cfg, dict) else None
    if not isinstance(layers, list) or not all(isinstance(x, dict) and "class_name" in x for x in layers):
        raise ValueError("model config has no list of layers")
    return layers, kind != "Sequential"


def _inbound(layer: dict) -> set[str]:
    """Names of the layers feeding `layer` in a functional config: Keras 2 writes ``[[[name, node, index, kw]]]``,
    Keras 3 ``[{"args": [{"config": {"keras_history": [name, node, index]}}]}]``."""
    names: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("keras_history"), list) and x["keras_history"]:
                names.add(str(x["keras_history"][0]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                names.add(x[0])
            else:
                for v in x:
                    walk(v)

    walk(layer.get("inbound_nodes", []))
    return names


def _chain(model_config: object) -> tuple[list[dict], list[int | None] | None]:
    """The layers after the input, checked to form a single chain, and the input's batch shape if known."""
    layers, functional = _config_layers(model_config)
    if functional:
        for prev, layer in itertools.pairwise(layers):
            if _inbound(layer) != {prev.get("name", prev["config"].get("name"))}:
                raise _Refused(
                    f"layer {layer['config'].get('name')!r} is not fed by the layer before it only; "
                    f"{_SUPPORTED} in a single chain"
                )
    shape = None
    if layers and layers[0]["class_name"] == "InputLayer":
        cfg = layers.pop(0)["config"]
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    elif layers:  # Keras 2's Sequential records the input on its first layer
        shape = layers[0]["config"].get("batch_input_shape")
    if any(x["class_name"] == "InputLayer" for x in layers):
        raise _Refused(f"a model with several inputs is not supported; {_SUPPORTED}")
    return layers, shape


def _keras_weights(h5: object, layers: list[dict]) -> list[dict[str, np.ndarray]]:
    """Weights of a ``.keras`` file's layers, addressed as `saving_lib` does (see the module doc)."""
    roles = {
        **{kind: ("cell/vars", ["kernel", "recurrent_kernel", "bias"]) for kind in _RECURRENT},
        "Dense": ("vars", ["kernel", "bias"]),
        "Embedding": ("vars", ["embeddings"]),
    }
    used: dict[str, int] = {}
    out = []
    for layer in layers:
        kind = layer["class_name"]
        base = _snake(kind)
        used[base] = used.get(base, -1) + 1
        name = base if used[base] == 0 else f"{base}_{used[base]}"
        weights: dict[str, np.ndarray] = {}
        if kind in roles:
            sub, names = roles[kind]
            group = h5[f"layers/{name}/{sub}"]
            for i, role in enumerate(names):
                if str(i) in group:
                    weights[role] = np.asarray(group[str(i)], dtype=np.float32)
        out.append(weights)
    return out


def _h5_weights(h5: object, layers: list[dict]) -> list[dict[str, np.ndarray]]:
    """Weights of a legacy ``.h5`` file's layers, by the last part of each name in ``weight_names``."""
    root = h5.get("model_weights", h5)
    out = []
    for layer in layers:
        name = layer["config"].get("name", layer.get("name"))
        weights: dict[str, np.ndarray] = {}
        if name in root:
            group = root[name]
            for wname in map(_text, group.attrs.get("weight_names", [])):
                role = wname.rsplit("/", 1)[-1].split(":")[0]
                weights[role] = np.asarray(group[wname], dtype=np.float32)
        out.append(weights)
    return out


def read_keras(path: str | os.PathLike) -> KerasModel:
    """Read a ``.keras`` or legacy ``.h5`` model file (architecture and weights, checked to be importable).

    Every problem is a one-line `TextgenError`: a missing file, one that is not a Keras model, a model this importer
    does not support (naming the layer or setting), h5py not installed."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise TextgenError(f"{path}: no such file; give a Keras model saved as .keras or .h5") from None
    except OSError as e:
        raise TextgenError(f"{path}: cannot read ({e.strerror or e})") from None
    if head.startswith(ZIP_MAGIC):
        fmt = "keras"
    elif head == HDF5_MAGIC:
        fmt = "h5"
    else:
        raise TextgenError(f"{path}: not a Keras model file (neither a .keras zip nor an HDF5 .h5)")
    h5py = _h5py()
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                if not {"config.json", "model.weights.h5"} <= names:
                    raise ValueError("the zip lacks config.json or model.weights.h5")
                model_config = json.loads(z.read("config.json"))
                meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
                version = meta.get("keras_version") if isinstance(meta, dict) else None
                layers, shape = _chain(model_config)
                with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                    weights = _keras_weights(h5, layers)
        else:
            with h5py.File(path, "r") as h5:
                if "model_config" not in h5.attrs:
                    raise _Refused("holds weights but no model (saved with save_weights?); save the whole model")
                model_config = json.loads(_text(h5.attrs["model_config"]))
                version = h5.attrs.get("keras_version")
                if version is None and "model_weights" in h5:
                    version = h5["model_weights"].attrs.get("keras_version")
                version = None if version is None else _text(version)
                layers, shape = _chain(model_config)
                weights = _h5_weights(h5, layers)
    except _Refused as e:
        raise TextgenError(f"{path}: {e}") from None
    except TextgenError:
        raise
    except Exception as e:  # zipfile, h5py and json raise many types for damaged files
        raise _unreadable(path, e) from None
    window = shape[1] if isinstance(shape, list) and len(shape) >= 2 and isinstance(shape[1], int) else None
    input_dim = shape[2] if isinstance(shape, list) and len(shape) == 3 and isinstance(shape[2], int) else None
    try:
        model = KerasModel(
            path=path,
            format=fmt,
            keras_version=version,
            layers=[KerasLayer(x["class_name"], x["config"], w) for x, w in zip(layers, weights, strict=True)],
            input_dim=input_dim,
            window=window,
        )
        _check(model)
    except _Refused as e:
        raise TextgenError(f"{path}: {e}") from None
    except _DAMAGE as e:
        raise _unreadable(path, e) from None
    return model


#: What a damaged config or weight (a value of the wrong type or shape) raises where a sound file has nothing to refuse.
_DAMAGE = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def _unreadable(path: Path, e: Exception) -> TextgenError:
    reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    if isinstance(e, KeyError):  # str() of a KeyError is the bare key
        reason = f"no {reason[:80]} where one is needed"
    return TextgenError(f"{path}: not a readable Keras model ({reason})")


def _recurrent_activation(name: str, version: str | None) -> str:
    """textgen's name for a gated layer's `recurrent_activation` in a file written by Keras `version`."""
    if name == "sigmoid":
        return "sigmoid"
    if name == "hard_sigmoid":
        major = _major(version)
        # A file without a version predates Keras 2.0's writer recording one: the old formula.
        return "hard_sigmoid" if major is not None and major >= 3 else "hard_sigmoid_keras2"
    raise _Refused(f"recurrent_activation {name!r} is not supported (sigmoid or hard_sigmoid are)")


def _gru_cell(layer: KerasLayer) -> str:
    """A Keras GRU's cell type: the reset gate applied after the recurrent product (``reset_after=True``: two bias
    rows, Keras 3's and tf.keras's default) or before it (``False``: one bias row, standalone Keras 2's default and
    what a config without the setting means). The bias's shape must agree with the setting."""
    after = bool(layer.config.get("reset_after", False))
    bias = layer.weights.get("bias")
    if bias is not None and (bias.ndim == 2) != after:
        raise _Refused(f"GRU {layer.name!r}'s bias does not fit reset_after={after}")
    return "gru" if after else "gru_reset_before"


def _cell(layer: KerasLayer) -> str:
    """textgen's cell type for a recurrent Keras layer."""
    return _gru_cell(layer) if layer.kind == "GRU" else _RECURRENT[layer.kind][0]


def _check(model: KerasModel) -> None:
    """Refuse (with `_Refused`) what the conversion cannot represent exactly."""
    layers = [x for x in model.layers if x.kind not in _IDENTITY]
    for x in layers:
        if x.kind not in ("Embedding", "Dense", "Activation", *_RECURRENT):
            raise _Refused(f"layer {x.name!r} is a {x.kind}, which is not supported; {_SUPPORTED}")
    kinds = [x.kind for x in layers]
    start = 1 if kinds[:1] == ["Embedding"] else 0
    n = next((i for i, k in enumerate(kinds[start:]) if k not in _RECURRENT), len(kinds) - start)
    head = kinds[start + n :]
    if n == 0 or head not in (["Dense"], ["Dense", "Activation"]):
        raise _Refused(f"layers {' → '.join(kinds)} are not supported; {_SUPPORTED}")
    if start and layers[0].config.get("mask_zero"):
        raise _Refused(f"Embedding {layers[0].name!r} masks zeros (mask_zero), which is not supported")
    if not start and model.input_dim is None:
        raise _Refused("the model's input shape is unknown, so its one-hot width is too; give it an Input")
    recurrent = layers[start : start + n]
    for k, x in enumerate(recurrent):
        c = x.config
        last = k == n - 1
        if _activation(c.get("activation", "tanh")) != "tanh":
            raise _Refused(f"{x.kind} {x.name!r} has activation {_activation(c.get('activation'))!r}; only tanh is")
        if c.get("go_backwards") or c.get("return_state"):
            raise _Refused(f"{x.kind} {x.name!r} runs backwards or returns its state, which is not supported")
        if bool(c.get("return_sequences")) == last:
            what = "returns its whole sequence to the head" if last else "does not return its sequence"
            raise _Refused(
                f"{x.kind} {x.name!r} {what}; textgen imports models that predict the next character from the last "
                "recurrent layer's final output"
            )
        for role in ("kernel", "recurrent_kernel") + (("bias",) if c.get("use_bias", True) else ()):
            if role not in x.weights:
                raise _Refused(f"{x.kind} {x.name!r} has no {role} weights in the file (a Keras 1 file?)")
        if x.kind == "GRU":
            _gru_cell(x)
    units = [int(x.config.get("units", 0)) for x in recurrent]
    if len(set(units)) != 1:
        raise _Refused(f"stacked recurrent layers of different sizes ({', '.join(map(str, units))}) are not supported")
    gated = [x for x in recurrent if x.kind != "SimpleRNN"]
    acts = {
        _recurrent_activation(_activation(x.config.get("recurrent_activation")), model.keras_version) for x in gated
    }
    if len(acts) > 1:
        raise _Refused("recurrent layers with different recurrent activations are not supported")
    dense = layers[start + n]
    dense_act = _activation(dense.config.get("activation", "linear"))
    after = layers[start + n + 1 :]
    softmax = dense_act == "softmax" and not after
    softmax = softmax or (
        dense_act == "linear" and bool(after) and _activation(after[0].config.get("activation")) == "softmax"
    )
    if not softmax:
        raise _Refused(f"the head {dense.name!r} is not a softmax (Dense activation {dense_act!r}); {_SUPPORTED}")
    if "kernel" not in dense.weights or (dense.config.get("use_bias", True) and "bias" not in dense.weights):
        raise _Refused(f"Dense {dense.name!r} has no weights in the file")
    if start and "embeddings" not in layers[0].weights:
        raise _Refused(f"Embedding {layers[0].name!r} has no weights in the file")


def _layer_tensors(x: KerasLayer, k: int, inp: int, units: int) -> dict[str, np.ndarray]:
    """Layer k's weights in PyTorch's layout for its cell (`recurrent`): the Keras kernels transposed with their
    gate blocks permuted, the biases likewise (a GRU with ``reset_after`` keeps its two; any other layer's single
    bias is ``bias_ih``, with ``bias_hh`` zero: only their sum counts there)."""
    cell = CELLS[_cell(x)]
    order = _RECURRENT[x.kind][1]
    g = cell.gates * units
    w = x.weights
    bias = w.get("bias", np.zeros((2, g) if cell.name == "gru" else g, np.float32))
    bias_rows = bias if bias.ndim == 2 else np.stack([bias, np.zeros(g, np.float32)])
    if w["kernel"].shape != (inp, g) or w["recurrent_kernel"].shape != (units, g) or bias_rows.shape != (2, g):
        raise _Refused(f"{x.kind} {x.name!r}'s weights do not fit its input of {inp} and {units} units")

    def torch_order(a: np.ndarray) -> np.ndarray:
        """Keras's (…, G·u), gate blocks last, → PyTorch's (G·u, …) in its gate order."""
        blocks = np.split(a, len(order), axis=-1)
        return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=-1).T)

    stems = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    arrays = (w["kernel"], w["recurrent_kernel"], bias_rows[0], bias_rows[1])
    return {f"{cell.prefix}.{stem}_l{k}": torch_order(a) for stem, a in zip(stems, arrays, strict=True)}


def _tensors(model: KerasModel) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """textgen's config and weights (PyTorch's layout) for a checked model; shapes are verified here."""
    layers = [x for x in model.layers if x.kind not in _IDENTITY]
    embedding = layers[0].weights["embeddings"] if layers[0].kind == "Embedding" else None
    recurrent = [x for x in layers if x.kind in _RECURRENT]
    dense = next(x for x in layers if x.kind == "Dense")
    kernel = dense.weights["kernel"]
    if embedding is None:
        embedding = np.eye(model.input_dim or 0, dtype=np.float32)
    for what, arr in ((f"Dense {dense.name!r}'s kernel weights", kernel), ("the Embedding's weights", embedding)):
        if arr.ndim != 2:  # a damaged file: a matrix stored with another number of dimensions
            raise _Refused(f"{what} are stored with {arr.ndim} dimensions {arr.shape}; a matrix has 2")
    units, vocab_size = kernel.shape
    v_in, e = embedding.shape
    if v_in != vocab_size:
        what = "one-hot width" if layers[0].kind != "Embedding" else "Embedding input_dim"
        raise _Refused(f"the input's {what} is {v_in} but the head predicts {vocab_size} characters; they must match")
    tensors: dict[str, np.ndarray] = {"embedding.weight": embedding}
    for k, x in enumerate(recurrent):
        tensors.update(_layer_tensors(x, k, e if k == 0 else units, units))
    tensors["head.weight"] = np.ascontiguousarray(kernel.T)
    tensors["head.bias"] = dense.weights.get("bias", np.zeros(vocab_size, np.float32))
    if tensors["head.bias"].shape != (vocab_size,):
        raise _Refused(f"Dense {dense.name!r}'s bias does not fit its {vocab_size} outputs")
    for name, arr in tensors.items():
        if not np.isfinite(arr).all():
            raise _Refused(f"weight {name} contains NaN or Inf; the model diverged")
    gated = [x for x in recurrent if x.kind != "SimpleRNN"]
    activation = (
        _recurrent_activation(_activation(gated[0].config.get("recurrent_activation")), model.keras_version)
        if gated
        else "sigmoid"
    )
    cells = [_cell(x) for x in recurrent]
    config = ModelConfig(
        vocab_size=int(vocab_size),
        cell=cells[0] if len(set(cells)) == 1 else MIXED.join(cells),
        embed_dim=int(e),
        hidden_size=int(units),
        num_layers=len(recurrent),
        dropout=0.0,
        embed_dropout=0.0,
        weight_drop=0.0,
        recurrent_activation=activation,
    )
    return config, tensors


def to_checkpoint(model: KerasModel, vocab: Vocabulary, *, lowercase: bool = False) -> Checkpoint:
    """An in-memory textgen checkpoint of `model` with `vocab` (which must have as many characters as the head
    predicts); its metadata records the origin and the window."""
    try:
        config, tensors = _tensors(model)
    except _Refused as e:
        raise TextgenError(f"{model.path}: {e}") from None
    except _DAMAGE as e:
        raise _unreadable(model.path, e) from None
    if len(vocab) != config.vocab_size:
        raise TextgenError(
            f"{model.path}: the model predicts {config.vocab_size} characters but the vocabulary has {len(vocab)}; "
            "build it from the corpus the model was trained on (lower-cased if it was)"
        )
    meta = CheckpointMeta(
        config=config,
        vocab=vocab,
        lowercase=lowercase,
        window=model.window,
        origin={"file": model.path.name, "format": model.format, "keras_version": model.keras_version},
    )
    return Checkpoint(path=model.path, tensors=tensors, meta=meta)


def load_keras(path: str | os.PathLike, vocab: Vocabulary, *, lowercase: bool = False) -> Checkpoint:
    """Open a Keras model file as a checkpoint, without writing anything (for ``-c model.keras`` and ``/load``)."""
    return to_checkpoint(read_keras(path), vocab, lowercase=lowercase)


def import_keras(
    path: str | os.PathLike, out: str | os.PathLike, vocab: Vocabulary, *, lowercase: bool = False
) -> Checkpoint:
    """Convert a Keras model file into a textgen checkpoint at `out` (written atomically); returns it as loaded
    from `out`, so what the caller sees is what the file holds."""
    return save_imported(load_keras(path, vocab, lowercase=lowercase), out)


def save_imported(ckpt: Checkpoint, out: str | os.PathLike) -> Checkpoint:
    """Write an imported checkpoint at `out` (atomically to a file) and return it as loaded back from the file;
    written into a stream (a pipe, standard output), it cannot be read back and is returned as written."""
    written = checkpoint.save(out, ckpt.tensors, ckpt.meta)
    return checkpoint.load(written.path) if written.is_file else ckpt
