"""The settings of a training run (`TrainConfig`) and the rules for how a resumed run's settings combine with the
ones given on its command line. Pure data: no torch, no files.

Each setting is declared once, as a field that carries its `textgen train` flag (`config.setting`): its help
text, metavar and the name of the rule that parses it. The command builds its flags from these fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLIP,
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
    ModelConfig,
    ModelHyperparameters,
    option,
    setting,
)
from ..corpus import DEFAULT_MAX_VOCAB
from ..errors import TextgenError

#: Optimisation settings a --resume may change when given explicitly (a run that turns --ema on averages from
#: the weights it resumes with; "lower --lr and --resume" is how a diverged run goes on).
RESUME_MAY_CHANGE = ("lr", "clip", "ema")
BUDGET_FIELDS = ("steps", "minutes", "epochs")

SIZE_HELP = (
    "auto: time a few candidate sizes on this machine (counted in the budget) and train the one that learns most "
    "in --minutes (docs/sizing.md); size flags given with it narrow the choice, other flags win. fixed: train the "
    f"size the flags give (default {DEFAULT_LAYERS}×{DEFAULT_HIDDEN}) without timing. Default: auto for a new run "
    "with a --minutes budget and no --hidden-size, --num-layers, --init or --nproc; fixed otherwise"
)


@dataclass(frozen=True)
class TrainConfig(ModelHyperparameters):
    """Everything that defines a run. Saved in the resume file; model and data fields must match on --resume.

    The model's hyperparameters are inherited (`ModelHyperparameters`, keyword-only); the fields here are the
    data, the optimisation, the budget and the run."""

    corpus: list[str]
    out: str
    encoding: str = setting("utf-8", "text encoding of the corpus (default {default})", "data")
    lowercase: bool = setting(False, "lower-case the text (the book's recipe)", "data")
    max_vocab: int = setting(
        DEFAULT_MAX_VOCAB,
        "refuse corpora with more distinct characters (default {default}: such files look binary)",
        "data",
        metavar="N",
        rule="positive_int",
    )
    #: The token kind (`textgen_core.tokens`): characters, words, or word pieces; and the vocabulary's size for
    #: the last two (None: the kind's default).
    tokens: str = setting(
        "char",
        "what a token is: char, word (frequent words, the rest spelled in characters) or bpe (word pieces "
        "learned by SentencePiece) (default {default})",
        "data",
        choices=("char", "word", "bpe"),
    )
    vocab_size: int | None = setting(
        None,
        "tokens in a word or bpe vocabulary, the text's characters included (default 2000 words, 1000 pieces)",
        "data",
        metavar="N",
        rule="positive_int",
    )
    val_fraction: float = setting(
        DEFAULT_VAL_FRACTION, "last fraction held out (default {default})", "data", metavar="F", rule="fraction"
    )
    #: "auto": the run picks its size for its --minutes budget on this machine (`sizing`); the choice is then
    #: saved in the size fields, so a resumed run goes on with it and never chooses again. None: the size the
    #: fields give (the flag's "fixed"; the command picks the default between the two, `size_policy`).
    size: str | None = setting(None, SIZE_HELP, "model", choices=("auto", "fixed"))
    #: A checkpoint (file, run folder, or "bundled") whose weights the run starts from: fine-tuning.
    init: str | None = setting(
        None,
        "start from this checkpoint's weights (a .safetensors file, a run folder, or 'bundled' for the bundled "
        "model) to fine-tune it: the run keeps its size, vocabulary and case, and its dropout unless given",
        "model",
        metavar="CKPT",
    )
    batch_size: int = setting(
        DEFAULT_BATCH_SIZE,
        "parallel text streams (default {default})",
        "optimisation",
        metavar="N",
        rule="positive_int",
    )
    seq_len: int = setting(
        DEFAULT_SEQ_LEN,
        "BPTT length in tokens: characters unless --tokens (default {default})",
        "optimisation",
        metavar="N",
        rule="positive_int",
    )
    lr: float = setting(
        DEFAULT_LR, "peak learning rate of AdamW (default {default:g})", "optimisation", rule="learning_rate"
    )
    min_lr_ratio: float = setting(
        DEFAULT_MIN_LR_RATIO,
        "final lr / peak lr (default {default})",
        "optimisation",
        metavar="R",
        rule="unit_interval",
    )
    warmup_steps: int = setting(
        DEFAULT_WARMUP_STEPS,
        "linear warm-up steps (default {default})",
        "optimisation",
        metavar="N",
        rule="nonneg_int",
    )
    weight_decay: float = setting(
        DEFAULT_WEIGHT_DECAY,
        "AdamW weight decay (default {default:g})",
        "optimisation",
        metavar="W",
        rule="weight_decay",
    )
    clip: float = setting(DEFAULT_CLIP, "gradient norm clip (default {default})", "optimisation", rule="positive_float")
    ema: float = setting(
        0.0,
        "evaluate and save an exponential moving average of the weights with this decay per step, e.g. 0.999 "
        "(default 0: off)",
        "optimisation",
        metavar="DECAY",
        rule="below_one",
    )
    steps: int | None = setting(None, "total optimisation steps", "budget", metavar="N", rule="positive_int")
    minutes: float | None = setting(None, "total wall-clock minutes", "budget", metavar="M", rule="positive_float")
    epochs: float | None = setting(None, "passes over the training text", "budget", metavar="E", rule="positive_float")
    eval_every: int = setting(
        DEFAULT_EVAL_EVERY,
        "evaluate every N steps (default {default}, or the run's own on --resume)",
        "run",
        metavar="N",
        rule="positive_int",
    )
    sample_len: int = setting(
        DEFAULT_SAMPLE_LEN,
        "characters sampled at each evaluation per temperature (default {default}; 0 = none)",
        "run",
        metavar="N",
        rule="sample_len",
    )
    seed: int = setting(DEFAULT_SEED, "random seed (default {default})", "run", rule="nonneg_int")
    device: str = setting("auto", "where to train (default {default})", "run", choices=("auto", "cpu", "cuda"))
    precision: str = setting(
        "auto",
        "autocast precision (default {default}: on a CPU with native bf16 the faster of bf16 and fp32, timed on "
        "this machine in the budget and cached; on a GPU bf16 where supported; fp16 is for GPUs without bf16)",
        "run",
        choices=("auto", "bf16", "fp16", "fp32"),
    )

    #: Fields a resumed run must share with the original (the model and the data layout).
    FIXED = (
        "encoding",
        "lowercase",
        "tokens",
        "vocab_size",
        "val_fraction",
        "cell",
        "embed_dim",
        "hidden_size",
        "num_layers",
        "dropout",
        "batch_size",
        "seq_len",
    )

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The model this run trains: its hyperparameters, whatever they are, and the vocabulary's size."""
        shared = {f.name: getattr(self, f.name) for f in fields(ModelHyperparameters)}
        return ModelConfig(vocab_size, **shared)

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
                f"--resume: {option(name)} {getattr(given, name)} differs from the run's "
                f"{getattr(run, name)}; drop the flag or start a new --out"
            )
