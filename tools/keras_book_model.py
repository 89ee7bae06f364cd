"""Train the book's own model with real Keras and save it as `.keras` and legacy `.h5`, for `textgen import`.

Deep Learning with Python §8.1, as its listing reads (Keras's ``lstm_text_generation.py``):

- the text is lower-cased; the vocabulary is its sorted distinct characters;
- training examples are 60-character windows every 3 characters, each predicting the character after it;
- one-hot inputs → ``LSTM(128)`` → ``Dense(vocab, activation='softmax')``, categorical cross-entropy,
  ``RMSprop(learning_rate=0.01)``, batch 128, shuffled every epoch.

Two choices differ from the listing, both so that the result can be compared with textgen's own models:
the windows come from textgen's training split (the first 90% of the text; the vocabulary is still the whole
text's, so ``--vocab-from CORPUS --lowercase`` rebuilds it), and the one-hot batches are built per batch instead
of as one (200k, 60, 57) array up front (the same numbers, a fraction of the memory). The LSTM's
``recurrent_activation`` is Keras 3's default, the sigmoid (the book's Keras 2.0.8 defaulted to the hard sigmoid:
``--recurrent-activation hard_sigmoid`` gets Keras 3's version of it).

Prints the seconds each epoch took; writes ``OUT/chars.txt`` (the vocabulary in order, for ``--chars``) first, then
``OUT/book.keras`` and ``OUT/book.h5`` after EVERY epoch (each to a temporary name, then renamed), so that a run
stopped early still leaves the last whole epoch's model to import. ``--max-batches`` cuts each epoch to that many
batches, drawn afresh from the shuffled windows every epoch: a quick check, or a documented subset when the full
epochs do not fit the time there is.

    .venv/bin/python tools/keras_book_model.py ../shared/corpora/nietzsche.txt --epochs 5 --out /tmp/book
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported; tensorflow is not installed here

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from textgen_core.atomic import atomic_write_text  # noqa: E402
from textgen_core.config import DEFAULT_VAL_FRACTION  # noqa: E402
from textgen_core.corpus import load_corpus, val_start  # noqa: E402

MAXLEN = 60
STEP = 3
UNITS = 128
BATCH = 128
LR = 0.01


class Windows(keras.utils.PyDataset):
    """One-hot batches of (60-character window, next character), reshuffled every epoch as ``fit(shuffle=True)``."""

    def __init__(self, ids: np.ndarray, vocab_size: int, seed: int, max_batches: int | None):
        super().__init__()
        self.ids = ids
        self.vocab_size = vocab_size
        self.starts = np.arange(0, len(ids) - MAXLEN, STEP)
        self.rng = np.random.default_rng(seed)
        self.max_batches = max_batches
        self.on_epoch_end()

    def __len__(self) -> int:
        n = -(-len(self.starts) // BATCH)  # the last batch of an epoch is partial, as in the book
        return n if self.max_batches is None else min(n, self.max_batches)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        starts = self.order[i * BATCH : (i + 1) * BATCH]
        eye = np.eye(self.vocab_size, dtype=np.float32)
        return eye[self.ids[starts[:, None] + np.arange(MAXLEN)]], eye[self.ids[starts + MAXLEN]]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(self.starts)


class SaveEveryEpoch(keras.callbacks.Callback):
    """Save ``.keras`` and ``.h5`` after each epoch, atomically: a kill mid-save never leaves a half-written model."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for name in ("book.keras", "book.h5"):
            final = self.out / name
            tmp = final.with_name(f".{final.stem}.partial{final.suffix}")  # Keras picks the format by the suffix
            self.model.save(tmp)
            os.replace(tmp, final)
        print(f"epoch {epoch + 1}: saved {self.out / 'book.keras'} and {self.out / 'book.h5'}", flush=True)


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        loss = (logs or {}).get("loss", float("nan"))
        print(f"epoch {epoch + 1}: {time.perf_counter() - self.t0:.1f} s, loss {loss:.4f} nats", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", help="the text to train on (the book: nietzsche.txt)")
    p.add_argument("--out", required=True, help="folder for book.keras, book.h5 and chars.txt")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-batches", type=int, default=None, help="cut each epoch to this many batches (a quick check)")
    p.add_argument("--recurrent-activation", choices=["sigmoid", "hard_sigmoid"], default="sigmoid")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, help="held out at the end")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    corpus = load_corpus([args.corpus], lowercase=True)  # the vocabulary: sorted distinct characters
    v = len(corpus.vocab)
    train_ids = corpus.tokens[: val_start(len(corpus.tokens), args.val_fraction)].astype(np.int64)
    data = Windows(train_ids, v, args.seed, args.max_batches)
    print(f"{len(data.starts)} windows, {len(data)} batches per epoch, vocabulary {v}, keras {keras.__version__}")

    model = keras.Sequential(
        [
            keras.Input((MAXLEN, v)),
            keras.layers.LSTM(UNITS, recurrent_activation=args.recurrent_activation),
            keras.layers.Dense(v, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=LR))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "chars.txt", "".join(corpus.vocab.tokens))
    model.fit(data, epochs=args.epochs, callbacks=[EpochTimer(), SaveEveryEpoch(out)], verbose=0)
    print(f"wrote {out / 'book.keras'}, {out / 'book.h5'}, {out / 'chars.txt'}")


if __name__ == "__main__":
    main()
