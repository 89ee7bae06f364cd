"""Checkpoints: safetensors weights plus JSON metadata. No pickle anywhere, no torch needed to read one.

A checkpoint is a single ``.safetensors`` file. Its tensors are the model weights under the names given by
`ModelConfig.tensor_shapes`; its safetensors metadata holds one JSON document under the key ``textgen`` with the
config, the vocabulary and the training record. Loading validates everything (header, metadata, shapes, finite
values, vocabulary) before anything is used, and every problem becomes a one-line `TextgenError`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import ModelConfig
from .errors import TextgenError
from .paths import kind_of, read_error, user_path
from .sources import Source
from .vocab import Vocabulary, is_forbidden_control

if TYPE_CHECKING:
    from .atomic import Output

FORMAT = "textgen-checkpoint"
FORMAT_VERSION = 4
#: Version 2 added a recurrent activation other than the sigmoid (imported Keras models), version 3 cells other than
#: the LSTM, version 4 tokens other than characters (`tokens`). A checkpoint is written with the lowest version that
#: can hold it, so an LSTM with sigmoid gates is still version 1 and older textgens keep reading it, while one they
#: would run wrongly (or fail to find the weights of) carries a version they refuse with "upgrade textgen".
_PLAIN_VERSION = 1


def format_version(config: ModelConfig, vocab: Vocabulary) -> int:
    """The lowest format version that holds `config` and `vocab` (see `FORMAT_VERSION`)."""
    if not vocab.is_chars:
        return 4
    if config.cell != "lstm":
        return 3
    return 2 if config.recurrent_activation != "sigmoid" else _PLAIN_VERSION


WEIGHTS_NAME = "model.safetensors"
RESUME_NAME = "resume.safetensors"
#: A real header is a few KB; anything beyond this is corrupt (and must not cause a huge allocation).
MAX_HEADER_BYTES = 1 << 20
BUNDLED_NAME = "nietzsche.safetensors"
_DTYPES = {"F32": 4, "F16": 2, "F64": 8}
#: Names that mean a Keras model wherever a checkpoint is expected (`loader`; a missing one is reported as one).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: First bytes of a zip (a Keras 3 ``.keras``, or a PyTorch checkpoint) and of HDF5 (a legacy Keras ``.h5``).
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: What to do about a damaged checkpoint (the end of most load errors).
FIX = "re-download it, or retrain"
#: What to do about a file that is no checkpoint at all (text, a zip, a pickle).
NOT_A_CHECKPOINT = "give a checkpoint textgen wrote (.safetensors) or a run folder"
#: Bytes read to tell what a file that is not a checkpoint is.
_SNIFF_BYTES = 64


class NewerFormat(ValueError):
    """Metadata of a format version this textgen does not know: the fix is an upgrade, not a new file."""


def _sniff(head: bytes, size: int) -> str | None:
    """What a file that is not a checkpoint at all is, from its first bytes; None where it is one, maybe damaged.

    A safetensors file starts with its header's length (8 bytes), then the header's ``{``. A file whose first
    bytes are neither (a header length that fits the file, or that ``{``) is something else altogether, and
    saying what (a PyTorch zip, a pickle, a text file) helps more than a header length read out of its bytes."""
    if head[8:9] == b"{" or (len(head) >= 8 and 0 < struct.unpack("<Q", head[:8])[0] <= size - 8):
        return None
    if not head:
        return "an empty file"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive (a PyTorch .pt/.bin checkpoint?)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (never loaded: unpickling can run code)"
    if head.startswith(HDF5_MAGIC):
        return "an HDF5 file (a Keras .h5 model? give it to -c or /load with its vocabulary)"
    text = head.decode("utf-8", errors="ignore")  # a character cut by the end of the sniffed bytes is dropped
    if len(text) * 2 >= len(head) and all(c.isprintable() or c in "\n\r\t" for c in text):
        return "a text file"
    return "binary data of another kind"


def _parse_json(data: bytes | str) -> object:
    """`json.loads` whose every failure is a ValueError: deeply nested input raises RecursionError otherwise."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a number of more than 4300 digits
        raise ValueError("not valid JSON") from None


@dataclass
class CheckpointMeta:
    """Everything about a model except its weights."""

    config: ModelConfig
    vocab: Vocabulary
    lowercase: bool = False
    corpus: list[Source] = field(default_factory=list)
    step: int = 0
    train_bpc: float | None = None
    val_bpc: float | None = None
    command: str = ""
    extra: dict = field(default_factory=dict)
    #: The input length of a model trained on fixed windows (an imported Keras model), else None: such a model
    #: was never run on more context than this, from a zero state (see `generate`'s `window` options).
    window: int | None = None
    #: Where the weights came from when textgen did not train them, e.g. ``{"file": "model.keras", "format":
    #: "keras", "keras_version": "3.5.0"}``; empty for textgen's own models.
    origin: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": format_version(self.config, self.vocab),
                "config": self.config.to_dict(),
                "vocab": self.vocab.tokens,
                **({"tokens": self.vocab.meta()} if not self.vocab.is_chars else {}),
                "lowercase": self.lowercase,
                "corpus": [s.to_dict() for s in self.corpus],
                "step": self.step,
                "train_bpc": self.train_bpc,
                "val_bpc": self.val_bpc,
                "command": self.command,
                "extra": self.extra,
                "window": self.window,
                "origin": self.origin,
            },
            ensure_ascii=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        """Parse and validate; raises ValueError with a short reason."""
        try:
            d = _parse_json(text)
        except ValueError as e:
            raise ValueError(f"metadata is {e}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("metadata is not textgen's")
        if d.get("version") not in range(_PLAIN_VERSION, FORMAT_VERSION + 1) or isinstance(d.get("version"), bool):
            raise NewerFormat(f"format version {d.get('version')!r} is not supported by this textgen")
        config = ModelConfig.from_dict(d.get("config"))
        chars = d.get("vocab")
        if "tokens" in d:
            vocab = _token_vocabulary(chars, d["tokens"])
        else:
            if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
                raise ValueError("vocabulary is not a list of single characters")
            if any("\ud800" <= c <= "\udfff" for c in chars):  # JSON can spell them; no terminal can print them
                raise ValueError("vocabulary contains lone surrogates, which are not characters")
            if len(set(chars)) != len(chars):
                raise ValueError("vocabulary has repeated characters")
            bad = [c for c in chars if is_forbidden_control(c)]
            if bad:
                raise ValueError(f"vocabulary contains terminal control characters ({', '.join(map(repr, bad[:4]))})")
            vocab = Vocabulary(chars)
        if len(vocab) != config.vocab_size:
            unit = "characters" if vocab.is_chars else "tokens"
            raise ValueError(f"vocabulary has {len(vocab)} {unit} but config says {config.vocab_size}")
        lowercase = d.get("lowercase", False)
        step = d.get("step", 0)
        if not isinstance(lowercase, bool) or type(step) is not int or step < 0:
            raise ValueError("metadata fields have the wrong type")
        for key in ("train_bpc", "val_bpc"):
            value = d.get(key)
            if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
                raise ValueError(f"{key} is not a finite number")
        window, origin = d.get("window"), d.get("origin", {})
        if window is not None and (type(window) is not int or window < 1):
            raise ValueError("window is not a positive integer")
        if not isinstance(origin, dict):
            raise ValueError("metadata fields have the wrong type")
        corpus = d.get("corpus", [])
        extra = d.get("extra", {})
        if not isinstance(corpus, list) or not isinstance(extra, dict) or not isinstance(d.get("command", ""), str):
            raise ValueError("metadata fields have the wrong type")
        try:
            sources = [Source.from_dict(s) for s in corpus]
        except (KeyError, TypeError, ValueError):
            raise ValueError("corpus record is malformed") from None
        return cls(
            config=config,
            vocab=vocab,
            lowercase=lowercase,
            corpus=sources,
            step=step,
            train_bpc=d.get("train_bpc"),
            val_bpc=d.get("val_bpc"),
            command=d.get("command", ""),
            extra=extra,
            window=window,
            origin=origin,
        )


def _token_vocabulary(tokens: object, meta: object) -> Vocabulary:
    """A word or word-piece vocabulary from a checkpoint's metadata; the token kinds' module (and SentencePiece)
    is imported only for such a checkpoint, so opening a character model costs neither."""
    from .tokens import from_meta

    return from_meta(tokens, meta)  # type: ignore[arg-type]


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint: numpy weights (float32, or float16 as a compact checkpoint stores them:
    widen them where they are used) and metadata."""

    path: Path
    tensors: dict[str, np.ndarray]
    meta: CheckpointMeta

    @property
    def config(self) -> ModelConfig:
        return self.meta.config

    @property
    def vocab(self) -> Vocabulary:
        return self.meta.vocab

    @property
    def name(self) -> str:
        """Label for banners: the file's stem, or the run folder's name for ``RUN/model.safetensors``."""
        return self.path.parent.name if self.path.name == WEIGHTS_NAME else self.path.stem


def bundled_path() -> Path:
    """Path of the default model shipped inside the package."""
    # Beside this module, as the package is installed (a wheel or an editable install both keep it a folder);
    # importlib.resources would cost a sample's start-up its tempfile and zip machinery.
    return Path(__file__).resolve().parent / "models" / BUNDLED_NAME


def resolve_path(arg: str | os.PathLike | None) -> Path:
    """The checkpoint file a user named: a .safetensors file, a run folder (its `model.safetensors`), or None for
    the bundled model. A missing one is refused in one line that says what to give (a Keras name: a Keras model)."""
    if arg is None:
        path = bundled_path()
        if not path.is_file():
            raise TextgenError("the bundled model is missing from this install; pass -c CHECKPOINT")
        return path
    path = user_path(arg)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if path.suffix.lower() in KERAS_SUFFIXES:
            raise TextgenError(f"{path}: no such file; give a Keras model saved as .keras or .h5") from None
        raise TextgenError(f"{path}: no such checkpoint; give a .safetensors file or a training run folder") from None
    except OSError as e:
        raise read_error(path, e) from None
    if stat.S_ISDIR(mode):
        inner = path / WEIGHTS_NAME
        if not inner.is_file():
            raise TextgenError(f"{path}: folder has no {WEIGHTS_NAME}; give a checkpoint file or a training run folder")
        return inner
    if not stat.S_ISREG(mode):  # a pipe would block the read, a device never end it: neither holds a checkpoint
        raise TextgenError(f"{path}: is {kind_of(mode)}, not a file; {NOT_A_CHECKPOINT}")
    return path


#: numpy dtype → safetensors dtype name, for the tensors textgen writes.
_ST_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "uint8": "U8"}


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> Output:
    """Write `tensors` as a safetensors file (atomically where it is a file: `atomic.target`), streaming each
    array out; returns where it went.

    `safetensors.numpy.save` builds the whole file in memory twice before it can be written, which for a
    resume file (weights, Adam's two moments, the moving average) is a transient of several times the model's
    size at every checkpoint; here the header is built and then each array is written from its own memory.
    Readers are safetensors' own (`safe_open`, `safetensors.numpy`)."""
    arrays = {k: np.require(v, v.dtype.newbyteorder("<"), "C") for k, v in tensors.items()}  # copies only if needed
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, arr in arrays.items():
        header[name] = {
            "dtype": _ST_NAMES[arr.dtype.name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    head = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned, as safetensors' own writer does it

    def write(f) -> None:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for arr in arrays.values():
            f.write(memoryview(arr.reshape(-1)).cast("B"))

    from .atomic import atomic_write  # writing only: opening a model does not load the writer

    return atomic_write(path, write, binary=True)


def save(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: CheckpointMeta) -> Output:
    """Write weights and metadata (atomically to a file, `atomic.target`), and return where they went; refuses
    non-finite weights so a good checkpoint is never replaced by a diverged one."""
    expected = meta.config.tensor_shapes()
    if set(tensors) != set(expected):
        raise ValueError(f"tensor names {sorted(tensors)} do not match the config")
    for name, arr in tensors.items():
        if tuple(arr.shape) != expected[name]:
            raise ValueError(f"{name} has shape {arr.shape}, config says {expected[name]}")
        if not np.isfinite(arr).all():
            raise TextgenError(f"refusing to save {path}: weight {name} contains NaN or Inf (training diverged)")
    return write_safetensors(path, tensors, {"textgen": meta.to_json()})


def _check_header(path: Path, size: int, f) -> dict:
    """Validate the safetensors framing ourselves first, so corrupt files give precise, cheap errors; returns the
    header (tensor name → dtype, shape, offsets; ``__metadata__``) so that nothing is read before it is checked."""
    head = f.read(_SNIFF_BYTES)
    foreign = _sniff(head, size)
    if foreign is not None:
        raise TextgenError(f"{path}: not a textgen checkpoint: it is {foreign}; {NOT_A_CHECKPOINT}")
    what = f"{path}: damaged checkpoint"
    (n,) = struct.unpack("<Q", head[:8])
    if n > size - 8:
        raise TextgenError(f"{what} (header claims {n} bytes, file has {size}: it is truncated); {FIX}")
    if n > MAX_HEADER_BYTES:
        raise TextgenError(f"{what} (header of {n} bytes is implausibly large); {FIX}")
    f.seek(8)
    try:
        header = _parse_json(f.read(n))
    except ValueError as e:
        raise TextgenError(f"{what} (header is {e}); {FIX}") from None
    if not isinstance(header, dict):
        raise TextgenError(f"{what} (header is not an object); {FIX}")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            # Python ints, not numpy's: a product of huge dimensions must not wrap around to a small number.
            ok = all(type(x) is int and x >= 0 for x in (*shape, start, end))
            ok = ok and dtype in _DTYPES and start <= end <= data_len and end - start == prod(shape) * _DTYPES[dtype]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise TextgenError(f"{what} (tensor {name!r} is malformed or runs past the end of the file); {FIX}")
    return header


def _check_shapes(path: Path, header: dict, config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The weights the config needs, checked against the header before any is read (so a forged config cannot
    make us build a huge shape table, and a mismatch costs no allocation)."""
    stored = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    # Each layer has four tensors: checked first so that `num_layers: 10**9` fails at once, not after building a
    # table of four billion names.
    if config.num_layers > len(stored):
        raise TextgenError(
            f"{path}: config says {config.num_layers} layers but the file holds only {len(stored)} weights; "
            f"the checkpoint is damaged; {FIX}"
        )
    expected = config.tensor_shapes()
    missing = set(expected) - set(stored)
    if missing:
        raise TextgenError(f"{path}: checkpoint lacks weights {', '.join(sorted(missing)[:3])}; {FIX}")
    for name, shape in expected.items():
        if stored[name] != shape:
            raise TextgenError(
                f"{path}: weight {name} has shape {stored[name]} but the config and vocabulary need {shape}; {FIX}"
            )
    return expected


def _read_header(arg: str | os.PathLike | None) -> tuple[Path, CheckpointMeta, dict[str, tuple[int, ...]]]:
    """The checkpoint's path, validated metadata and the weights it must hold, read from the header alone: framing, then
    metadata, then the weights' shapes against the config. No tensor byte is read."""
    path = resolve_path(arg)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = _check_header(path, size, f)
    except OSError as e:
        raise read_error(path, e) from None
    stored_meta = header.get("__metadata__")
    raw_meta = stored_meta.get("textgen") if isinstance(stored_meta, dict) else None
    if not isinstance(raw_meta, str):
        raise TextgenError(f"{path}: has no textgen metadata: textgen train did not write it; {FIX}")
    try:
        meta = CheckpointMeta.from_json(raw_meta)
    except NewerFormat as e:
        raise TextgenError(f"{path}: {e}; upgrade textgen to read it") from None
    except (ValueError, TypeError) as e:
        raise TextgenError(f"{path}: bad checkpoint metadata ({e}); {FIX}") from None
    return path, meta, _check_shapes(path, header, meta.config)


def load(arg: str | os.PathLike | None) -> Checkpoint:
    """Load and validate a checkpoint (file, run folder, or None for the bundled model). Never runs code.

    Order matters: everything the header says is checked first (`_read_header`); only then are the expected
    weights (and nothing else) read, and checked to be finite."""
    from safetensors import safe_open

    path, meta, expected = _read_header(arg)
    try:
        with safe_open(str(path), framework="numpy") as sf:
            arrays = {k: sf.get_tensor(k) for k in expected}
    except Exception as e:  # safetensors raises several types for corrupt files
        raise TextgenError(f"{path}: damaged checkpoint ({str(e).splitlines()[0][:120]}); {FIX}") from None
    tensors: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        # float16 stays float16: whoever uses the weights widens them in the pass that rearranges them anyway
        # (`recurrent`, `load_numpy`), so opening a model reads each weight once. float64 is narrowed here, and
        # checked after (a finite value too large for float32 becomes Inf).
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if not _finite(arr):
            raise TextgenError(f"{path}: weight {name} contains NaN or Inf; this checkpoint is unusable; {FIX}")
        tensors[name] = arr
    return Checkpoint(path=path, tensors=tensors, meta=meta)


def _finite(a: np.ndarray) -> bool:
    """Whether every value of `a` is finite. A float16 is read by its bits (all five exponent bits set is an
    infinity or a NaN): numpy's float16 arithmetic converts value by value, forty times slower, and this check runs
    on every weight each time a model is opened."""
    if a.dtype == np.float16:
        return a.size == 0 or int(np.bitwise_and(a.view(np.uint16), 0x7FFF).max()) < 0x7C00
    return bool(np.isfinite(a).all())


def read_meta(arg: str | os.PathLike | None) -> CheckpointMeta:
    """Metadata only, from the header (for --resume checks and `info`): validated as `load` validates it, but no
    weight is read, so a large model's metadata costs a few KB of reading, not the whole file."""
    return _read_header(arg)[1]
