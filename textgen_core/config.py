"""Model configuration, saved inside every checkpoint so that a checkpoint rebuilds its own model, and the way a
setting is declared once: a dataclass field that carries its own `textgen train` flag (`setting`, `Flag`)."""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, NamedTuple

from .recurrent import CELLS, Cell

#: Joins the layers' cell types of a mixed stack in `ModelConfig.cell` (layer 0 first).
MIXED = "+"

#: Defaults chosen by measurement on a 2-core CPU with a 10-minute budget (see README, "Choosing the defaults").
DEFAULT_EMBED = 64
DEFAULT_HIDDEN = 640
DEFAULT_LAYERS = 2
DEFAULT_DROPOUT = 0.25
DEFAULT_EMBED_DROPOUT = 0.1
DEFAULT_WEIGHT_DROP = 0.25
#: The training defaults that `textgen train --help` shows (`training.config.TrainConfig` uses them).
DEFAULT_BATCH_SIZE = 32
DEFAULT_SEQ_LEN = 128
DEFAULT_LR = 3e-3
DEFAULT_MIN_LR_RATIO = 0.05
DEFAULT_WARMUP_STEPS = 100
DEFAULT_WEIGHT_DECAY = 0.3
DEFAULT_CLIP = 1.0
DEFAULT_MINUTES = 10.0
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_EVAL_EVERY = 200
DEFAULT_SAMPLE_LEN = 100
DEFAULT_SEED = 1337

#: Widest beam search accepted (`textgen_core.beam`, `sample --beam`, /beam, /compare's beamW columns). Each position
#: costs about W times a sampled character; past a few dozen the search is a crawl that a user would take for a hang,
#: and such widths rarely change a character-level result. Here, not in beam.py, so that the value rules read it
#: without importing numpy.
MAX_BEAM_WIDTH = 64

# Generation defaults, shared by `textgen sample`, the REPL and the samples a training run writes.
DEFAULT_LENGTH = 400
#: A seed is fed from its last PRIME_TAIL known characters (`generate.encode_seed`). An LSTM's memory of earlier
#: text fades: on the bundled model, feeding the last 5,000 instead of 20,000 changes no next-character probability
#: by more than float32 rounding (PRIME_TAIL_TOLERANCE bounds the largest |Δp| bench/bench_prime.py measured,
#: docs/errors.md; 10,000 is no closer), while every character fed costs the same time.
PRIME_TAIL = 5_000
PRIME_TAIL_TOLERANCE = 1e-6
# The temperatures the book samples at; `/compare`'s default and a training run's samples.
BOOK_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)

#: The LSTM's gate activation → its slope for the piecewise-linear ones, ``clip(slope·x + 1/2, 0, 1)``. textgen
#: trains with the sigmoid; the hard sigmoids exist for imported Keras models, where the one config name
#: ``hard_sigmoid`` meant two functions: Keras 1-2 computed ``clip(0.2x + 0.5, 0, 1)``, Keras 3 ``relu6(x + 3) / 6``.
RECURRENT_ACTIVATIONS: dict[str, float | None] = {"sigmoid": None, "hard_sigmoid_keras2": 0.2, "hard_sigmoid": 1 / 6}
#: Fields added after the first checkpoints were written, with the value those checkpoints mean.
_LATER_FIELDS = {"recurrent_activation": "sigmoid", "cell": "lstm"}


#: The key of a field's metadata that holds its `Flag`.
FLAG = "flag"


class Flag(NamedTuple):
    """How a config field is given on the command line, declared with the field (`setting`) so that a setting is
    written once: `textgen train` builds its flag from this (`repl/cli/train.py`), named after the field
    (`option`), with argparse default None so that the command can tell which flags a user gave.

    `rule` names the value rule that parses the flag's text (a key of the train command's table of rules, which
    apply `repl.values`): a name, as the library must not import the front end. A bool field is a switch that
    turns the setting on."""

    help: str
    #: The argument group of `textgen train --help` the flag is listed in.
    group: str
    metavar: str | None = None
    rule: str | None = None
    choices: tuple[str, ...] | None = None


