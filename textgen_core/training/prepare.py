"""Setting a run up before its first step: its settings, its text as the model numbers it, its precision and size,
its model.

The settings are the command's, merged with the resumed run's or the --init checkpoint's (`config`, `finetune`);
the text is the corpus split into training and validation, in the vocabulary of the model; `--precision auto` and
`--size auto` time steps here (`precision`, `sizing`, `calibrate`), the precision first; the model and its
optimiser are built fresh or from the --init weights. Every check that can refuse a run lives here, and
`loop.Trainer` runs them on rank 0 first so that a user error is reported once. What a resume file holds is put
back by `saving`, which writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoint as ckpt
from .. import tokenfile
from ..config import ModelConfig, option
from ..corpus import Corpus, load_corpus, val_start
from ..errors import TextgenError
from ..runfolder import check_new_run, read_resume
from ..sources import Source
from ..vocab import Vocabulary
from .calibrate import ConfigTimer, StepTimer, calibrate, median_step, time_steps
from .config import TrainConfig, check_fixed_fields, merge_resumed, with_budget
from .distributed import World
from .evaluation import EVAL_MAX_CHARS
from .events import Reporter
from .finetune import adopt_start, load_start, model_ids
from .hardware import cpu_name
from .model import CharLSTM
from .precision import PRECISIONS, Machine, PrecisionChoice, decide
from .sizing import CANDIDATES, SHAPE_FIELDS, Candidate, Choice, eligible

#: A resume file's contents: its tensors and its metadata (`runfolder.read_resume`).
Saved = tuple[dict[str, np.ndarray], dict]


def settle_config(
    config: TrainConfig, resume: bool, explicit: frozenset[str], world: World
) -> tuple[TrainConfig, Saved | None, ckpt.Checkpoint | None]:
    """The run's config: the command's and, where there is one, the resumed run's or the --init checkpoint's.
    Returned with the resume state and the --init checkpoint (a resumed run has its own weights)."""
    out = Path(config.out)
    if not resume:
        check_new_run(out)
    saved = read_resume(out) if resume else None
    start = None
    if saved is not None:
        check_world_size(saved[1], world)
        config = merge_resumed(config, saved[1]["config"], explicit)
    elif config.init is not None:
        start = load_start(config.init)
        config = adopt_start(config, start, explicit)
    return with_budget(config), saved, start


def check_world_size(meta: dict, world: World) -> None:
    """Each rank continues its own streams and RNG, so a run resumes only with as many processes as it had."""
    saved = int(meta.get("world_size", 1))
    if saved != world.size:
        had, now = (f"{n} process{'es' if n > 1 else ''}" for n in (saved, world.size))
        raise TextgenError(
            f"--resume: the run was trained by {had} and this is {now}; resume it with "
            f"{'--nproc ' + str(saved) if saved > 1 else 'a single process (no --nproc, no torchrun)'}"
        )


def load_run_corpus(config: TrainConfig, reporter: Reporter) -> Corpus:
    """In memory, or (for large corpora) as a map of the run's token file, which is built on first use."""
    c = config
    settings = dict(encoding=c.encoding, lowercase=c.lowercase, max_vocab=c.max_vocab)
    if tokenfile.corpus_bytes(c.corpus) < tokenfile.MIN_BYTES:
        return load_corpus(c.corpus, **settings)
    return tokenfile.load_token_corpus(c.corpus, Path(c.out), progress=reporter.reading, **settings)


def check_same_data(meta: dict, corpus: Corpus, given: TrainConfig, run: TrainConfig, explicit: frozenset[str]) -> None:
    """A resume trains on the run's own text with its own model and data layout; anything else is refused."""
    saved_sources = [Source.from_dict(s) for s in meta["sources"]]
    now = [(s.name, s.sha256) for s in corpus.sources]
    if now != [(s.name, s.sha256) for s in saved_sources]:
        raise TextgenError(
            f"--resume: the corpus differs from the run's ({', '.join(s.name for s in saved_sources)}); "
            "give the same files or start a new --out"
        )
    check_fixed_fields(given, run, explicit)


