"""Opening the model a user names: the one place that turns `-c`'s argument or `/load`'s path into a checkpoint.

A user may name a textgen checkpoint (a ``.safetensors`` file, a run folder, or nothing for the bundled model) or
a Keras ``.keras``/``.h5`` model, converted in memory. The path goes through one set of checks
(`checkpoint.resolve_path`, which refuses a missing file or an empty folder in one line); the file's first bytes,
not its name, then say which reader opens it. The Keras importer is imported only for a Keras file, so opening a
textgen checkpoint (every sample, every REPL start) never pays for it.

`run_window` is the one rule for how a model runs: the book's windowed prediction for a model trained on fixed
windows, statefully otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import checkpoint
from .checkpoint import HDF5_MAGIC, ZIP_MAGIC
from .errors import TextgenError
from .vocab import Vocabulary

if TYPE_CHECKING:
    from .checkpoint import Checkpoint, CheckpointMeta

#: What to add when a Keras model is opened without a vocabulary (the command line's spelling of `VocabSource`).
NEEDS_VOCAB = "add --vocab-from CORPUS (and --lowercase if it was trained lower-cased) or --chars FILE"


class VocabSource(NamedTuple):
    """Where a Keras model's vocabulary comes from: the corpus it was trained on (the book's rule) or a file of
    its characters in order; `lowercase` also tells textgen to lower-case what it feeds the model."""

    corpus: str | os.PathLike | None = None
    chars: str | os.PathLike | None = None
    lowercase: bool = False
    encoding: str = "utf-8"

    @property
    def given(self) -> bool:
        return self.corpus is not None or self.chars is not None

    def vocabulary(self) -> Vocabulary:
        return keras_vocabulary(corpus=self.corpus, chars=self.chars, lowercase=self.lowercase, encoding=self.encoding)


def keras_vocabulary(
    *,
    corpus: str | os.PathLike | None = None,
    chars: str | os.PathLike | None = None,
    lowercase: bool = False,
    encoding: str = "utf-8",
) -> Vocabulary:
    """A Keras model's vocabulary, which the model file does not hold: the book's rule, the sorted distinct
    characters of the (optionally lower-cased) `corpus`, or the characters of a `chars` file in order (a final
    newline that repeats an earlier one is the file's line end, not a character). Both are read as corpora are
    (newlines normalised, control characters refused), as Python's text mode read them for the book."""
    from .corpus import SourceReader  # only a Keras model needs the corpus reader: sampling starts without it

    if (corpus is None) == (chars is None):
        raise TextgenError(
            "a Keras model has no vocabulary: give the corpus it was trained on, or a file of its characters"
        )
    if corpus is not None:
        text = "".join(SourceReader(corpus, encoding, lowercase))
        if not text:
            raise TextgenError(f"{corpus}: is empty; give the corpus the model was trained on")
        return Vocabulary.from_text(text)
    assert chars is not None
    text = "".join(SourceReader(chars, encoding))
    if text.endswith("\n") and "\n" in text[:-1]:
        text = text[:-1]
    if not text:
        raise TextgenError(f"{chars}: is empty; give the model's characters in order")
    seen: set[str] = set()
    for ch in text:
        if ch in seen:
            raise TextgenError(f"{chars}: the character {ch!r} appears twice; list each of the model's characters once")
        seen.add(ch)
    return Vocabulary(text)


def is_keras_file(path: Path) -> bool:
    """Whether the file at `path` is a Keras model: the first bytes of HDF5, or a zip holding Keras's
    ``config.json`` (a renamed PyTorch zip is left to the checkpoint loader, which names it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head == HDF5_MAGIC:
            return True
        if head.startswith(ZIP_MAGIC):
            import zipfile  # only for a zip: opening a checkpoint loads neither zipfile nor threading

            try:
                with zipfile.ZipFile(path) as z:
                    return "config.json" in z.namelist()
            except zipfile.BadZipFile:
                return False
    except OSError:
        return False  # the checkpoint loader reports what is wrong with it
    return False


def open_model(
    arg: str | os.PathLike | None, vocab: VocabSource | None = None, *, needs_vocab: str = NEEDS_VOCAB
) -> Checkpoint:
    """Open what a user gave where a model is expected: a textgen checkpoint (a file, a run folder, or None for
    the bundled model) or a Keras ``.keras``/``.h5`` file, converted in memory with the vocabulary `vocab` says.

    `vocab` matters only for a Keras file (a checkpoint holds its own); without it, one line naming the file and
    `needs_vocab` (what to add)."""
    path = checkpoint.resolve_path(arg)
    if arg is not None and (path.suffix.lower() in checkpoint.KERAS_SUFFIXES or is_keras_file(path)):
        return keras_checkpoint(path, vocab, needs_vocab=needs_vocab)
    return checkpoint.load(path)


def keras_checkpoint(
    path: str | os.PathLike, vocab: VocabSource | None, *, needs_vocab: str = NEEDS_VOCAB
) -> Checkpoint:
    """A Keras file as an in-memory checkpoint with the vocabulary `vocab` says (`textgen import`, `open_model`).
    The file is read first, so a file that is no model is reported as such before a missing vocabulary is."""
    from .keras_import import read_keras, to_checkpoint

    model = read_keras(path)
    if vocab is None or not vocab.given:
        raise TextgenError(f"{model.path}: a Keras model holds no vocabulary; {needs_vocab}")
    return to_checkpoint(model, vocab.vocabulary(), lowercase=vocab.lowercase)


def run_window(meta: CheckpointMeta, windowed: bool | None = None) -> int | None:
    """The `window` a model runs with: the book's way (each character from the last ``meta.window``, a zero state
    each time) for a model trained on fixed windows unless `windowed` is False; statefully (None) otherwise.
    `windowed=True` for a model that records no window is refused: there is no length to use."""
    if windowed and meta.window is None:
        raise TextgenError(
            "this model records no window (it was not trained on fixed-length windows), so it runs statefully only"
        )
    return meta.window if windowed is not False else None
