"""Starting a run from a trained checkpoint (--init): the shape it imposes and the vocabulary it brings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import checkpoint as ckpt
from ..config import option
from ..errors import TextgenError
from ..recurrent import TRAINABLE
from ..vocab import Vocabulary
from .config import TrainConfig

#: `--init bundled`: the model shipped with textgen.
BUNDLED = "bundled"


def load_start(init: str) -> ckpt.Checkpoint:
    """The checkpoint `--init` names (a file, a run folder, or `BUNDLED`)."""
    return ckpt.load(None if init == BUNDLED else init)


def adopt_start(config: TrainConfig, start: ckpt.Checkpoint, explicit: frozenset[str]) -> TrainConfig:
    """The config of a run that starts from `start`: the checkpoint's shape and case, and its regularisation
    unless the command gives other values. A shape flag (the cell type included) that contradicts the checkpoint
    is refused: weights of one cell type mean nothing to another."""
    if start.config.recurrent_activation != "sigmoid":  # torch's layers have only the sigmoid
        raise TextgenError(
            f"--init: the checkpoint's gates use {start.config.recurrent_activation}, which training cannot; "
            "train a new model instead"
        )
    if start.config.cell not in TRAINABLE:
        raise TextgenError(
            f"--init: the checkpoint is a {start.config.cell_title} model, which training cannot run; "
            "train a new model instead"
        )
    have = {f: getattr(start.config, f) for f in ("cell", "embed_dim", "hidden_size", "num_layers")}
    have["lowercase"] = start.meta.lowercase
    for name, value in have.items():
        if name in explicit and getattr(config, name) != value:
            flag = option(name)
            raise TextgenError(
                f"--init: {flag} {getattr(config, name)} differs from the checkpoint's {value}; drop {flag}"
            )
    regularisation = {f: getattr(start.config, f) for f in ("dropout", "embed_dropout", "weight_drop")}
    return replace(config, **have, **{f: v for f, v in regularisation.items() if f not in explicit})


def init_record(init: str, start: ckpt.Checkpoint) -> dict:
    """Where a fine-tuned run's weights came from, kept in every checkpoint of the run: the parent's command,
    step and val bpc, and the parent's own start if it was fine-tuned too (a lineage)."""
    return {
        "checkpoint": init,
        "step": start.meta.step,
        "val_bpc": start.meta.val_bpc,
        "command": start.meta.command,
        "init": start.meta.extra.get("init"),
    }


def model_ids(corpus: Vocabulary, model: Vocabulary, flag: str, fix: str) -> np.ndarray | None:
    """The model's id for each of the corpus's ids (None when the vocabularies are the same). A character the
    model cannot represent is refused: a one-line error about `flag`, ending in `fix`."""
    if corpus == model:
        return None
    missing = "".join(ch for ch in corpus.tokens if ch not in model)
    if missing:
        raise TextgenError(f"{flag}: the corpus has {missing[:20]!r}, which the model's vocabulary lacks; {fix}")
    return np.array([model.index(ch) for ch in corpus.tokens], dtype=np.int64)
