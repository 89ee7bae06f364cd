"""Sampling rules: from a model's logits to the distribution a character is drawn from, and the draw itself.

Pure functions with an explicit generator (`textgen_core.rng.Rng`; a numpy ``Generator`` serves as well), so a
seed reproduces a sample exactly. Every function works on the last axis, so it takes one distribution (shape
``(V,)``) or a batch of them (``(B, V)``, one row per stream: several temperatures are drawn in one pass). Per-row
parameters are given as arrays of length ``B``.

The rules compose in the usual order: temperature, then top-k, then top-p (nucleus). Temperature is the book's
``reweight_distribution``, ``p_T ∝ exp(log(p) / T)``. Since ``log p = logits − logsumexp(logits)`` it equals
``softmax(logits / T)``, which is how it is computed: no ``log(0)``, no overflow, and ``T = 0`` is greedy.
All arithmetic is float64: the vocabulary is small, and the probabilities are reported to users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import TextgenError

if TYPE_CHECKING:
    from .rng import Rng

LN2 = math.log(2.0)


def _numbers(value: object, kinds: str) -> np.ndarray | None:
    """`value` as an array if its dtype kind is one of `kinds` (so bools, strings and objects are refused)."""
    a = np.asarray(value)
    return a if a.dtype.kind in kinds else None


def check_temperature(temperature: float | np.ndarray) -> None:
    """Raise TextgenError unless every temperature is a finite number ≥ 0 (0 means greedy)."""
    t = _numbers(temperature, "iuf")
    if t is None or not (np.isfinite(t) & (t >= 0)).all():
        raise TextgenError(f"temperature must be a finite number ≥ 0 (0 = greedy), got {temperature!r}")


def check_top_k(k: int | np.ndarray) -> None:
    """Raise TextgenError unless every k is a whole number ≥ 1."""
    a = _numbers(k, "iu")
    if a is None or (a < 1).any():
        raise TextgenError(f"top-k must be a whole number ≥ 1, got {k!r}")


def check_top_p(p: float | np.ndarray) -> None:
    """Raise TextgenError unless every p is in (0, 1]."""
    a = _numbers(p, "iuf")
    if a is None or not ((a > 0) & (a <= 1)).all():
        raise TextgenError(f"top-p must be a number in (0, 1], got {p!r}")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities (float64) over the last axis, shifted by the maximum so nothing overflows."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (float64) over the last axis."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def entropy_bits(probs: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """Entropy in bits of distributions given both as probabilities and as log-probabilities (a sampler has
    both at hand, and taking both saves an exp per character)."""
    return -(probs * logp).sum(axis=-1) / LN2


def apply_temperature(logits: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """``p_T ∝ exp(log p / T)`` as probabilities; ``T = 0`` gives all mass to the argmax (greedy).

    `temperature` is a scalar or one value per row. Shifting by the maximum before dividing keeps even a tiny
    T finite: the largest logit maps to 0 and the others to large negative numbers (or -inf) whose exp is 0.
    """
    check_temperature(temperature)
    x = np.asarray(logits, dtype=np.float64)
    t = np.asarray(temperature, dtype=np.float64)[..., None]
    greedy = t == 0
    with np.errstate(over="ignore"):  # overflowing to -inf is exact here: those characters get probability 0
        e = np.exp((x - x.max(axis=-1, keepdims=True)) / (t + greedy))  # the max maps to exp(0) = 1
    probs = e / e.sum(axis=-1, keepdims=True)
    if greedy.any():
        onehot = np.arange(x.shape[-1]) == x.argmax(axis=-1)[..., None]
        probs = np.where(greedy, onehot, probs)
    return probs


def _renormalise(probs: np.ndarray, keep: np.ndarray) -> np.ndarray:
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum(axis=-1, keepdims=True)


def _descending(probs: np.ndarray) -> np.ndarray:
    """Indices sorting each row by decreasing probability; ties keep the lower index first (deterministic)."""
    return np.argsort(-probs, axis=-1, kind="stable")


def top_k(probs: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Keep the `k` most probable characters of each row (scalar or per-row `k`) and renormalise."""
    check_top_k(k)
    k_arr = np.asarray(k)
    order = _descending(probs)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(probs.shape[-1]), axis=-1)
    return _renormalise(probs, ranks < k_arr[..., None])


