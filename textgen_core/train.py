"""Training: truncated BPTT over contiguous streams, evaluation in bits per character, safe resumable runs.

The training text is cut into ``batch_size`` contiguous streams. Each step feeds the next ``seq_len`` characters
of every stream; every position predicts its next character and the LSTM state carries over from the previous
chunk of the same stream (detached), so the model sees long context while backpropagating through
``seq_len`` steps only. Each epoch starts the streams at a new random offset (< seq_len) so chunk boundaries
move. A run folder holds:

- ``model.safetensors``: the weights with the best validation bpc so far (what users sample from);
- ``resume.safetensors``: the latest weights (and their moving average with ``ema``), Adam moments, LSTM stream
  state, RNG state and progress;
- ``metrics.jsonl``: one line per evaluation.

Every file is replaced atomically. The learning-rate schedule is a function of progress through the budget
(steps, or elapsed time for ``minutes``), so a resumed run follows the same curve as an uninterrupted one.

Under torchrun (`distributed`) the corpus is cut into ``world size × batch_size`` streams and each rank trains on
its own contiguous block of them, so a run with N ranks sees the data exactly as one process with batch
``N × batch_size`` would; DistributedDataParallel averages the gradients. Rank 0 alone evaluates, reports and
writes files; the resume file holds the state of every stream (gathered from all ranks) and every rank's RNG.
Corpora of `tokenfile.MIN_BYTES` or more are read from a memory-mapped token file in the run folder.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from . import checkpoint as ckpt
from . import tokenfile
from .config import (
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
from .corpus import DEFAULT_MAX_VOCAB, Corpus, Source, load_corpus
from .distributed import World
from .errors import TextgenError
from .model import CharLSTM
from .vocab import Vocabulary

RESUME_NAME = ckpt.RESUME_NAME
#: Metadata every resume file holds; a file lacking one was damaged or hand-edited.
RESUME_KEYS = ("config", "sources", "vocab", "step", "elapsed", "best_val", "best_step", "param_groups")
#: Optimisation settings a --resume may change when given explicitly (a run that turns --ema on averages from
#: the weights it resumes with).
RESUME_MAY_CHANGE = ("lr", "clip", "ema")
BUDGET_FIELDS = ("steps", "minutes", "epochs")
METRICS_NAME = "metrics.jsonl"
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)
LN2 = math.log(2.0)
Rows = TypeVar("Rows", np.ndarray, torch.Tensor)
#: Evaluations score at most this many characters (the start of the validation split; more than the held-out
#: tenth of Nietzsche or tiny Shakespeare): a multi-GB corpus's tenth would take hours to score at every
#: evaluation and need gigabytes of int64 ids. (Scoring the default model on 2 CPU cores: ~9k chars/s measured
#: on the shared machine, so this cap alone costs ~30 s there.)
EVAL_MAX_CHARS = 1 << 18
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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


@dataclass
class StepStats:
    step: int
    total_steps: int | None
    epoch: float
    train_bpc: float
    lr: float
    chars_per_s: float
    elapsed: float
    budget_fraction: float


@dataclass
class EvalStats:
    step: int
    epoch: float
    train_bpc: float | None
    val_bpc: float
    best_val_bpc: float
    best_step: int
    improved: bool
    elapsed: float
    samples: dict[float, str] = field(default_factory=dict)


class Reporter:
    """Receives progress events. The CLI renders them with rich; tests and library users may ignore them."""

    def start(self, run: Trainer) -> None: ...
    def step(self, stats: StepStats) -> None: ...
    def evaluated(self, stats: EvalStats) -> None: ...
    def saved(self, path: Path, reason: str) -> None: ...
    def finish(self, run: Trainer, reason: str) -> None: ...
    def reading(self, what: str, done: int, total: int) -> None:
        """Progress of a pass over a large corpus (building or checking its token file), in bytes."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextgenError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise TextgenError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """True where bf16 matrix kernels are native (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(name: str, device: torch.device) -> str:
    """`auto` = bf16 autocast where the hardware has it: measured 2× faster per step on a 2×512 LSTM here
    with equal or better bpc at a fixed time budget (README, "Choosing the defaults"). fp16 (for GPUs without
    bf16) scales the loss with a GradScaler so small gradients do not underflow."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if name not in ("bf16", "fp16", "fp32"):
        raise TextgenError(f"--precision {name!r}: choose auto, bf16, fp16 or fp32")
    if name == "fp16" and device.type != "cuda":
        raise TextgenError("--precision fp16 is for CUDA GPUs; on a CPU use bf16 or fp32")
    return name


def ema_update(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """`AveragedModel`'s update for an exponential moving average of the weights.

    The decay ramps up as (1 + n) / (10 + n) over the first updates (as TensorFlow's ExponentialMovingAverage
    does with `num_updates`), so a short run's average is not dominated by its first, untrained weights."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


def check_fits(model: ModelConfig, batch_size: int, seq_len: int, device: torch.device) -> None:
    """Refuse a model that cannot fit the device's memory before building it: torch would fail with a long
    allocation error, or (where the system overcommits memory) start and be killed by the OOM killer later."""
    need = model.training_bytes(batch_size, seq_len)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not POSIX: let torch report it
            return
    if need > total:
        raise TextgenError(
            f"a {model.describe()} at batch {batch_size}×{seq_len} needs at least {need / 2**30:,.1f} GiB to train "
            f"and this {device.type} has {total / 2**30:,.1f} GiB; lower --hidden-size, --num-layers, --embed-dim, "
            "--batch-size or --seq-len"
        )


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_streams(tokens: np.ndarray, n_streams: int) -> np.ndarray:
    """Cut `tokens` into `n_streams` equal contiguous rows (the tail that does not divide evenly is dropped)."""
    length = len(tokens) // n_streams
    return np.ascontiguousarray(tokens[: n_streams * length].reshape(n_streams, length))


def stream_batch(streams: Rows, offset: int, index: int, seq_len: int) -> tuple[Rows, Rows]:
    """Inputs and targets (inputs shifted by one) for chunk `index` of every stream, starting at `offset`."""
    start = offset + index * seq_len
    return streams[:, start : start + seq_len], streams[:, start + 1 : start + seq_len + 1]


def ids_to_device(ids: np.ndarray, device: torch.device) -> torch.Tensor:
    """A copy of `ids` (any integer array, a memory map's slice included) as int64 on `device`.

    On CUDA the copy goes through pinned host memory, so the transfer is asynchronous."""
    t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


def epoch_offset(seed: int, epoch: int, seq_len: int) -> int:
    """Deterministic per-epoch start offset, so a resumed run sees the same chunks as an uninterrupted one."""
    return int(np.random.default_rng([seed, epoch]).integers(0, seq_len))


BUNDLED = "bundled"


def adopt_start(config: TrainConfig, start: ckpt.Checkpoint, explicit: frozenset[str]) -> TrainConfig:
    """The config of a run that starts from `start`: the checkpoint's shape and case, and its regularisation
    unless the command gives other values. A shape flag that contradicts the checkpoint is refused."""
    if start.config.recurrent_activation != "sigmoid":  # training's nn.LSTM has only the sigmoid
        raise TextgenError(
            f"--init: the checkpoint's gates use {start.config.recurrent_activation}, which training cannot; "
            "train a new model instead"
        )
    have = {f: getattr(start.config, f) for f in ("embed_dim", "hidden_size", "num_layers")}
    have["lowercase"] = start.meta.lowercase
    for name, value in have.items():
        if name in explicit and getattr(config, name) != value:
            flag = f"--{name.replace('_', '-')}"
            raise TextgenError(
                f"--init: {flag} {getattr(config, name)} differs from the checkpoint's {value}; drop {flag}"
            )
    regularisation = {f: getattr(start.config, f) for f in ("dropout", "embed_dropout", "weight_drop")}
    return replace(config, **have, **{f: v for f, v in regularisation.items() if f not in explicit})


def model_ids(corpus: Vocabulary, model: Vocabulary, flag: str, fix: str) -> np.ndarray | None:
    """The model's id for each of the corpus's ids (None when the vocabularies are the same). A character the
    model cannot represent is refused: a one-line error about `flag`, ending in `fix`."""
    if corpus == model:
        return None
    missing = "".join(ch for ch in corpus.chars if ch not in model)
    if missing:
        raise TextgenError(f"{flag}: the corpus has {missing[:20]!r}, which the model's vocabulary lacks; {fix}")
    return np.array([model.index(ch) for ch in corpus.chars], dtype=np.int64)


def check_new_run(out: Path) -> None:
    """Refuse to start a new run in a folder that holds one: its first evaluation would replace the trained model.

    A folder with only `model.safetensors` (a finished run whose resume file was deleted to save space, or a copied
    checkpoint) is refused too, as it cannot be resumed either."""
    if (out / RESUME_NAME).exists():
        raise TextgenError(f"--out {out} already holds a run; add --resume to continue it, or choose another --out")
    if (out / ckpt.WEIGHTS_NAME).exists():
        raise TextgenError(
            f"--out {out} already holds a trained model ({ckpt.WEIGHTS_NAME}); choose another --out, or move the "
            "model away"
        )


def read_resume(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The tensors and metadata of `out`'s resume file, checked to hold what a resume needs."""
    from safetensors import safe_open

    path = out / RESUME_NAME
    if not path.exists():
        raise TextgenError(f"{out}: nothing to resume (no {RESUME_NAME}); drop --resume to start a new run")
    try:
        # Tensor by tensor from the file: reading it whole first would hold the resume state twice.
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["resume"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except Exception as e:  # corrupt resume state: say so, never traceback
        raise TextgenError(f"{path}: resume state is unreadable ({str(e).splitlines()[0][:100]})") from None
    missing = [k for k in RESUME_KEYS if not isinstance(meta, dict) or k not in meta]
    missing += [k for k in ("stream/h", "stream/c", "rng/torch") if k not in tensors]
    if missing or not isinstance(meta.get("config"), dict):
        raise TextgenError(
            f"{path}: resume state is incomplete (lacks {', '.join(missing) or 'config'}); "
            "start a new --out (model.safetensors there is still usable)"
        )
    return tensors, meta


@torch.no_grad()
def evaluate_bpc(
    model: CharLSTM,
    tokens: np.ndarray,
    device: torch.device,
    n_streams: int = 16,
    burn_in: int = 256,
    chunk: int = 512,
) -> float:
    """Bits per character of `tokens` under `model` (fp32, no dropout).

    Every character after the first is scored once. For speed the text is scored as `n_streams` parallel
    pieces; each piece (but the first) first reads the `burn_in` characters before it without scoring them,
    so its first predictions have context, and the result matches a single pass over the whole text closely.
    """
    n = len(tokens)
    if n < 2:
        raise TextgenError("the validation split has fewer than 2 characters; use more text or a larger --val-fraction")
    was_training = model.training
    model.eval()
    n_streams = max(1, min(n_streams, (n - 1) // 64 or 1))
    per = math.ceil((n - 1) / n_streams)
    rows, masks = [], []
    for b in range(n_streams):
        first, last = 1 + b * per, min(1 + (b + 1) * per, n)
        if first >= last:
            continue
        start = max(0, first - 1 - burn_in)
        seq = tokens[start:last]
        rows.append(seq)
        m = np.zeros(len(seq) - 1, dtype=bool)
        m[first - 1 - start :] = True
        masks.append(m)
    width = max(len(r) for r in rows)
    x = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width - 1), dtype=bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        x[i, : len(r)] = r
        mask[i, : len(m)] = m
    xt = ids_to_device(x, device)
    mt = torch.from_numpy(mask).to(device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = None
    for s in range(0, width - 1, chunk):
        inp, tgt = xt[:, s : s + chunk], xt[:, s + 1 : s + chunk + 1]
        inp = inp[:, : tgt.shape[1]]
        logits, state = model(inp, state)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none")
        total += (nll * mt[:, s : s + tgt.shape[1]].reshape(-1)).sum().double()
    model.train(was_training)
    return float(total) / (n - 1) / LN2


class Trainer:
    """One training run. Build with `Trainer(config)`, then `run()`; `resume=True` continues a run folder."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        explicit: frozenset[str] = frozenset(),
        reporter: Reporter | None = None,
        command: str | None = None,
    ):
        """`explicit` names the config fields the user set on the command line; on --resume, a fixed field set
        to a different value than the run's is refused rather than silently ignored."""
        self.reporter = reporter or Reporter()
        self.command = command if command is not None else shlex.join(["textgen", *sys.argv[1:]])
        self.out = Path(config.out)
        self.world = World.current()
        with self.world.main_first():
            if not resume:
                check_new_run(self.out)
            saved = read_resume(self.out) if resume else None
            given = config
            if saved is not None:
                self._check_world_size(saved[1])
                config = self._merge_resumed(config, saved[1], explicit)
                # Given explicitly, these apply on --resume too: it is how a diverged run goes on ("lower --lr").
                config = replace(config, **{f: getattr(given, f) for f in RESUME_MAY_CHANGE if f in explicit})
            # A run that starts from a checkpoint takes its shape and vocabulary (a resumed one has its weights).
            start = None
            if saved is None and config.init is not None:
                start = ckpt.load(None if config.init == BUNDLED else config.init)
                config = adopt_start(config, start, explicit)
            self.config = config
            self._check_budget()
            self.device = pick_device(config.device)
            if self.device.type == "cuda":  # under torchrun, the GPU of this rank (process_group selected it)
                self.device = torch.device("cuda", torch.cuda.current_device())
            self.precision = pick_precision(config.precision, self.device)
            if self.device.type == "cpu":
                torch.set_num_threads(max(1, cpu_threads() // self.world.local_size))
            self.corpus = self._load_corpus()
            if saved is not None:
                self._check_resume_matches(saved[1], given, explicit)
            #: The model's vocabulary: the corpus's own, or that of the checkpoint the run started from, which
            #: must hold every character of the corpus; `_lut` maps the corpus's ids to the model's.
            self.vocab = self.corpus.vocab
            self._lut: np.ndarray | None = None
            if start is not None:
                self.vocab = start.vocab
                self._lut = model_ids(self.corpus.vocab, self.vocab, "--init", "drop --init to train a new model")
            elif saved is not None:
                self.vocab = Vocabulary(saved[1]["vocab"])
                self._lut = model_ids(self.corpus.vocab, self.vocab, "--resume", "start a new --out")
            train_tokens, val_tokens = self.corpus.split(config.val_fraction)
            self.val_tokens = self._model_ids(val_tokens[:EVAL_MAX_CHARS])
            self._check_sizes(len(train_tokens))
            self.model_config = config.model_config(len(self.vocab))
            check_fits(self.model_config, config.batch_size, config.seq_len, self.device)

        torch.manual_seed(config.seed)
        self.model = CharLSTM(self.model_config).to(self.device)
        #: Where the weights came from, kept in every checkpoint of the run (the parent's command, step, val).
        self.init_record: dict | None = saved[1].get("init") if saved is not None else None
        if start is not None:
            self.model.load_numpy(start.tensors)
            self.init_record = {
                "checkpoint": config.init,
                "step": start.meta.step,
                "val_bpc": start.meta.val_bpc,
                "command": start.meta.command,
                "init": start.meta.extra.get("init"),  # the parent's own start, if it was fine-tuned too
            }
        if self.world.rank:
            torch.manual_seed(config.seed + self.world.rank)  # own dropout masks; rank 0 keeps a 1-process run's
        # `net` is what trains (it averages gradients across ranks); `model` is the plain module we evaluate and save.
        self.net: torch.nn.Module = self.model
        if self.world.size > 1:
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=self.device.type == "cuda",
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        # This rank's block of the world's streams. They stay uint8/uint16 on the host (a view of the corpus or of
        # its memory map): each step copies out one (batch, seq_len + 1) window as int64.
        b, r = config.batch_size, self.world.rank
        self.streams = make_streams(train_tokens, self.world.size * b)[r * b : (r + 1) * b]
        # Leave room for the per-epoch offset (< seq_len) and the one-character target shift.
        self.steps_per_epoch = (self.streams.shape[1] - 1 - config.seq_len) // config.seq_len
        self.state = self.model.initial_state(config.batch_size, self.device)
        self.step = 0
        self.elapsed = 0.0
        self.best_val = math.inf
        self.best_step = 0
        self.total_steps = self._total_steps()
        if saved is not None:
            self._restore(*saved)
        # With --ema the moving average of the weights is what is evaluated, saved and sampled. It averages away
        # the noise of steps taken at a high learning rate (0.003 bpc in the tail of the bundled model's run) and
        # changes next to nothing once the rate has annealed (README, "Choosing the defaults"). Built after the
        # restore, so that a resumed run that turns it on averages from the weights it resumes with.
        self.averaged: AveragedModel | None = None
        if config.ema > 0:
            self.averaged = AveragedModel(self.model, multi_avg_fn=ema_update(config.ema))
            if saved is not None and saved[1].get("ema_updates"):
                averaged = self._model_tensors(saved[0], "ema/")
                if averaged.keys() != self.model_config.tensor_shapes().keys():
                    raise TextgenError(
                        f"{self.out / RESUME_NAME}: resume state is incomplete (lacks the moving average of the "
                        "weights); resume with --ema 0 or start a new --out"
                    )
                self.weights.load_numpy(averaged)
                self.averaged.n_averaged.fill_(int(saved[1]["ema_updates"]))
        self._stop_requested = False

    @property
    def weights(self) -> CharLSTM:
        """The model that is evaluated, saved and sampled: the moving average with --ema, else the one training."""
        return self.model if self.averaged is None else self.averaged.module  # type: ignore[return-value]

    # ----- set-up --------------------------------------------------------------------------------------
    def _model_ids(self, ids: np.ndarray) -> np.ndarray:
        """Token ids of the corpus as the model's vocabulary numbers them."""
        return ids if self._lut is None else self._lut[ids]

    def _load_corpus(self) -> Corpus:
        """In memory, or (for large corpora) as a map of the run's token file, which is built on first use."""
        c = self.config
        settings = dict(encoding=c.encoding, lowercase=c.lowercase, max_vocab=c.max_vocab)
        if tokenfile.corpus_bytes(c.corpus) < tokenfile.MIN_BYTES:
            return load_corpus(c.corpus, **settings)
        return tokenfile.load_token_corpus(c.corpus, self.out, progress=self.reporter.reading, **settings)

    def _check_budget(self) -> None:
        c = self.config
        if sum(x is not None for x in (c.steps, c.minutes, c.epochs)) > 1:
            raise TextgenError("give one budget: --steps, --minutes or --epochs")
        if c.steps is None and c.minutes is None and c.epochs is None:
            self.config = replace(c, minutes=DEFAULT_MINUTES)

    def _check_sizes(self, n_train: int) -> None:
        c = self.config
        need = self.world.size * c.batch_size * (2 * c.seq_len + 2)
        if n_train < need:
            procs = f" and {self.world.size} processes" if self.world.size > 1 else ""
            raise TextgenError(
                f"corpus too short: {n_train} training characters, need at least {need} for --batch-size "
                f"{c.batch_size} and --seq-len {c.seq_len}{procs}; add text or lower --batch-size / --seq-len"
            )
        if len(self.val_tokens) < 2:
            raise TextgenError("the validation split is empty; add text or raise --val-fraction")

    def _total_steps(self) -> int | None:
        c = self.config
        if c.steps is not None:
            return c.steps
        if c.epochs is not None:
            return max(1, round(c.epochs * self.steps_per_epoch))
        return None

    # ----- resume --------------------------------------------------------------------------------------
    def _check_world_size(self, meta: dict) -> None:
        """Each rank continues its own streams and RNG, so a run resumes only with as many processes as it had."""
        saved = int(meta.get("world_size", 1))
        if saved != self.world.size:
            had, now = (f"{n} process{'es' if n > 1 else ''}" for n in (saved, self.world.size))
            raise TextgenError(
                f"--resume: the run was trained by {had} and this is {now}; resume it with "
                f"{'--nproc ' + str(saved) if saved > 1 else 'a single process (no --nproc, no torchrun)'}"
            )

    def _merge_resumed(self, given: TrainConfig, meta: dict, explicit: frozenset[str]) -> TrainConfig:
        """Saved settings win. A resume may change the budget, the evaluation cadence and the length of the
        evaluation samples by giving them; what it does not give goes on as the run had it, so
        `textgen train CORPUS --out RUN --resume` alone ends where the uninterrupted run would have. The device
        and precision are the machine's: the given ones apply.

        Fields the user set explicitly to a different value than the run's are refused in `_check_resume_matches`.
        """
        saved = TrainConfig.from_dict(meta["config"])
        changed = {"eval_every", "sample_len"} & explicit
        if explicit & set(BUDGET_FIELDS):  # a new budget replaces the old one, of whichever kind it was
            changed |= set(BUDGET_FIELDS)
        return replace(
            saved,
            **{f: getattr(given, f) for f in changed},
            out=given.out,
            device=given.device,
            precision=given.precision,
            corpus=given.corpus,
        )

    def _check_resume_matches(self, meta: dict, given: TrainConfig, explicit: frozenset[str]) -> None:
        saved_sources = [Source.from_dict(s) for s in meta["sources"]]
        now = [(s.name, s.sha256) for s in self.corpus.sources]
        if now != [(s.name, s.sha256) for s in saved_sources]:
            raise TextgenError(
                f"--resume: the corpus differs from the run's ({', '.join(s.name for s in saved_sources)}); "
                "give the same files or start a new --out"
            )
        for name in TrainConfig.FIXED:
            if name in explicit and getattr(given, name) != getattr(self.config, name):
                raise TextgenError(
                    f"--resume: --{name.replace('_', '-')} {getattr(given, name)} differs from the run's "
                    f"{getattr(self.config, name)}; drop the flag or start a new --out"
                )

    @staticmethod
    def _model_tensors(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        """The weights stored under `prefix` in a resume file, keyed by checkpoint names."""
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    def _restore(self, tensors: dict[str, np.ndarray], meta: dict) -> None:
        self.model.load_numpy(self._model_tensors(tensors, "model/"))
        opt_state = {
            "state": {},
            "param_groups": meta["param_groups"],
        }
        for k, v in tensors.items():
            if k.startswith("optim/"):
                _, idx, name = k.split("/")
                t = torch.from_numpy(v)
                if name == "step":
                    t = t.reshape(())
                opt_state["state"].setdefault(int(idx), {})[name] = t
        self.optimizer.load_state_dict(opt_state)
        if self.scaler.is_enabled() and meta.get("grad_scaler"):
            self.scaler.load_state_dict(meta["grad_scaler"])
        # Streams are saved for the whole world, (layers, world × batch, hidden); RNG states one row per rank.
        b, r, n = self.config.batch_size, self.world.rank, self.world.size
        h, c = (np.ascontiguousarray(tensors[f"stream/{k}"][:, r * b : (r + 1) * b]) for k in "hc")
        self.state = (torch.from_numpy(h).to(self.device), torch.from_numpy(c).to(self.device))
        torch.set_rng_state(torch.from_numpy(tensors["rng/torch"].reshape(n, -1)[r]))
        if self.device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(torch.from_numpy(tensors["rng/cuda"].reshape(n, -1)[r]), self.device)
        self.step = int(meta["step"])
        self.elapsed = float(meta["elapsed"])
        self.best_val = float(meta["best_val"]) if meta["best_val"] is not None else math.inf
        self.best_step = int(meta["best_step"])
        # A crash between writing model.safetensors and resume.safetensors can leave a better best on disk.
        best_path = self.out / ckpt.WEIGHTS_NAME
        if best_path.exists():
            best = ckpt.read_meta(best_path)
            if best.val_bpc is not None and best.val_bpc < self.best_val:
                self.best_val, self.best_step = best.val_bpc, best.step

    def save_resume(self) -> Path | None:
        """Write the resume file (rank 0; every rank must call this, as it gathers their state). Returns its path
        on rank 0."""
        # Every stream of the corpus, (layers, world × batch, hidden), and each rank's RNG state as one row.
        h, c = (self.world.gather(s.detach().float(), dim=1) for s in self.state)
        rng = self.world.gather(torch.get_rng_state()[None])
        cuda = self.device.type == "cuda"
        rng_cuda = self.world.gather(torch.cuda.get_rng_state(self.device)[None]) if cuda else None
        if not self.world.is_main:
            return None
        tensors: dict[str, np.ndarray] = {f"model/{k}": v for k, v in self.model.to_numpy().items()}
        if self.averaged is not None:
            tensors.update({f"ema/{k}": v for k, v in self.weights.to_numpy().items()})
        opt = self.optimizer.state_dict()
        for idx, st in opt["state"].items():
            for name, t in st.items():
                # Views of the live tensors (on CPU), not copies: the file is written before training goes on.
                tensors[f"optim/{idx}/{name}"] = (
                    t.detach().to("cpu", torch.float32).reshape(-1).numpy()
                    if name == "step"
                    else t.detach().cpu().numpy()
                )
        tensors["stream/h"] = h.cpu().numpy()
        tensors["stream/c"] = c.cpu().numpy()
        tensors["rng/torch"] = rng.numpy()
        if rng_cuda is not None:
            tensors["rng/cuda"] = rng_cuda.cpu().numpy()
        for name, arr in tensors.items():
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise TextgenError(f"refusing to save resume state: {name} contains NaN or Inf")
        meta = {
            "config": self.config.to_dict(),
            "sources": [s.to_dict() for s in self.corpus.sources],
            "vocab": self.vocab.chars,
            "init": self.init_record,
            "step": self.step,
            "elapsed": self.elapsed,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "best_step": self.best_step,
            "param_groups": opt["param_groups"],
            "world_size": self.world.size,
            "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "ema_updates": 0 if self.averaged is None else int(self.averaged.n_averaged),
        }
        path = self.out / RESUME_NAME
        ckpt.write_safetensors(path, tensors, {"resume": json.dumps(meta)})
        return path

    # ----- the loop ------------------------------------------------------------------------------------
    def budget_fraction(self) -> float:
        c = self.config
        if self.total_steps is not None:
            return min(1.0, self.step / self.total_steps)
        return min(1.0, self.elapsed / (60.0 * c.minutes))  # type: ignore[operator]

    def lr_at(self, fraction: float) -> float:
        """Linear warm-up, then cosine decay to `min_lr_ratio` of the peak at the end of the budget."""
        c = self.config
        warm = min(1.0, (self.step + 1) / max(1, c.warmup_steps))
        cos = 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
        return c.lr * warm * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cos)

    def done(self) -> bool:
        return self.budget_fraction() >= 1.0

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (used by the Ctrl-C handler)."""
        self._stop_requested = True

    def _train_step(self) -> float:
        c = self.config
        epoch, index = divmod(self.step, self.steps_per_epoch)
        if index == 0:
            self.state = self.model.initial_state(c.batch_size, self.device)
        batch = stream_batch(self.streams, epoch_offset(c.seed, epoch, c.seq_len), index, c.seq_len)
        x, y = (ids_to_device(self._model_ids(a), self.device) for a in batch)
        lr = self.lr_at(self.budget_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        dtype = AUTOCAST_DTYPES.get(self.precision)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits, state = self.net(x, self.state)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
        # The mean over ranks: the loss of the whole world's batch, and every rank stops together if it diverged.
        value = self.world.mean(float(loss.detach()))
        if not math.isfinite(value):
            raise TextgenError(
                f"training diverged at step {self.step + 1} (loss is {value}); the saved checkpoints are intact; "
                "lower --lr and --resume"
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        self.state = (state[0].detach().float(), state[1].detach().float())
        self.step += 1
        return value / LN2

    def evaluate(self, train_bpc: float | None) -> EvalStats:
        val = evaluate_bpc(self.weights, self.val_tokens, self.device)
        improved = val < self.best_val
        if improved:
            self.best_val, self.best_step = val, self.step
            self.save_best(train_bpc, val)
        stats = EvalStats(
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            train_bpc=train_bpc,
            val_bpc=val,
            best_val_bpc=self.best_val,
            best_step=self.best_step,
            improved=improved,
            elapsed=self.elapsed,
            samples=self.samples() if self.config.sample_len > 0 else {},
        )
        record = {k: v for k, v in asdict(stats).items() if k != "samples"}
        try:
            with open(self.out / METRICS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk must not end in a traceback; the checkpoints were written atomically
            raise TextgenError(
                f"{self.out / METRICS_NAME}: could not write ({e.strerror or e}); the checkpoints are intact; "
                "free space and --resume"
            ) from None
        return stats

    def save_best(self, train_bpc: float | None, val_bpc: float) -> None:
        meta = ckpt.CheckpointMeta(
            config=self.model_config,
            vocab=self.vocab,
            lowercase=self.config.lowercase,
            corpus=self.corpus.sources,
            step=self.step,
            train_bpc=train_bpc,
            val_bpc=val_bpc,
            command=self.command,
            extra={"precision": self.precision, "seq_len": self.config.seq_len, "ema": self.config.ema}
            | ({"init": self.init_record} if self.init_record else {}),
        )
        path = self.out / ckpt.WEIGHTS_NAME
        ckpt.save(path, self.weights.to_numpy(), meta)
        self.reporter.saved(path, "best")

    def samples(self) -> dict[float, str]:
        """Continuations of the start of the validation text at the book's temperatures, drawn in one pass."""
        from .generate import sample_many
        from .inference import NumpyLSTM
        from .sampling import SamplingSettings

        vocab = self.vocab
        prompt = vocab.decode(self.val_tokens[:40])
        settings = [SamplingSettings(temperature=t) for t in SAMPLE_TEMPERATURES]
        model = NumpyLSTM(self.model_config, self.weights.to_numpy())
        rng = np.random.default_rng([self.config.seed, self.step])
        texts = ["" for _ in settings]
        for tokens in sample_many(
            model, vocab, prompt, settings, self.config.sample_len, rng, lowercase=self.config.lowercase
        ):
            for i, tok in enumerate(tokens):
                texts[i] += tok.char
        return {t: prompt + s for t, s in zip(SAMPLE_TEMPERATURES, texts, strict=True)}

    def run(self, should_stop: Callable[[Trainer], bool] | None = None) -> str:
        """Train until the budget is spent or a stop is requested; returns "done" or "interrupted"."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TextgenError(f"--out {self.out}: cannot create it ({e.strerror or e}); choose another") from None
        c = self.config
        self.reporter.start(self)
        if self.done():
            self.reporter.finish(self, "done")
            return "done"
        window: list[float] = []
        mark_t, mark_step = time.monotonic(), self.step
        last = time.monotonic()
        reason = "done"
        self.model.train()
        while not self.done():
            window.append(self._train_step())
            now = time.monotonic()
            stop = self._stop_requested or (should_stop is not None and should_stop(self))
            # Ranks must decide alike: stop at the same step (a Ctrl-C reaches them at different moments), and
            # share one clock so that a --minutes budget runs out at the same step everywhere.
            stop, self.elapsed = self.world.agree(stop, self.elapsed + now - last)
            last = now
            chars = (self.step - mark_step) * self.world.size * c.batch_size * c.seq_len
            rate = chars / max(1e-9, now - mark_t)
            self.reporter.step(
                StepStats(
                    step=self.step,
                    total_steps=self.total_steps,
                    epoch=self.step / self.steps_per_epoch,
                    train_bpc=window[-1],
                    lr=self.optimizer.param_groups[0]["lr"],
                    chars_per_s=rate,
                    elapsed=self.elapsed,
                    budget_fraction=self.budget_fraction(),
                )
            )
            if self.step % c.eval_every == 0 or self.done() or stop:
                if self.world.is_main and (not stop or not (self.out / ckpt.WEIGHTS_NAME).exists()):
                    self.reporter.evaluated(self.evaluate(sum(window) / len(window)))
                window = []
                path = self.save_resume()
                if path is not None:
                    self.reporter.saved(path, "resume")
                self.corpus.release()  # bounds the resident set of a mapped corpus to what a few hundred steps read
                mark_t, mark_step = time.monotonic(), self.step  # evaluation does not count in chars/s
            if stop:
                reason = "interrupted"
                break
        self.reporter.finish(self, reason)
        return reason
