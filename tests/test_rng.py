"""The sampling RNG against numpy's own: the same seed must draw the same numbers, so that a seed gives the text
it gave when sampling drew from ``numpy.random.default_rng``, and a branch state saved by one loads in the other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textgen_core.rng import Rng, fresh_seed

seeds = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**200),
    st.lists(st.integers(0, 2**40), min_size=1, max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, n=st.integers(0, 7))
def test_a_seed_draws_what_numpys_default_rng_draws(seed: int | list[int], n: int) -> None:
    ours, theirs = Rng(seed), np.random.default_rng(seed)
    assert [ours.random() for _ in range(n)] == [theirs.random() for _ in range(n)]
    assert ours.random((2, 3)).tolist() == theirs.random((2, 3)).tolist()
    assert ours.random(4).tolist() == theirs.random(4).tolist()
    assert ours.state == theirs.bit_generator.state


@settings(max_examples=30, deadline=None)
@given(seed=seeds, first=st.integers(1, 4), second=st.integers(1, 3))
def test_spawned_children_and_grandchildren_match_numpys(seed: int | list[int], first: int, second: int) -> None:
    ours, theirs = Rng(seed), np.random.default_rng(seed)
    # Two spawns in a row continue the numbering, as numpy's do.
    kids = ours.spawn(first) + ours.spawn(second)
    theirs_kids = theirs.spawn(first) + theirs.spawn(second)
    for a, b in zip(kids, theirs_kids, strict=True):
        assert a.random(3).tolist() == b.random(3).tolist()
        assert a.spawn(2)[1].random() == b.spawn(2)[1].random()
    assert ours.random() == theirs.random()  # spawning draws nothing from the parent


def test_a_state_goes_both_ways_and_is_a_snapshot() -> None:
    theirs = np.random.default_rng(12)
    theirs.random(5)
    ours = Rng.from_state(theirs.bit_generator.state)
    snapshot = ours.state
    assert [ours.random() for _ in range(3)] == theirs.random(3).tolist()
    again = Rng(99)
    again.state = snapshot  # the snapshot did not move with `ours`
    back = np.random.default_rng()
    back.bit_generator.state = ours.state
    assert again.random(3).tolist() == Rng.from_state(snapshot).random(3).tolist()
    assert back.random() == ours.random()


def test_no_seed_draws_fresh_numbers_and_bad_input_is_refused() -> None:
    assert Rng().random(4).tolist() != Rng().random(4).tolist()
    assert all(0.0 <= x < 1.0 for x in Rng().random(1000).tolist())
    with pytest.raises(ValueError, match="non-negative"):
        Rng(-1)
    with pytest.raises(ValueError, match="no seed to spawn"):
        Rng.from_state(Rng(3).state).spawn(2)
    with pytest.raises(ValueError, match="PCG64"):
        Rng.from_state({"bit_generator": "MT19937", "state": {}})
    picked = {fresh_seed(9) for _ in range(200)}
    assert picked <= set(range(10)) and len(picked) > 5
