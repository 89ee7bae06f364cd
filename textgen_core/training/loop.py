"""The training loop: truncated BPTT over contiguous streams, evaluated in bits per character, resumable exactly.

Each step feeds the next ``seq_len`` characters of every stream (`batching`); every position predicts its next
character and the LSTM state carries over from the previous chunk of the same stream (detached), so the model sees
long context while backpropagating through ``seq_len`` steps only. The learning rate follows progress through the
budget (`schedule`). Every ``eval_every`` steps the run is evaluated (`evaluation`), the best weights are saved as
the run's model and the whole state as its resume file (`saving`); every file is replaced atomically.

Under torchrun (`distributed`) each rank trains on its own block of the streams and DistributedDataParallel
averages the gradients. Rank 0 alone evaluates, reports and writes files; the resume file holds the state of every
stream (gathered from all ranks) and every rank's RNG. Corpora of `tokenfile.MIN_BYTES` or more are read from a
memory-mapped token file in the run folder.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from ..errors import TextgenError
from ..runfolder import append_metrics
from ..runlock import hold_run
from ..sampling import LN2
from .averaging import moving_average
from .batching import epoch_offset, ids_to_device, rank_streams, steps_per_epoch, stream_batch
from .calibrate import ConfigTimer, StepTimer
from .config import TrainConfig
from .distributed import World
from .evaluation import evaluate_bpc, sample_texts
from .events import EvalStats, Reporter, StepStats
from .finetune import init_record
from .hardware import check_fits, device_record, use_device
from .model import CharLSTM
from .precision import PrecisionChoice
from .prepare import (
    build_model,
    check_same_data,
    fit_to_machine,
    load_run_corpus,
    prepare_data,
    settle_config,
    share_precision,
)
from .saving import best_so_far, restore, restore_average, save_resume
from .schedule import budget_fraction, lr_at, total_steps
from .sizing import Choice
from .step import backward


class Trainer:
    """One training run. Build with `Trainer(config)`, then `run()`; `resume=True` continues a run folder.

    Setting the run up is `prepare`'s, the resume file `saving`'s; the Trainer holds the run's state and steps,
    evaluates and saves it in turn."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        explicit: frozenset[str] = frozenset(),
        reporter: Reporter | None = None,
        command: str | None = None,
        step_timer: StepTimer | None = None,
        config_timer: ConfigTimer | None = None,
    ):
        """`explicit` names the config fields the user set on the command line; on --resume, a fixed field set
        to a different value than the run's is refused rather than silently ignored. `step_timer` replaces the
        timing of candidate sizes for `--size auto`, `config_timer` every timing where `--precision auto` is timed
        (tests inject timings)."""
        self.reporter = reporter or Reporter()
        self.command = command if command is not None else shlex.join(["textgen", *sys.argv[1:]])
        self.out = Path(config.out)
        self.world = World.current()
        # Everything that can refuse the run happens on rank 0 first, so a user error is reported once.
        with self.world.main_first():
            self.config, saved, start = settle_config(config, resume, explicit, self.world)
            lstm = "lstm" in self.config.cells
            self.device, self.precision = use_device(self.config.device, self.config.precision, self.world, lstm=lstm)
            self.corpus = load_run_corpus(self.config, self.reporter)
            if saved is not None:
                check_same_data(saved[1], self.corpus, given=config, run=self.config, explicit=explicit)
            self.data = prepare_data(self.corpus, self.config, self.world, saved, start)
            self.vocab, self.val_tokens = self.data.vocab, self.data.val_tokens
            # Before any timing builds the model (--precision auto does), and again for the size auto chose.
            check_fits(
                self.config.model_config(len(self.vocab)), self.config.batch_size, self.config.seq_len, self.device
            )
            fitted = fit_to_machine(
                self.config,
                self.data,
                explicit,
                self.world,
                self.device,
                self.precision,
                saved is None,
                step_timer,
                config_timer,
            )
            for line in fitted.lines():
                self.reporter.note(line)
            self.config = fitted.config
            #: What --size auto and --precision auto chose (None where they did not apply), and the seconds their
            #: timing took: counted in the budget.
            self.size_choice: Choice | None = fitted.size
            self.precision_choice: PrecisionChoice | None = fitted.precision_choice
            self.calibration_s = fitted.seconds
            self.model_config = self.config.model_config(len(self.vocab))
            check_fits(self.model_config, self.config.batch_size, self.config.seq_len, self.device)
        self.precision = share_precision(self.world, fitted.precision) if self.precision == "auto" else fitted.precision
        # `net` is what trains (it averages gradients across ranks); `model` is the plain module we evaluate and save.
        self.model, self.net, self.optimizer, self.scaler = build_model(
            self.config, self.model_config, self.device, self.precision, self.world, start
        )
        #: Where the weights came from, kept in every checkpoint of the run.
        self.init_record: dict | None = saved[1].get("init") if saved is not None else None
        if start is not None:
            self.init_record = init_record(self.config.init, start)  # type: ignore[arg-type]
        b, r, n = self.config.batch_size, self.world.rank, self.world.size
        self.streams = rank_streams(self.data.train_tokens, b, r, n)
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
        self.averaged = moving_average(self.model, self.config.ema) if self.config.ema > 0 else None
        if self.averaged is not None and saved is not None:
            restore_average(self.averaged, *saved, self.model_config, self.out / ckpt.RESUME_NAME)
        self._stop_requested = False

    @property
    def weights(self) -> CharLSTM:
        """The model that is evaluated, saved and sampled: the moving average with --ema, else the one training."""
        return self.model if self.averaged is None else self.averaged.module  # type: ignore[return-value]

    # ----- saving --------------------------------------------------------------------------------------
    def _restore(self, tensors: dict[str, np.ndarray], meta: dict) -> None:
        """Go on from the resume file: the training state (`saving`) and where the run stood."""
        self.state = restore(
            tensors,
            meta,
            model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler,
            batch_size=self.config.batch_size,
            world=self.world,
            device=self.device,
        )
        self.step = int(meta["step"])
        self.elapsed = float(meta["elapsed"])
        self.best_val, self.best_step = best_so_far(self.out, meta)

    def save_resume(self) -> Path | None:
        """Write the resume file (rank 0; every rank must call this, as it gathers their state). Returns its path
        on rank 0."""
        record = {
            "config": self.config.to_dict(),
            "sources": [s.to_dict() for s in self.corpus.sources],
            "vocab": self.vocab.tokens,
            **({"tokens": self.vocab.meta()} if not self.vocab.is_chars else {}),
            "init": self.init_record,
            "step": self.step,
            "elapsed": self.elapsed,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "best_step": self.best_step,
        }
        return save_resume(
            self.out / ckpt.RESUME_NAME,
            record,
            world=self.world,
            device=self.device,
            model=self.model,
            averaged=self.averaged,
            optimizer=self.optimizer,
            scaler=self.scaler,
            state=self.state,
        )

    def save_best(self, train_bpc: float | None, val_bpc: float) -> None:
        """Write the weights evaluated now as the run's model, with what the run is and how it was trained."""
        meta = ckpt.CheckpointMeta(
            config=self.model_config,
            vocab=self.vocab,
            lowercase=self.config.lowercase,
            corpus=self.corpus.sources,
            step=self.step,
            train_bpc=train_bpc,
            val_bpc=val_bpc,
            command=self.command,
            extra={"precision": self.precision, "device": device_record(self.device, self.world.size)}
            | {"seq_len": self.config.seq_len, "ema": self.config.ema}
            | ({"init": self.init_record} if self.init_record else {}),
        )
        path = self.out / ckpt.WEIGHTS_NAME
        ckpt.save(path, self.weights.to_numpy(), meta)
        self.reporter.saved(path, "best")

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
        x, y = (ids_to_device(self.data.model_ids(a), self.device) for a in batch)
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
        return value / LN2 / self.data.chars_per_token

    def evaluate(self, train_bpc: float | None) -> EvalStats:
        val = evaluate_bpc(self.weights, self.val_tokens, self.device, chars=self.data.val_chars)
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
        """Train until the budget is spent or a stop is requested; returns "done" or "interrupted". Rank 0 holds
        the run folder's lock throughout (`runlock`; a command that holds it already goes on holding it)."""
        with hold_run(self.out) if self.world.is_main else contextlib.nullcontext():
            return self._run(should_stop)

    def _run(self, should_stop: Callable[[Trainer], bool] | None) -> str:
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
            tokens = (self.step - mark_step) * self.world.size * c.batch_size * c.seq_len
            chars = tokens * self.data.chars_per_token
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