def top_p(probs: np.ndarray, p: float | np.ndarray) -> np.ndarray:
    """Nucleus filtering: keep the smallest set of most probable characters whose total reaches `p`.

    A character is kept when the mass of the characters ranked above it is still below `p`, so the most
    probable one always survives. ``p = 1`` keeps everything (not left to rounding in the cumulative sum).
    """
    check_top_p(p)
    p_arr = np.asarray(p, dtype=np.float64)
    order = _descending(probs)
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    mass_above = np.cumsum(sorted_p, axis=-1) - sorted_p
    keep_sorted = (mass_above < p_arr[..., None]) | (p_arr[..., None] >= 1.0)
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return _renormalise(probs, keep)


@dataclass(frozen=True)
class SamplingSettings:
    """How to draw the next character: temperature (0 = greedy), then optional top-k, then optional top-p."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        if self.top_k is not None:
            check_top_k(self.top_k)
        if self.top_p is not None:
            check_top_p(self.top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> str:
        """Short label for banners and sample headings, e.g. ``T=0.5 top-k=40`` or ``greedy``."""
        parts = ["greedy" if self.greedy else f"T={self.temperature:g}"]
        if self.top_k is not None:
            parts.append(f"top-k={self.top_k}")
        if self.top_p is not None:
            parts.append(f"top-p={self.top_p:g}")
        return " ".join(parts)


def distribution(logits: np.ndarray, settings: SamplingSettings | Sequence[SamplingSettings]) -> np.ndarray:
    """The distribution to draw from: temperature → top-k → top-p.

    One `SamplingSettings` applies to every row; a sequence gives one per row of a ``(B, V)`` batch.
    """
    single = isinstance(settings, SamplingSettings)
    rows = [settings] if single else list(settings)
    if not single and len(rows) != np.shape(logits)[0]:
        raise ValueError(f"{len(rows)} settings for {np.shape(logits)[0]} rows")
    vocab_size = np.shape(logits)[-1]
    temperature = np.array([s.temperature for s in rows], dtype=np.float64)
    k = np.array([vocab_size if s.top_k is None else s.top_k for s in rows])
    p = np.array([1.0 if s.top_p is None else s.top_p for s in rows])
    if single:  # scalars broadcast over any batch
        temperature, k, p = temperature[0], k[0], p[0]
    probs = apply_temperature(logits, temperature)
    if any(s.top_k is not None for s in rows):
        probs = top_k(probs, k)
    if any(s.top_p is not None for s in rows):
        probs = top_p(probs, p)
    return probs


def draw(probs: np.ndarray, rng: Rng | Sequence[Rng]) -> np.ndarray:
    """Draw one index per row by inverting the cumulative distribution with one uniform number per row.

    For a batch, `rng` may be one generator per row, so that each stream's randomness does not depend on how
    many streams are drawn together. A character of probability 0 is never drawn (the comparison is ``<=``
    against a uniform in [0, total)), and a one-hot (greedy) distribution always gives its argmax.
    """
    p = np.asarray(probs, dtype=np.float64)
    cdf = np.cumsum(p, axis=-1)
    if not isinstance(rng, Sequence):
        u = rng.random(p.shape[:-1])
    else:
        if len(rng) != p.shape[0]:
            raise ValueError(f"{len(rng)} generators for {p.shape[0]} rows")
        u = np.array([r.random() for r in rng])
    return (cdf <= (u * cdf[..., -1])[..., None]).sum(axis=-1)
