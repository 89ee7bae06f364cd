"""Sampling rules: the book's temperature formula, greedy, top-k/top-p supports, batches, seeds, bad values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from textgen_core.errors import TextgenError
from textgen_core.sampling import (
    SamplingSettings,
    apply_temperature,
    distribution,
    draw,
    entropy_bits,
    log_softmax,
    softmax,
    top_k,
    top_p,
)


def reweight_distribution(original: np.ndarray, temperature: float) -> np.ndarray:
    """Deep Learning with Python, listing 8.2, verbatim apart from names."""
    distribution = np.log(original) / temperature
    distribution = np.exp(distribution)
    return distribution / np.sum(distribution)


def random_logits(rng: np.random.Generator, vocab: int = 40, rows: int | None = None) -> np.ndarray:
    shape = (vocab,) if rows is None else (rows, vocab)
    return (rng.standard_normal(shape) * 3).astype(np.float32)


@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0, 1.2, 3.0])
def test_temperature_is_the_books_reweight_distribution(temperature: float) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.full(30, 0.5))
        p = np.maximum(p, 1e-12)  # the book's formula needs log(p) > -inf
        p /= p.sum()
        logits = np.log(p) + rng.normal() * 5  # logits are log-probabilities up to a constant
        np.testing.assert_allclose(
            apply_temperature(logits, temperature), reweight_distribution(p, temperature), rtol=1e-9, atol=1e-15
        )


def test_temperature_raises_no_numpy_warnings_on_extreme_logits() -> None:
    logits = np.array([-1e30, 0.0, 1e30, 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in (0.0, 1e-300, 1e-3, 1.0, 1e300):
            p = apply_temperature(logits, t)
            assert np.isfinite(p).all() and math.isclose(p.sum(), 1.0)


def test_low_temperature_and_greedy_agree() -> None:
    rng = np.random.default_rng(1)
    logits = random_logits(rng, rows=50)
    greedy = apply_temperature(logits, 0.0)
    assert (greedy.argmax(axis=1) == logits.argmax(axis=1)).all()
    assert set(np.unique(greedy)) == {0.0, 1.0}
    np.testing.assert_allclose(apply_temperature(logits, 1e-4), greedy, atol=1e-12)
    ids = draw(greedy, np.random.default_rng(2))
    assert (ids == logits.argmax(axis=1)).all()


def test_softmax_log_softmax_and_entropy() -> None:
    rng = np.random.default_rng(3)
    logits = random_logits(rng, rows=4)
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(log_softmax(logits)), p, rtol=1e-12)
    np.testing.assert_allclose(entropy_bits(p, log_softmax(logits)), -(p * np.log2(p)).sum(axis=1), rtol=1e-10)
    assert entropy_bits(np.full(8, 1 / 8), log_softmax(np.zeros(8))) == pytest.approx(3.0)


def test_per_row_temperature_equals_rows_one_by_one() -> None:
    rng = np.random.default_rng(4)
    logits = random_logits(rng, rows=4)
    temps = np.array([0.0, 0.5, 1.0, 1.2])
    batch = apply_temperature(logits, temps)
    for row, t in enumerate(temps):
        np.testing.assert_array_equal(batch[row], apply_temperature(logits[row], t))


@pytest.mark.parametrize("k", [1, 2, 5, 39, 40, 100])
def test_top_k_keeps_exactly_the_k_most_probable(k: int) -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        p = softmax(random_logits(rng))
        q = top_k(p, k)
        expected = set(np.argsort(-p)[: min(k, len(p))])
        assert set(np.flatnonzero(q)) == expected
        np.testing.assert_allclose(q[list(expected)], p[list(expected)] / p[list(expected)].sum())


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.9, 0.999, 1.0])
def test_top_p_keeps_the_smallest_set_reaching_p(threshold: float) -> None:
    rng = np.random.default_rng(6)
    for _ in range(10):
        p = softmax(random_logits(rng))
        order = np.argsort(-p)
        m = next((m for m in range(1, len(p) + 1) if p[order[:m]].sum() >= threshold), len(p))
        q = top_p(p, threshold)
        assert set(np.flatnonzero(q)) == set(order[:m])
        assert q.sum() == pytest.approx(1.0)


def test_top_p_always_keeps_the_most_probable() -> None:
    p = np.array([0.1, 0.6, 0.3])
    np.testing.assert_array_equal(top_p(p, 1e-9), [0.0, 1.0, 0.0])


def test_rules_compose_temperature_then_top_k_then_top_p() -> None:
    rng = np.random.default_rng(7)
    logits = random_logits(rng, rows=3)
    s = SamplingSettings(0.7, top_k=10, top_p=0.8)
    expected = top_p(top_k(apply_temperature(logits, 0.7), 10), 0.8)
    np.testing.assert_allclose(distribution(logits, s), expected)
    rows = [SamplingSettings(0.2), SamplingSettings(1.0, top_k=3), SamplingSettings(1.2, top_p=0.5)]
    batch = distribution(logits, rows)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(batch[i], distribution(logits[i], row))


def test_draw_is_reproducible_and_follows_the_distribution() -> None:
    p = np.array([0.5, 0.0, 0.3, 0.2, 0.0])
    batch = np.tile(p, (20_000, 1))
    a = draw(batch, np.random.default_rng(8))
    b = draw(batch, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(a, minlength=5) / len(a)
    assert counts[1] == counts[4] == 0  # zero-probability characters are never drawn
    np.testing.assert_allclose(counts, p, atol=0.015)


def test_draw_with_one_generator_per_row_matches_single_rows() -> None:
    rng = np.random.default_rng(9)
    probs = softmax(random_logits(rng, rows=3))
    kids = np.random.default_rng(10).spawn(3)
    together = [draw(probs, kids) for _ in range(50)]
    kids = np.random.default_rng(10).spawn(3)
    apart = [[int(draw(probs[i], kids[i])) for i in range(3)] for _ in range(50)]
    np.testing.assert_array_equal(np.array(together), np.array(apart))


@pytest.mark.parametrize("bad", [-0.1, -1, math.nan, math.inf, -math.inf, "1", True, None])
def test_invalid_temperatures_are_one_line_errors(bad: object) -> None:
    with pytest.raises(TextgenError) as e:
        SamplingSettings(bad)  # type: ignore[arg-type]
    assert "temperature" in str(e.value) and "\n" not in str(e.value)
    if isinstance(bad, float):
        with pytest.raises(TextgenError):
            apply_temperature(np.zeros(4), bad)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("top_k", 0), ("top_k", 1.5), ("top_k", True), ("top_p", 0.0), ("top_p", 1.5), ("top_p", math.nan)],
)
def test_invalid_top_k_and_top_p_are_errors(field: str, bad: object) -> None:
    with pytest.raises(TextgenError) as e:
        SamplingSettings(**{field: bad})
    assert "\n" not in str(e.value)


def test_describe() -> None:
    assert SamplingSettings().describe() == "T=1"
    assert SamplingSettings(0.5, top_k=40).describe() == "T=0.5 top-k=40"
    assert SamplingSettings(0, top_p=0.9).describe() == "greedy top-p=0.9"