def setting(
    default: Any,
    help: str,
    group: str,
    *,
    metavar: str | None = None,
    rule: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with `default` that is also a flag. ``{default}`` in `help` stands for the default, so
    the help says what the field holds (``{default:g}`` formats it)."""
    flag = Flag(help.format(default=default), group, metavar, rule, choices)
    return field(default=default, metadata={FLAG: flag})


def flag_fields(cls: type) -> list[tuple[Field, Flag]]:
    """The fields of the dataclass `cls` that are flags, in declaration order (inherited fields first)."""
    return [(f, f.metadata[FLAG]) for f in fields(cls) if FLAG in f.metadata]


def option(name: str) -> str:
    """The flag of the config field `name`, as messages and the command line spell it: ``--hidden-size``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class ModelHyperparameters:
    """The model's hyperparameters, declared once: a checkpoint's `ModelConfig` and a run's `TrainConfig` both
    inherit them, and `textgen train` has a flag for each."""

    #: The recurrent cell (`textgen_core.recurrent`); a checkpoint from before it was recorded is an LSTM.
    cell: str = setting(
        "lstm",
        "recurrent cell: lstm, gru or rnn (default {default})",
        "model",
        metavar="CELL",
        choices=("lstm", "gru", "rnn"),
    )
    embed_dim: int = setting(
        DEFAULT_EMBED, "character embedding size (default {default})", "model", metavar="N", rule="positive_int"
    )
    hidden_size: int = setting(
        DEFAULT_HIDDEN, "units per recurrent layer (default {default})", "model", metavar="N", rule="positive_int"
    )
    num_layers: int = setting(
        DEFAULT_LAYERS, "stacked recurrent layers (default {default})", "model", metavar="N", rule="positive_int"
    )
    #: Dropout between the layers and before the head (training only).
    dropout: float = setting(
        DEFAULT_DROPOUT,
        "dropout between layers and before the head (default {default})",
        "model",
        metavar="P",
        rule="below_one",
    )
    #: Dropout on the character embeddings (training only).
    embed_dropout: float = setting(
        DEFAULT_EMBED_DROPOUT, "dropout on embeddings (default {default})", "model", metavar="P", rule="below_one"
    )
    #: DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop; training only). It regularises the
    #: recurrence itself, which plain dropout between layers does not touch.
    weight_drop: float = setting(
        DEFAULT_WEIGHT_DROP,
        "DropConnect on recurrent weights, AWD-LSTM style (default {default})",
        "model",
        metavar="P",
        rule="below_one",
    )

    @property
    def cells(self) -> list[str]:
        """The cell types `cell` names: one for the whole stack, or one per layer (``gru+lstm``, an imported Keras
        model), layer 0 first."""
        return self.cell.split(MIXED)


@dataclass(frozen=True)
class ModelConfig(ModelHyperparameters):
    """Embedding → `num_layers` stacked recurrent layers of one `cell` type (dropout between them) → linear head
    over the vocabulary.

    The hyperparameters are keyword-only (they are inherited); `vocab_size` may be given by position."""

    vocab_size: int
    #: The gates' activation (a key of `RECURRENT_ACTIVATIONS`); only imported Keras models use another.
    recurrent_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_size", "num_layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("dropout", "embed_dropout", "weight_drop"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        parts = self.cell.split(MIXED) if isinstance(self.cell, str) else [None]
        if not all(p in CELLS for p in parts) or len(parts) not in (1, self.num_layers):
            raise ValueError(
                f"cell must be one of {', '.join(CELLS)}, or one per layer joined by {MIXED!r}; got {self.cell!r}"
            )
        if not isinstance(self.recurrent_activation, str) or self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(f"recurrent_activation must be one of {', '.join(RECURRENT_ACTIVATIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_cell(self, k: int) -> Cell:
        """Layer k's cell type: the one `cell` names, or its k-th part for a mixed stack (an imported Keras model,
        e.g. ``gru+lstm``)."""
        parts = self.cells
        return CELLS[parts[k] if len(parts) > 1 else parts[0]]

    @property
    def cell_title(self) -> str:
        """How messages call the cell: ``LSTM``, ``GRU``, ``GRU+LSTM``."""
        return MIXED.join(CELLS[p].title for p in self.cells)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Build from a checkpoint's dict; raises ValueError on missing, unknown or ill-typed fields."""
        if not isinstance(d, dict):
            raise ValueError("config is not an object")
        names = {f.name for f in fields(cls)}
        missing = names - d.keys() - _LATER_FIELDS.keys()
        if missing:
            raise ValueError(f"config lacks {', '.join(sorted(missing))}")
        return cls(**{**_LATER_FIELDS, **{k: d[k] for k in names if k in d}})

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the weights, in PyTorch's layout for the cell (`recurrent.Cell.layer_shapes`).

        Both the torch model and the numpy inference path use these names, so a checkpoint is one format.
        """
        v, e, h = self.vocab_size, self.embed_dim, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (v, e)}
        for k in range(self.num_layers):
            shapes.update(self.layer_cell(k).layer_shapes(k, e if k == 0 else h, h))
        shapes["head.weight"] = (v, h)
        shapes["head.bias"] = (v,)
        return shapes

    def num_params(self) -> int:
        """The number of weights, in closed form (the sum over `tensor_shapes`): a forged config or a flag such as
        ``--num-layers 10**12`` must get its answer at once, not after building a table of its tensors."""
        v, e, h, n = self.vocab_size, self.embed_dim, self.hidden_size, self.num_layers
        first = self.layer_cell(0).layer_params(e, h)
        if MIXED not in self.cell:
            later = (n - 1) * self.layer_cell(0).layer_params(h, h)
        else:  # one name per layer: as many terms as the config spells out
            later = sum(self.layer_cell(k).layer_params(h, h) for k in range(1, n))
        return v * e + first + later + v * h + v

    def training_bytes(self, batch_size: int, seq_len: int) -> int:
        """A lower bound on the memory training needs: fp32 weights, their gradients and Adam's two moments, and the
        fp32 logits of one batch. Only used to refuse sizes that cannot fit, so it must never overestimate (the
        activations, which depend on precision and kernels, are left out)."""
        return 4 * (4 * self.num_params() + batch_size * seq_len * self.vocab_size)

    def describe(self) -> str:
        """Short human label, e.g. `2×512 LSTM (3.3M params)`."""
        return f"{self.num_layers}×{self.hidden_size} {self.cell_title} ({self.num_params() / 1e6:.1f}M params)"
