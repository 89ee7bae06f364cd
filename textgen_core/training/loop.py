"""The training loop: truncated BPTT over contiguous streams, evaluated in bits per character, resumable exactly.

Each step feeds the next ``seq_len`` characters of every stream (`batching`); every position predicts its next
character and the LSTM state carries over from the previous chunk of the same stream (detached), so the model sees
long context while backpropagating through ``seq_len`` steps only. The learning rate follows progress through the
budget (`schedule`). Every ``eval_every`` steps the run is evaluated (`evaluation`), the best weights are saved as
the run's model and the whole state as its resume file (`runfolder`); every file is replaced atomically.

Under torchrun (`distributed`) each rank trains on its own block of the streams and DistributedDataParallel
averages the gradients. Rank 0 alone evaluates, reports and writes files; the resume file holds the state of every
stream (gathered from all ranks) and every rank's RNG. Corpora of `tokenfile.MIN_BYTES` or more are read from a
memory-mapped token file in the run folder.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from .. import checkpoint as ckpt
from .. import tokenfile
from ..corpus import Corpus, Source, load_corpus
from ..errors import TextgenError
from ..runfolder import RESUME_NAME, append_metrics, check_new_run, read_resume
from ..sampling import LN2
from ..vocab import Vocabulary
from .averaging import moving_average
from .batching import epoch_offset, ids_to_device, rank_streams, steps_per_epoch, stream_batch
from .calibrate import StepTimer, calibrate, measure_step
from .config import TrainConfig, check_fixed_fields, merge_resumed, with_budget
from .distributed import World
from .evaluation import EVAL_MAX_CHARS, evaluate_bpc, sample_texts
from .events import EvalStats, Reporter, StepStats
from .finetune import adopt_start, init_record, load_start, model_ids
from .hardware import check_fits, use_device
from .model import CharLSTM
from .schedule import budget_fraction, lr_at, total_steps
from .sizing import CANDIDATES, SHAPE_FIELDS, Choice, eligible
from .step import backward

#: A resume file's contents: its tensors and its metadata (`runfolder.read_resume`).
Saved = tuple[dict[str, np.ndarray], dict]


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
        step_timer: StepTimer | None = None,
    ):
        """`explicit` names the config fields the user set on the command line; on --resume, a fixed field set
        to a different value than the run's is refused rather than silently ignored. `step_timer` replaces the
        timing of candidate sizes for `--size auto` (tests inject timings)."""
        self.reporter = reporter or Reporter()
        self.command = command if command is not None else shlex.join(["textgen", *sys.argv[1:]])
        self.out = Path(config.out)
        self.world = World.current()
        # Everything that can refuse the run happens on rank 0 first, so a user error is reported once.
        with self.world.main_first():
            saved, start = self._settle_config(config, resume, explicit)
            self.device, self.precision = use_device(self.config.device, self.config.precision, self.world)
            self.corpus = self._load_corpus()
            if saved is not None:
                self._check_same_data(saved[1], given=config, explicit=explicit)
            train_tokens = self._prepare_data(saved, start)
            #: What --size auto chose (None otherwise), and the seconds its timing took: counted in the budget.
            self.size_choice: Choice | None = None
            self.calibration_s = 0.0
            if saved is None and self.config.size == "auto":
                self._choose_size(train_tokens, explicit, step_timer)
            self.model_config = self.config.model_config(len(self.vocab))
            check_fits(self.model_config, self.config.batch_size, self.config.seq_len, self.device)
        self._build_model(start, saved)
        b, r, n = self.config.batch_size, self.world.rank, self.world.size
        self.streams = rank_streams(train_tokens, b, r, n)
        self.steps_per_epoch = steps_per_epoch(self.streams, self.config.seq_len)
        self.total_steps = total_steps(self.config, self.steps_per_epoch)
        self.state = self.model.initial_state(b, self.device)
        self.step = 0
        self.elapsed = self.calibration_s
        self.best_val = math.inf
        self.best_step = 0
        if saved is not None:
            self._restore(*saved)
        # Built after the restore, so that a resumed run that turns --ema on averages from the weights it resumes
        # with.
        self.averaged = self._build_average(saved)
        self._stop_requested = False

    @property
    def weights(self) -> CharLSTM:
        """The model that is evaluated, saved and sampled: the moving average with --ema, else the one training."""
        return self.model if self.averaged is None else self.averaged.module  # type: ignore[return-value]

    # ----- set-up --------------------------------------------------------------------------------------
    def _settle_config(
        self, config: TrainConfig, resume: bool, explicit: frozenset[str]
    ) -> tuple[Saved | None, ckpt.Checkpoint | None]:
        """Set `self.config` from the command's config and, where there is one, the resumed run or the --init
        checkpoint; return the resume state and the start checkpoint (a resumed run has its own weights)."""
        if not resume:
            check_new_run(self.out)
        saved = read_resume(self.out) if resume else None
        start = None
        if saved is not None:
            self._check_world_size(saved[1])
            config = merge_resumed(config, saved[1]["config"], explicit)
        elif config.init is not None:
            start = load_start(config.init)
            config = adopt_start(config, start, explicit)
        self.config = with_budget(config)
        return saved, start

    def _choose_size(self, train_tokens: np.ndarray, explicit: frozenset[str], timer: StepTimer | None) -> None:
        """--size auto: time the candidate sizes here and take the one the rule picks for the budget; every
        setting the user gave wins over the candidate's."""
        c = self.config
        if c.minutes is None:
            raise TextgenError(
                "--size auto fits the model to a --minutes budget; give --minutes, or give the size "
                "(--hidden-size, --num-layers) for a --steps or --epochs budget"
            )
        if c.init is not None:
            raise TextgenError("--init keeps its checkpoint's size; drop --size auto")
        if self.world.size > 1:
            raise TextgenError(
                "--size auto times one process; give the size (--hidden-size, --num-layers) with --nproc"
            )
        given = {f: getattr(c, f) for f in SHAPE_FIELDS if f in explicit}
        candidates = eligible(given)
        if not candidates:
            shown = " ".join(f"--{f.replace('_', '-')} {v}" for f, v in given.items())
            sizes = ", ".join(k.label for k in CANDIDATES)
            raise TextgenError(f"--size auto chooses among {sizes}; none has {shown}: drop it or --size auto")
        if timer is None:
            timer = measure_step(c, len(self.vocab), self._model_ids(train_tokens), self.device, self.precision)
        self.size_choice, self.calibration_s = calibrate(candidates, 60.0 * c.minutes, timer)
        chosen = {k: v for k, v in self.size_choice.candidate.settings().items() if k not in explicit}
        self.config = replace(c, **chosen)
        self.reporter.note(f"{self.size_choice.line()}, timed in {self.calibration_s:.1f} s of the budget")

    def _load_corpus(self) -> Corpus:
        """In memory, or (for large corpora) as a map of the run's token file, which is built on first use."""
        c = self.config
        settings = dict(encoding=c.encoding, lowercase=c.lowercase, max_vocab=c.max_vocab)
        if tokenfile.corpus_bytes(c.corpus) < tokenfile.MIN_BYTES:
            return load_corpus(c.corpus, **settings)
        return tokenfile.load_token_corpus(c.corpus, self.out, progress=self.reporter.reading, **settings)

    def _prepare_data(self, saved: Saved | None, start: ckpt.Checkpoint | None) -> np.ndarray:
        """Set the model's vocabulary and the validation tokens; return the training tokens.

        The model's vocabulary is the corpus's own, or that of the checkpoint the run started from (or resumes),
        which must hold every character of the corpus; `_lut` maps the corpus's ids to the model's."""
        self.vocab: Vocabulary = self.corpus.vocab
        self._lut: np.ndarray | None = None
        if start is not None:
            self.vocab = start.vocab
            self._lut = model_ids(self.corpus.vocab, self.vocab, "--init", "drop --init to train a new model")
        elif saved is not None:
            self.vocab = Vocabulary(saved[1]["vocab"])
            self._lut = model_ids(self.corpus.vocab, self.vocab, "--resume", "start a new --out")
        train_tokens, val_tokens = self.corpus.split(self.config.val_fraction)
        self.val_tokens = self._model_ids(val_tokens[:EVAL_MAX_CHARS])
        self._check_sizes(len(train_tokens))
        return train_tokens

    def _model_ids(self, ids: np.ndarray) -> np.ndarray:
        """Token ids of the corpus as the model's vocabulary numbers them."""
        return ids if self._lut is None else self._lut[ids]

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

    def _build_model(self, start: ckpt.Checkpoint | None, saved: Saved | None) -> None:
        """The model (from the --init weights if any), what trains it, and the record of where it came from."""
        c = self.config
        torch.manual_seed(c.seed)
        self.model = CharLSTM(self.model_config).to(self.device)
        #: Where the weights came from, kept in every checkpoint of the run.
        self.init_record: dict | None = saved[1].get("init") if saved is not None else None
        if start is not None:
            self.model.load_numpy(start.tensors)
            self.init_record = init_record(c.init, start)  # type: ignore[arg-type]
        if self.world.rank:
            torch.manual_seed(c.seed + self.world.rank)  # own dropout masks; rank 0 keeps a 1-process run's
        # `net` is what trains (it averages gradients across ranks); `model` is the plain module we evaluate and save.
        self.net: torch.nn.Module = self.model
        if self.world.size > 1:
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=self.device.type == "cuda"
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def _build_average(self, saved: Saved | None) -> AveragedModel | None:
        """With --ema, the moving average of the weights (restored from the resume file when it holds one)."""
        if self.config.ema <= 0:
            return None
        averaged = moving_average(self.model, self.config.ema)
        if saved is not None and saved[1].get("ema_updates"):
            tensors = self._model_tensors(saved[0], "ema/")
            if tensors.keys() != self.model_config.tensor_shapes().keys():
                raise TextgenError(
                    f"{self.out / RESUME_NAME}: resume state is incomplete (lacks the moving average of the "
                    "weights); resume with --ema 0 or start a new --out"
                )
            averaged.module.load_numpy(tensors)
            averaged.n_averaged.fill_(int(saved[1]["ema_updates"]))
        return averaged

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

    def _check_same_data(self, meta: dict, given: TrainConfig, explicit: frozenset[str]) -> None:
        saved_sources = [Source.from_dict(s) for s in meta["sources"]]
        now = [(s.name, s.sha256) for s in self.corpus.sources]
        if now != [(s.name, s.sha256) for s in saved_sources]:
            raise TextgenError(
                f"--resume: the corpus differs from the run's ({', '.join(s.name for s in saved_sources)}); "
                "give the same files or start a new --out"
            )
        check_fixed_fields(given, self.config, explicit)

    @staticmethod
    def _model_tensors(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        """The weights stored under `prefix` in a resume file, keyed by checkpoint names."""
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    def _restore(self, tensors: dict[str, np.ndarray], meta: dict) -> None:
        self.model.load_numpy(self._model_tensors(tensors, "model/"))
        opt_state: dict = {"state": {}, "param_groups": meta["param_groups"]}
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
        return budget_fraction(self.config, self.total_steps, self.step, self.elapsed)

    def done(self) -> bool:
        return self.budget_fraction() >= 1.0

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (used by the Ctrl-C handler)."""
        self._stop_requested = True

    def _train_step(self) -> float:
        """One optimisation step on the next chunk of every stream; returns its loss in bits per character."""
        c = self.config
        epoch, index = divmod(self.step, self.steps_per_epoch)
        if index == 0:
            self.state = self.model.initial_state(c.batch_size, self.device)
        batch = stream_batch(self.streams, epoch_offset(c.seed, epoch, c.seq_len), index, c.seq_len)
        x, y = (ids_to_device(self._model_ids(a), self.device) for a in batch)
        lr = lr_at(c, self.step, self.budget_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, state = backward(
            self.net, self.model, self.optimizer, self.scaler, self.precision, x, y, self.state, c.clip
        )
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
        append_metrics(self.out, {k: v for k, v in asdict(stats).items() if k != "samples"})
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
        """Continuations of the start of the validation text at the book's temperatures."""
        return sample_texts(
            self.model_config,
            self.weights.to_numpy(),
            self.vocab,
            self.vocab.decode(self.val_tokens[:40]),
            self.config.sample_len,
            np.random.default_rng([self.config.seed, self.step]),
            lowercase=self.config.lowercase,
        )

    def _step_stats(self, train_bpc: float, chars_per_s: float) -> StepStats:
        return StepStats(
            step=self.step,
            total_steps=self.total_steps,
            epoch=self.step / self.steps_per_epoch,
            train_bpc=train_bpc,
            lr=self.optimizer.param_groups[0]["lr"],
            chars_per_s=chars_per_s,
            elapsed=self.elapsed,
            budget_fraction=self.budget_fraction(),
        )

    def _checkpoint(self, window: list[float], stop: bool) -> None:
        """Evaluate (rank 0; not on a stop once a best model exists: the user is waiting) and save the resume state."""
        if self.world.is_main and (not stop or not (self.out / ckpt.WEIGHTS_NAME).exists()):
            self.reporter.evaluated(self.evaluate(sum(window) / len(window)))
        path = self.save_resume()
        if path is not None:
            self.reporter.saved(path, "resume")
        self.corpus.release()  # bounds the resident set of a mapped corpus to what a few hundred steps read

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
            self.reporter.step(self._step_stats(window[-1], chars / max(1e-9, now - mark_t)))
            if self.step % c.eval_every == 0 or self.done() or stop:
                self._checkpoint(window, stop)
                window = []
                mark_t, mark_step = time.monotonic(), self.step  # evaluation does not count in chars/s
            if stop:
                self.reporter.finish(self, "interrupted")
                return "interrupted"
        self.reporter.finish(self, "done")
        return "done"
