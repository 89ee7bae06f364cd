"""The book's character-level LSTM recipe, reimplemented faithfully in torch, as the baseline textgen must beat.

Deep Learning with Python (ch. 8.1) / Keras ``lstm_text_generation.py``:

- the text is lower-cased; the vocabulary is its sorted distinct characters;
- training examples are 60-character windows taken every 3 characters, each predicting only the one character
  that follows it (``sentences = text[i:i+60]``, ``next_chars = text[i+60]`` for ``i in range(0, len-60, 3)``);
- inputs are one-hot vectors; the model is ``LSTM(128)`` → ``Dense(vocab, softmax)``; categorical cross-entropy;
- ``RMSprop(learning_rate=0.01)`` with Keras defaults (rho 0.9, epsilon 1e-7, no momentum, no clipping);
- batch 128, examples shuffled every epoch (``fit(shuffle=True)``; the last batch of an epoch is partial).

What mirrors Keras (3) beyond the listing, because it changes how fast the model learns:

- initialisation: glorot-uniform input kernel, orthogonal recurrent kernel, zero bias with the forget-gate bias
  at 1 (``unit_forget_bias``), glorot-uniform dense kernel, zero dense bias. Keras and torch share the gate order
  (i, f, g/c, o). torch's LSTM has two bias vectors whose gradients are identical; training both would move the
  effective bias twice as fast as Keras's single one, so ``bias_hh`` is frozen at zero;
- RMSprop as Keras 3 computes it: ``v = rho·v + (1-rho)·g²; w -= lr·g / sqrt(v + eps)`` (epsilon *inside* the
  square root). ``--optimizer torch`` uses ``torch.optim.RMSprop(alpha=rho, eps=eps)`` instead, i.e.
  ``g / (sqrt(v) + eps)``, which is what Keras 2.0 (the book's version) computed.

Differences that remain (all small or in the recipe's favour): the softmax cross-entropy is computed from logits
(Keras clips probabilities at 1e-7); the recipe trains on textgen's training split (the first 90%) instead of the
whole text; the recurrent activation is the sigmoid (Keras ≥ 2.3 and Keras 3; Keras 2.0 used the hard sigmoid).

Evaluation, as the recipe predicts at generation time: each scored validation character is predicted from the 60
characters before it (a fresh state per window). The validation split is textgen's (``load_corpus(lowercase=True)``
then the last ``--val-fraction`` by characters), so both trainers score the same text. Scoring every position costs
a 60-step forward pass each, so by default a fixed, evenly spaced subset of ``--eval-positions`` (10,000) positions
among those with 60 characters of validation context is scored (about ±0.02 bpc of sampling noise against the full
split); ``--eval-positions 0`` scores all of them, and ``--final-full`` adds one full evaluation at the end.

The clock: the model trains for ``--minutes`` of training time; evaluations (every ``--eval-every-s`` seconds of
training time, and at the end) are not counted in it, because the book's recipe does not evaluate at all. Each
evaluation appends one JSON line to ``--out`` and prints it:
``{"elapsed": training seconds, "wall": seconds incl. evaluations, "eval_s": …, "step": …, "epoch": …,
"val_bpc": …, "best_val_bpc": …, "train_bpc": …, "positions": …}``.

Threads: all cores by default, as ``textgen train`` uses. A 1×128 LSTM is small enough that one thread can be
faster (and on a loaded 2-core machine two threads were ~5-60× slower); ``--threads auto`` times both before
training and keeps the faster, so the baseline gets its best setting.

    .venv/bin/python bench/book_recipe.py ../shared/corpora/nietzsche.txt --minutes 10 --out /tmp/recipe.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core.corpus import load_corpus  # noqa: E402
from textgen_core.sampling import LN2  # noqa: E402
from textgen_core.training.hardware import cpu_threads  # noqa: E402

MAXLEN = 60  # window length (the book's maxlen)
STEP = 3  # stride between training windows
UNITS = 128  # LSTM(128)
BATCH = 128
LR = 0.01
RHO = 0.9  # Keras RMSprop default
EPS = 1e-7  # Keras RMSprop default (keras.config.epsilon())


class BookModel(nn.Module):
    """One-hot characters → LSTM(128) → Dense(vocab); the softmax lives in the loss (log-softmax of the logits)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.lstm = nn.LSTM(vocab_size, UNITS, batch_first=True)
        self.dense = nn.Linear(UNITS, vocab_size)
        self.keras_init()

    @torch.no_grad()
    def keras_init(self) -> None:
        """Keras 3 defaults for LSTM and Dense (see the module docstring for why each matters)."""
        h = UNITS
        # glorot_uniform is symmetric in fan-in/fan-out, so torch's (4H, V) layout gives Keras's (V, 4H) limits.
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        # Keras: orthogonal (H, 4H) recurrent kernel (orthonormal rows); torch stores its transpose (4H, H), and
        # orthogonal_ on that shape gives orthonormal columns: the same distribution.
        nn.init.orthogonal_(self.lstm.weight_hh_l0)
        self.lstm.bias_ih_l0.zero_()
        self.lstm.bias_ih_l0[h : 2 * h] = 1.0  # unit_forget_bias
        self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)  # Keras has a single bias vector
        nn.init.xavier_uniform_(self.dense.weight)
        self.dense.bias.zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (batch, 60) character ids → logits (batch, vocab) for the character after each window."""
        onehot = F.one_hot(ids, self.vocab_size).float()
        _, (h, _) = self.lstm(onehot)
        return self.dense(h[-1])


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop exactly as Keras 3 updates (no momentum, not centred): epsilon inside the square root."""

    def __init__(self, params, lr: float = LR, rho: float = RHO, eps: float = EPS):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(rho).addcmul_(p.grad, p.grad, value=1 - rho)
                p.addcdiv_(p.grad, (v + eps).sqrt_(), value=-lr)
        return None