def _renumber(ids: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    return ids if lut is None else lut[ids]


@dataclass(frozen=True)
class Data:
    """The run's text as the model numbers it.

    The model's vocabulary is the corpus's own, or that of the checkpoint the run started from (or resumes),
    which must hold every character of the corpus; `lut` maps the corpus's ids to the model's (None where they
    are the same), applied to each batch as it is cut, so a mapped corpus is never copied whole. For words and
    word pieces (`textgen_core.tokens`) the text is encoded anew in the model's tokens and `lut` is None."""

    vocab: Vocabulary
    lut: np.ndarray | None
    #: The training split, in the corpus's ids: the streams are cut from it.
    train_tokens: np.ndarray
    #: The start of the validation split (at most `EVAL_MAX_CHARS` characters), in the model's ids.
    val_tokens: np.ndarray
    #: Characters per token over the training split (1 for characters): turns the loss per token into bits/char.
    chars_per_token: float = 1.0

    @property
    def val_chars(self) -> int:
        """The characters of the validation tokens that an evaluation scores (all but the first token)."""
        return int(self.vocab.lengths[self.val_tokens[1:]].sum())

    def model_ids(self, ids: np.ndarray) -> np.ndarray:
        """Token ids of the corpus as the model's vocabulary numbers them."""
        return _renumber(ids, self.lut)


def prepare_data(
    corpus: Corpus, config: TrainConfig, world: World, saved: Saved | None, start: ckpt.Checkpoint | None
) -> Data:
    """The corpus split and numbered for the model, refused when too short for the batch shape."""
    vocab, lut = corpus.vocab, None
    if config.vocab_size is not None and config.tokens == "char":
        raise TextgenError("--vocab-size is for --tokens word or bpe (a character model's vocabulary is its text's)")
    if start is not None:
        vocab = start.vocab
        if config.tokens not in ("char", vocab.kind):
            raise TextgenError(
                f"--init keeps the checkpoint's tokens ({vocab.describe()}); drop --tokens {config.tokens}"
            )
    elif saved is not None:
        try:
            vocab = _saved_vocabulary(saved[1])
        except ValueError as e:
            raise TextgenError(
                f"{config.out}: the resume file's vocabulary is damaged ({e}); start a new --out"
            ) from None
    elif config.tokens != "char":
        vocab = None
    if vocab is None or not vocab.is_chars:
        data = _token_data(corpus, config, vocab)
    else:
        if start is not None:
            lut = model_ids(corpus.vocab, vocab, "--init", "drop --init to train a new model")
        elif saved is not None:
            lut = model_ids(corpus.vocab, vocab, "--resume", "start a new --out")
        train_tokens, val_tokens = corpus.split(config.val_fraction)
        data = Data(vocab, lut, train_tokens, _renumber(val_tokens[:EVAL_MAX_CHARS], lut))
    _check_sizes(data, config, world)
    return data


def _saved_vocabulary(meta: dict) -> Vocabulary:
    """The vocabulary a resume file records (`loop.Trainer.save_resume`), as a checkpoint records it."""
    from ..tokens import from_meta

    return from_meta(meta["vocab"], meta.get("tokens"))


def _token_data(corpus: Corpus, config: TrainConfig, vocab: Vocabulary | None) -> Data:
    """The corpus in words or word pieces: the vocabulary learned from the training split (`vocab` None) or the
    resumed or --init model's, which must know every character of the text."""
    from ..tokens import learn

    if isinstance(corpus, tokenfile.MappedCorpus):
        raise TextgenError(
            f"--tokens {config.tokens} reads corpora under {tokenfile.MIN_BYTES >> 20} MB for now; "
            "give a smaller corpus or train on characters"
        )
    text = corpus.vocab.decode(corpus.tokens)
    cut = val_start(len(text), config.val_fraction)
    train_text, val_text = text[:cut], text[cut:]
    if vocab is None:
        vocab = learn(config.tokens, train_text, config.vocab_size)
    train = vocab.encode(train_text)
    if train.unknown:
        missing = "".join(train.unknown)[:20]
        raise TextgenError(f"the corpus has {missing!r}, which the model's vocabulary lacks; start a new --out")
    val = vocab.encode(val_text[:EVAL_MAX_CHARS]).ids
    return Data(vocab, None, train.ids, val, len(train_text) / max(1, len(train.ids)))


def _check_sizes(data: Data, config: TrainConfig, world: World) -> None:
    n_train, c = len(data.train_tokens), config
    need = world.size * c.batch_size * (2 * c.seq_len + 2)
    if n_train < need:
        unit = "characters" if data.vocab.is_chars else "tokens"
        procs = f" and {world.size} processes" if world.size > 1 else ""
        raise TextgenError(
            f"corpus too short: {n_train} training {unit}, need at least {need} for --batch-size "
            f"{c.batch_size} and --seq-len {c.seq_len}{procs}; add text or lower --batch-size / --seq-len"
        )
    if len(data.val_tokens) < 2:
        raise TextgenError("the validation split is empty; add text or raise --val-fraction")


def size_candidates(config: TrainConfig, explicit: frozenset[str], world: World) -> tuple[Candidate, ...]:
    """--size auto's candidates for this run, or the one-line reason it does not apply: checked before anything
    is timed."""
    c = config
    if c.minutes is None:
        raise TextgenError(
            "--size auto fits the model to a --minutes budget; give --minutes, or give the size "
            "(--hidden-size, --num-layers) for a --steps or --epochs budget"
        )
    if c.init is not None:
        raise TextgenError("--init keeps its checkpoint's size; drop --size auto")
    if world.size > 1:
        raise TextgenError("--size auto times one process; give the size (--hidden-size, --num-layers) with --nproc")
    given = {f: getattr(c, f) for f in SHAPE_FIELDS if f in explicit}
    candidates = eligible(given)
    if not candidates:
        shown = " ".join(f"{option(f)} {v}" for f, v in given.items())
        sizes = ", ".join(k.label for k in CANDIDATES)
        raise TextgenError(f"--size auto chooses among {sizes}; none has {shown}: drop it or --size auto")
    return candidates


def choose_size(
    config: TrainConfig, candidates: tuple[Candidate, ...], explicit: frozenset[str], timer: StepTimer
) -> tuple[TrainConfig, Choice, float]:
    """--size auto: time the candidate sizes with `timer` and take the one the rule picks for the budget; every
    setting the user gave wins over the candidate's. Returns the config with the choice, the choice, and the
    seconds the timing took (they count in the budget)."""
    choice, seconds = calibrate(candidates, 60.0 * (config.minutes or 0.0), timer)
    chosen = {k: v for k, v in choice.candidate.settings().items() if k not in explicit}
    return replace(config, **chosen), choice, seconds


def model_shape(config: TrainConfig, vocab_size: int) -> str:
    """What a step's speed depends on besides the machine, in words: ``2×640 LSTM, embedding 64, batch 32×128``."""
    m, c = config.model_config(vocab_size), config
    return f"{m.num_layers}×{m.hidden_size} {m.cell_title}, embedding {m.embed_dim}, batch {c.batch_size}×{c.seq_len}"


def choose_precision(config: TrainConfig, vocab_size: int, timer: ConfigTimer) -> PrecisionChoice:
    """--precision auto on a CPU with native bf16: fp32 or bf16, whichever trains the model of `config` faster
    here (`precision`: cached per machine and shape, else timed with `timer`, within a --minutes budget)."""
    machine = Machine(cpu_name(), torch.__version__, torch.get_num_threads())
    budget_s = None if config.minutes is None else 60.0 * config.minutes
    return decide(machine, model_shape(config, vocab_size), lambda: timer(config, PRECISIONS), budget_s=budget_s)


@dataclass(frozen=True)
class Fitted:
    """The run fitted to the machine: its config (with --size auto's choice), its precision, what each automatic
    choice decided (None where it did not apply), and the seconds their timing took, counted in the budget."""

    config: TrainConfig
    precision: str
    size: Choice | None
    precision_choice: PrecisionChoice | None
    seconds: float

    def lines(self) -> list[str]:
        """The one line each automatic choice says before training; with both, the precision's timing is the
        sizes' (each size timed in both), so the size line says what the two took."""
        out = []
        if self.precision_choice is not None:
            out.append(self.precision_choice.line(with_sizes=self.size is not None))
        if self.size is not None:
            out.append(f"{self.size.line()}, timed in {self.seconds:.1f} s of the budget")
        return out


def fit_to_machine(
    config: TrainConfig,
    data: Data,
    explicit: frozenset[str],
    world: World,
    device: torch.device,
    precision: str,
    new_run: bool,
    step_timer: StepTimer | None = None,
    config_timer: ConfigTimer | None = None,
) -> Fitted:
    """--precision auto (where `precision` is "auto": `hardware.pick_precision` left it to timing) and --size
    auto (a new run with `config.size` "auto"), chosen together.

    The precision alone is timed on the model the run trains. With both, every candidate size is timed in both
    precisions (or in the one the cache holds for its shape: then once), sized by the faster, and the run trains
    the chosen size in its faster precision: the ratio of the two is not the same at every size (a small model's
    step is less matrix product), so a precision chosen on one size would be a guess for the others. Under
    torchrun rank 0 decides and the others wait for its answer (`share_precision`, after the set-up).
    `step_timer` replaces the timing of sizes in a given precision, `config_timer` every timing where the
    precision is automatic (tests inject timings)."""
    candidates = size_candidates(config, explicit, world) if new_run and config.size == "auto" else None
    auto = precision == "auto" and world.is_main
    if not auto and candidates is None:
        return Fitted(config, precision, None, None, 0.0)
    vocab_size = len(data.vocab)
    timer = config_timer or time_steps(config, vocab_size, data.model_ids(data.train_tokens), device)
    if candidates is None:
        decided = choose_precision(config, vocab_size, timer)
        return Fitted(config, decided.precision, None, decided, decided.spent_s)
    if not auto:
        fixed = step_timer or (lambda k: median_step(timer, replace(config, **k.settings()), precision))
        config, size, seconds = choose_size(config, candidates, explicit, fixed)
        return Fitted(config, precision, size, None, seconds)
    decisions: dict[str, PrecisionChoice] = {}

    def both(candidate: Candidate) -> float:
        c = replace(config, **candidate.settings())
        d = decisions[candidate.label] = choose_precision(c, vocab_size, timer)
        # A cached decision's timing is another run's: this run's sizes are timed now, in its precision.
        return median_step(timer, c, d.precision) if d.cached or not d.compared else d.step_seconds[d.precision]

    config, size, seconds = choose_size(config, candidates, explicit, both)
    decided = decisions[size.candidate.label]
    return Fitted(config, decided.precision, size, decided, seconds)


#: Precisions by number, for sending rank 0's choice to the other ranks.
_PRECISION_CODES = ("fp32", "bf16", "fp16")


def share_precision(world: World, precision: str) -> str:
    """Rank 0's precision on every rank (the others left "auto" to it): every rank must autocast alike."""
    if world.size == 1:
        return precision
    code = _PRECISION_CODES.index(precision) if world.is_main else -1
    return _PRECISION_CODES[int(world.gather(torch.tensor([float(code)]))[0].item())]


def build_model(
    config: TrainConfig,
    model_config: ModelConfig,
    device: torch.device,
    precision: str,
    world: World,
    start: ckpt.Checkpoint | None,
) -> tuple[CharLSTM, torch.nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The model (from the --init weights if any) and what trains it: the module that trains (under torchrun,
    the wrapper that averages gradients across ranks), the optimiser and the loss scaler."""
    c = config
    torch.manual_seed(c.seed)
    model = CharLSTM(model_config).to(device)
    if start is not None:
        model.load_numpy(start.tensors)
    if world.rank:
        torch.manual_seed(c.seed + world.rank)  # own dropout masks; rank 0 keeps a 1-process run's
    net: torch.nn.Module = model
    if world.size > 1:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return model, net, optimizer, scaler
