"""What an evaluation measures: validation bits per character, and samples at the book's temperatures."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..config import BOOK_TEMPERATURES, ModelConfig
from ..errors import TextgenError
from ..generate import sample_many
from ..inference import NumpyLSTM
from ..sampling import LN2, SamplingSettings
from ..vocab import Vocabulary
from .batching import ids_to_device
from .model import CharLSTM

#: Evaluations score at most this many characters (the start of the validation split; more than the held-out
#: tenth of Nietzsche or tiny Shakespeare). Every evaluation scores the whole budget of characters, so the cap
#: bounds its time and its int64 ids whatever the corpus: a multi-GB corpus's tenth would take hours to score.
EVAL_MAX_CHARS = 1 << 18


@torch.no_grad()
def evaluate_bpc(
    model: CharLSTM,
    tokens: np.ndarray,
    device: torch.device,
    n_streams: int = 16,
    burn_in: int = 256,
    chunk: int = 512,
    *,
    chars: int | None = None,
) -> float:
    """Bits per character of `tokens` under `model` (fp32, no dropout): the bits of every token after the first,
    over the `chars` characters they hold (default: one per token, a character model).

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
    return float(total) / (chars or n - 1) / LN2


def sample_texts(
    config: ModelConfig,
    weights: dict[str, np.ndarray],
    vocab: Vocabulary,
    prompt: str,
    length: int,
    rng: np.random.Generator,
    *,
    lowercase: bool,
) -> dict[float, str]:
    """`prompt` continued by `length` characters at each of the book's temperatures, drawn in one batched pass by
    the same numpy engine users sample with (so the run shows what `textgen sample` would give)."""
    settings = [SamplingSettings(temperature=t) for t in BOOK_TEMPERATURES]
    texts = ["" for _ in settings]
    for tokens in sample_many(NumpyLSTM(config, weights), vocab, prompt, settings, length, rng, lowercase=lowercase):
        for i, tok in enumerate(tokens):
            texts[i] += tok.char if tok is not None else ""
    return {t: prompt + s for t, s in zip(BOOK_TEMPERATURES, texts, strict=True)}
