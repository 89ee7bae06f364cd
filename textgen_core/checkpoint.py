"""Checkpoints: safetensors weights plus JSON metadata. No pickle anywhere, no torch needed to read one.

A checkpoint is a single ``.safetensors`` file. Its tensors are the model weights under the names given by
`ModelConfig.tensor_shapes`; its safetensors metadata holds one JSON document under the key ``textgen`` with the
config, the vocabulary and the training record. Loading validates everything (header, metadata, shapes, finite
values, vocabulary) before anything is used, and every problem becomes a one-line `TextgenError`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes
from .config import ModelConfig
from .corpus import Source
from .errors import TextgenError
from .vocab import Vocabulary, is_forbidden_control

FORMAT = "textgen-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
RESUME_NAME = "resume.safetensors"
#: A real header is a few KB; anything beyond this is corrupt (and must not cause a huge allocation).
MAX_HEADER_BYTES = 1 << 20
BUNDLED_NAME = "nietzsche.safetensors"
_DTYPES = {"F32": 4, "F16": 2, "F64": 8}


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

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "vocab": self.vocab.chars,
                "lowercase": self.lowercase,
                "corpus": [s.to_dict() for s in self.corpus],
                "step": self.step,
                "train_bpc": self.train_bpc,
                "val_bpc": self.val_bpc,
                "command": self.command,
                "extra": self.extra,
            },
            ensure_ascii=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        """Parse and validate; raises ValueError with a short reason."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("metadata is not valid JSON") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("metadata is not textgen's")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {d.get('version')!r} is not supported by this textgen")
        config = ModelConfig.from_dict(d.get("config"))
        chars = d.get("vocab")
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("vocabulary is not a list of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary has repeated characters")
        bad = [c for c in chars if is_forbidden_control(c)]
        if bad:
            raise ValueError(f"vocabulary contains terminal control characters ({', '.join(map(repr, bad[:4]))})")
        if len(chars) != config.vocab_size:
            raise ValueError(f"vocabulary has {len(chars)} characters but config says {config.vocab_size}")
        lowercase = d.get("lowercase", False)
        step = d.get("step", 0)
        if not isinstance(lowercase, bool) or not isinstance(step, int) or step < 0:
            raise ValueError("metadata fields have the wrong type")
        for key in ("train_bpc", "val_bpc"):
            if d.get(key) is not None and not isinstance(d[key], (int, float)):
                raise ValueError(f"{key} is not a number")
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
            vocab=Vocabulary(chars),
            lowercase=lowercase,
            corpus=sources,
            step=step,
            train_bpc=d.get("train_bpc"),
            val_bpc=d.get("val_bpc"),
            command=d.get("command", ""),
            extra=extra,
        )


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint: float32 numpy weights and metadata."""

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
    return Path(str(resources.files("textgen_core") / "models" / BUNDLED_NAME))


def resolve_path(arg: str | os.PathLike | None) -> Path:
    """`-c` accepts a .safetensors file or a run folder; no argument means the bundled model."""
    if arg is None:
        path = bundled_path()
        if not path.is_file():
            raise TextgenError("the bundled model is missing from this install; pass -c CHECKPOINT")
        return path
    try:
        path = Path(arg).expanduser()
        is_dir, exists = path.is_dir(), path.exists()
    except (OSError, RuntimeError) as e:  # name too long, unknown ~user, …
        raise TextgenError(f"{str(arg)[:80]!r}: not a usable checkpoint path ({e}); check the name") from None
    if is_dir:
        inner = path / WEIGHTS_NAME
        if not inner.is_file():
            raise TextgenError(f"{path}: folder has no {WEIGHTS_NAME}; give a checkpoint file or a training run folder")
        return inner
    if not exists:
        raise TextgenError(f"{path}: no such checkpoint; give a .safetensors file or a training run folder")
    return path


def save(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: CheckpointMeta) -> None:
    """Atomically write weights and metadata; refuses non-finite weights so a good checkpoint is never replaced
    by a diverged one."""
    from safetensors.numpy import save as st_save

    expected = meta.config.tensor_shapes()
    if set(tensors) != set(expected):
        raise ValueError(f"tensor names {sorted(tensors)} do not match the config")
    for name, arr in tensors.items():
        if tuple(arr.shape) != expected[name]:
            raise ValueError(f"{name} has shape {arr.shape}, config says {expected[name]}")
        if not np.isfinite(arr).all():
            raise TextgenError(f"refusing to save {path}: weight {name} contains NaN or Inf (training diverged)")
    data = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"textgen": meta.to_json()})
    atomic_write_bytes(path, data)


def _check_header(path: Path, size: int, f) -> None:
    """Validate the safetensors framing ourselves first, so corrupt files give precise, cheap errors."""
    what = f"{path}: not a valid textgen checkpoint"
    if size < 8:
        raise TextgenError(f"{what} (file is truncated: {size} bytes); retrain or re-download it")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
        raise TextgenError(f"{what} (header claims {n} bytes, file has {size}; truncated or not safetensors)")
    if n > MAX_HEADER_BYTES:
        raise TextgenError(f"{what} (header of {n} bytes is implausibly large)")
    try:
        header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TextgenError(f"{what} (header is not JSON; is it a zip or pickle renamed .safetensors?)") from None
    if not isinstance(header, dict):
        raise TextgenError(f"{what} (header is not an object)")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            ok = dtype in _DTYPES and 0 <= start <= end <= data_len and end - start == count * _DTYPES[dtype]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise TextgenError(f"{what} (tensor {name!r} is malformed or runs past the end of the file)")


def load(arg: str | os.PathLike | None) -> Checkpoint:
    """Load and validate a checkpoint (file, run folder, or None for the bundled model). Never runs code."""
    from safetensors import safe_open

    path = resolve_path(arg)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            _check_header(path, size, f)
    except OSError as e:
        raise TextgenError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with safe_open(str(path), framework="numpy") as sf:
            raw_meta = (sf.metadata() or {}).get("textgen")
            names = list(sf.keys())
            arrays = {k: sf.get_tensor(k) for k in names}
    except TextgenError:
        raise
    except Exception as e:  # safetensors raises several types for corrupt files
        raise TextgenError(f"{path}: not a valid textgen checkpoint ({str(e).splitlines()[0][:120]})") from None
    if raw_meta is None:
        raise TextgenError(f"{path}: has no textgen metadata; it was not written by textgen")
    try:
        meta = CheckpointMeta.from_json(raw_meta)
    except (ValueError, TypeError) as e:
        raise TextgenError(f"{path}: bad checkpoint metadata ({e})") from None
    expected = meta.config.tensor_shapes()
    missing = set(expected) - set(arrays)
    if missing:
        raise TextgenError(f"{path}: checkpoint lacks weights {', '.join(sorted(missing)[:3])}")
    tensors: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        arr = arrays[name]
        if tuple(arr.shape) != shape:
            raise TextgenError(
                f"{path}: weight {name} has shape {tuple(arr.shape)} but the config and vocabulary need {shape}"
            )
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise TextgenError(f"{path}: weight {name} contains NaN or Inf; this checkpoint is unusable")
        tensors[name] = arr
    return Checkpoint(path=path, tensors=tensors, meta=meta)


def read_meta(arg: str | os.PathLike | None) -> CheckpointMeta:
    """Metadata only (for `--resume` checks and `info`); still fully validated."""
    return load(arg).meta


def run_step(folder: str | os.PathLike) -> int | None:
    """Steps trained so far by the run in `folder` (from its resume state), or None if it has none/unreadable."""
    from safetensors import safe_open

    path = Path(folder) / RESUME_NAME
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            return int(json.loads((f.metadata() or {})["resume"])["step"])
    except Exception:  # a damaged resume file must not stop `info` from describing the weights
        return None