def make_optimizer(name: str, params) -> torch.optim.Optimizer:
    if name == "keras3":
        return KerasRMSprop(params)
    return torch.optim.RMSprop(params, lr=LR, alpha=RHO, eps=EPS)


def eval_positions(n_val: int, count: int) -> np.ndarray:
    """Validation positions to score: those with MAXLEN characters of validation context before them, or `count`
    of them evenly spaced (deterministic, so every evaluation of a run scores the same characters)."""
    all_pos = np.arange(MAXLEN, n_val)
    if count <= 0 or count >= len(all_pos):
        return all_pos
    return np.unique(np.linspace(MAXLEN, n_val - 1, count).round().astype(np.int64))


@torch.no_grad()
def evaluate(model: BookModel, val: torch.Tensor, positions: torch.Tensor, batch: int = 1024) -> float:
    """Mean bits per character of val[p] given val[p-60:p], over `positions`."""
    model.eval()
    offsets = torch.arange(-MAXLEN, 0)
    total = 0.0
    for s in range(0, len(positions), batch):
        pos = positions[s : s + batch]
        logits = model(val[pos[:, None] + offsets])
        total += float(F.cross_entropy(logits, val[pos], reduction="sum"))
    model.train()
    return total / len(positions) / LN2


def threads_arg(text: str) -> int:
    """`auto` → -1; otherwise a non-negative thread count (0 = all cores)."""
    if text == "auto":
        return -1
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("--threads takes a count >= 0 or 'auto'")
    return n


