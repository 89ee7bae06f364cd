"""The settings of a training run (`TrainConfig`) and the rules for how a resumed run's settings combine with the
ones given on its command line. Pure data: no torch, no files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLIP,
    DEFAULT_DROPOUT,
    DEFAULT_EMBED,
    DEFAULT_EMBED_DROPOUT,
    DEFAULT_EVAL_EVERY,
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    DEFAULT_LR,
    DEFAULT_MIN_LR_RATIO,
    DEFAULT_MINUTES,
    DEFAULT_SAMPLE_LEN,
    DEFAULT_SEED,
    DEFAULT_SEQ_LEN,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WARMUP_STEPS,
    DEFAULT_WEIGHT_DECAY,
    DEFAULT_WEIGHT_DROP,
    ModelConfig,
)
from ..corpus import DEFAULT_MAX_VOCAB
from ..errors import TextgenError

#: Optimisation settings a --resume may change when given explicitly (a run that turns --ema on averages from
#: the weights it resumes with; "lower --lr and --resume" is how a diverged run goes on).
RESUME_MAY_CHANGE = ("lr", "clip", "ema")
BUDGET_FIELDS = ("steps", "minutes", "epochs")


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved in the resume file; model and data fields must match on --resume."""

    corpus: list[str]
    out: str
    encoding: str = "utf-8"
    lowercase: bool = False
    max_vocab: int = DEFAULT_MAX_VOCAB
    val_fraction: float = DEFAULT_VAL_FRACTION
    embed_dim: int = DEFAULT_EMBED
    hidden_size: int = DEFAULT_HIDDEN
    num_layers: int = DEFAULT_LAYERS
    dropout: float = DEFAULT_DROPOUT
    embed_dropout: float = DEFAULT_EMBED_DROPOUT
    weight_drop: float = DEFAULT_WEIGHT_DROP
    batch_size: int = DEFAULT_BATCH_SIZE
    seq_len: int = DEFAULT_SEQ_LEN
    lr: float = DEFAULT_LR
    min_lr_ratio: float = DEFAULT_MIN_LR_RATIO
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    clip: float = DEFAULT_CLIP
    ema: float = 0.0
    steps: int | None = None
    minutes: float | None = None
    epochs: float | None = None
    eval_every: int = DEFAULT_EVAL_EVERY
    sample_len: int = DEFAULT_SAMPLE_LEN
    seed: int = DEFAULT_SEED
    device: str = "auto"
    precision: str = "auto"
    #: A checkpoint (file, run folder, or "bundled") whose weights the run starts from: fine-tuning.
    init: str | None = None
    #: "auto": the run picks its size for its --minutes budget on this machine (`sizing`); the choice is then
    #: saved in the size fields above, so a resumed run goes on with it and never chooses again.
    size: str | None = None

    #: Fields a resumed run must share with the original (the model and the data layout).
    FIXED = (
        "encoding",
        "lowercase",
        "val_fraction",
        "embed_dim",
        "hidden_size",
        "num_layers",
        "dropout",
        "batch_size",
        "seq_len",
    )

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size,
            self.embed_dim,
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self.embed_dropout,
            self.weight_drop,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def with_budget(config: TrainConfig) -> TrainConfig:
    """`config` with exactly one budget: the default --minutes when none is given; two or more are refused (which
    one should end the run would be a guess)."""
    given = sum(x is not None for x in (config.steps, config.minutes, config.epochs))
    if given > 1:
        raise TextgenError("give one budget: --steps, --minutes or --epochs")
    return config if given else replace(config, minutes=DEFAULT_MINUTES)


def merge_resumed(given: TrainConfig, saved: dict, explicit: frozenset[str]) -> TrainConfig:
    """The config a resumed run goes on with. Saved settings win: what the command does not give goes on as the
    run had it, so `textgen train CORPUS --out RUN --resume` alone ends where the uninterrupted run would have. A
    resume may change the budget, the evaluation cadence and the length of the evaluation samples, and
    `RESUME_MAY_CHANGE`, by giving them. The device and precision are the machine's: the given ones apply.

    Fixed fields given with a different value than the run's are refused later, by `check_fixed_fields`, once
    the corpus is known to match."""
    changed = ({"eval_every", "sample_len"} | set(RESUME_MAY_CHANGE)) & explicit
    if explicit & set(BUDGET_FIELDS):  # a new budget replaces the old one, of whichever kind it was
        changed |= set(BUDGET_FIELDS)
    return replace(
        TrainConfig.from_dict(saved),
        **{f: getattr(given, f) for f in changed},
        out=given.out,
        device=given.device,
        precision=given.precision,
        corpus=given.corpus,
    )


def check_fixed_fields(given: TrainConfig, run: TrainConfig, explicit: frozenset[str]) -> None:
    """Refuse a --resume whose command sets a model or data-layout field to another value than the run's: it
    would otherwise be silently ignored."""
    for name in TrainConfig.FIXED:
        if name in explicit and getattr(given, name) != getattr(run, name):
            raise TextgenError(
                f"--resume: --{name.replace('_', '-')} {getattr(given, name)} differs from the run's "
                f"{getattr(run, name)}; drop the flag or start a new --out"
            )