def pick_threads(model: BookModel, seq: torch.Tensor, repeats: int = 8) -> int:
    """The faster of 1 thread and all cores for this model's forward + backward (no optimizer step, so the
    weights are untouched). Small LSTMs can be slower on several threads; the baseline should get its best."""
    timings = {}
    for n in sorted({1, cpu_threads()}):
        torch.set_num_threads(n)
        times = []
        for i in range(repeats + 2):
            t = time.perf_counter()
            F.cross_entropy(model(seq[:, :MAXLEN]), seq[:, MAXLEN]).backward()
            if i >= 2:
                times.append(time.perf_counter() - t)
        timings[n] = sorted(times)[len(times) // 2]
    model.zero_grad(set_to_none=True)
    best = min(timings, key=lambda n: timings[n])
    print("# threads auto: " + ", ".join(f"{n}: {1e3 * t:.1f} ms" for n, t in timings.items()) + f" → {best}")
    return best


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", nargs="+", help="UTF-8 text file(s), concatenated in order (as textgen train)")
    p.add_argument("--minutes", type=float, default=10.0, help="training-time budget (evaluations not counted)")
    p.add_argument("--out", required=True, help="JSONL file for the validation curve (overwritten)")
    p.add_argument(
        "--threads",
        type=threads_arg,
        default=0,
        help="CPU threads: N, or 'auto' = the faster of 1 and all cores, timed before training "
        "(default: all cores, as textgen train)",
    )
    p.add_argument("--eval-every-s", type=float, default=30.0, help="evaluate every N seconds of training time")
    p.add_argument(
        "--eval-positions", type=int, default=10_000, help="validation positions scored (0 = all; default 10000)"
    )
    p.add_argument("--final-full", action="store_true", help="also score every validation position at the end")
    p.add_argument("--val-fraction", type=float, default=0.1, help="last fraction held out (default 0.1, as textgen)")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--optimizer", choices=("keras3", "torch"), default="keras3", help="RMSprop flavour (see above)")
    p.add_argument("--seed", type=int, default=1337)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads if args.threads > 0 else cpu_threads())
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    corpus = load_corpus(args.corpus, encoding=args.encoding, lowercase=True)
    train_np, val_np = corpus.split(args.val_fraction)
    if len(train_np) <= MAXLEN + 1 or len(val_np) <= MAXLEN:
        print("book_recipe: corpus too short for 60-character windows", file=sys.stderr)
        return 2
    train = torch.from_numpy(train_np.astype(np.int64))
    val = torch.from_numpy(val_np.astype(np.int64))
    starts = np.arange(0, len(train_np) - MAXLEN, STEP)  # range(0, len(text) - maxlen, step)
    steps_per_epoch = math.ceil(len(starts) / BATCH)
    positions = torch.from_numpy(eval_positions(len(val_np), args.eval_positions))
    window = torch.arange(MAXLEN + 1)

    model = BookModel(len(corpus.vocab))
    if args.threads < 0:
        torch.set_num_threads(pick_threads(model, train[torch.from_numpy(starts[:BATCH])[:, None] + window]))
    optimizer = make_optimizer(args.optimizer, [p for p in model.parameters() if p.requires_grad])
    print(
        f"# book recipe: LSTM({UNITS}) one-hot, vocab {len(corpus.vocab)}, {len(starts):,} windows "
        f"({steps_per_epoch} steps/epoch, batch {BATCH}), RMSprop[{args.optimizer}] lr {LR}, "
        f"{torch.get_num_threads()} threads, {args.minutes:g} training minutes, "
        f"{len(positions):,} of {len(val_np):,} validation positions scored",
        flush=True,
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("", encoding="utf-8")
    budget = 60.0 * args.minutes
    train_s = eval_s = 0.0
    step = epoch = index = 0
    order = rng.permutation(starts)
    best = math.inf
    losses: list[float] = []
    next_eval = args.eval_every_s
    wall0 = time.perf_counter()
    model.train()
    while train_s < budget:
        t0 = time.perf_counter()
        if index == steps_per_epoch:
            epoch, index = epoch + 1, 0
            order = rng.permutation(starts)
        idx = torch.from_numpy(order[index * BATCH : (index + 1) * BATCH])
        seq = train[idx[:, None] + window]
        loss = F.cross_entropy(model(seq[:, :MAXLEN]), seq[:, MAXLEN])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step, index = step + 1, index + 1
        train_s += time.perf_counter() - t0
        if train_s >= next_eval or train_s >= budget:
            while next_eval <= train_s:
                next_eval += args.eval_every_s
            t1 = time.perf_counter()
            val_bpc = evaluate(model, val, positions)
            eval_s += time.perf_counter() - t1
            best = min(best, val_bpc)
            record = {
                "elapsed": round(train_s, 3),
                "wall": round(time.perf_counter() - wall0, 3),
                "eval_s": round(eval_s, 3),
                "step": step,
                "epoch": round(step / steps_per_epoch, 4),
                "val_bpc": val_bpc,
                "best_val_bpc": best,
                "train_bpc": sum(losses) / len(losses) / LN2,
                "positions": len(positions),
            }
            losses = []
            line = json.dumps(record)
            with open(out, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            print(line, flush=True)
    if args.final_full:
        full = torch.from_numpy(eval_positions(len(val_np), 0))
        print(f"# full validation ({len(full):,} positions): {evaluate(model, val, full):.4f} bpc", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
