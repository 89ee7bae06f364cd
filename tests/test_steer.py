"""Step mode and the branch tree: exact undo, exact forks (the state at any character rebuilt bit for bit), records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_random_checkpoint

from textgen_core import checkpoint
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator
from textgen_core.inference import NumpyLSTM
from textgen_core.sampling import SamplingSettings, softmax
from textgen_core.steer import BranchTree, Fork, Stepper, fork, rebuild, rng_snapshot

SEED = "The will to power"
LENGTH = 60


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> checkpoint.Checkpoint:
    return checkpoint.load(
        write_random_checkpoint(tmp_path_factory.mktemp("steer") / "m.safetensors", layers=2, seed=3)
    )


def generator(ckpt: checkpoint.Checkpoint, seed: int | None = 7, **settings) -> Generator:
    """A generator whose draws are far from certain (flatter than the random checkpoint's peaked head), so one
    random number more or less, or a state slightly off, changes the text and the tests notice."""
    net = NumpyLSTM.from_checkpoint(ckpt)
    net.w_head *= 0.5
    net.b_head *= 0.5
    return Generator(net, ckpt.vocab, settings=SamplingSettings(**settings), seed=seed)


def run(gen: Generator, tree: BranchTree, seed: str = SEED, length: int = LENGTH):
    """What a front end does for a run: prime, note the RNG, stream, record the branch."""
    primed = gen.prime(seed)
    rng_state = rng_snapshot(gen.rng)
    tokens = list(gen.stream(length, alternatives=5))
    return tree.add(primed.text, tokens, "run", settings=gen.settings, rng_state=rng_state)


@pytest.mark.parametrize("settings", [{}, {"temperature": 0.7, "top_k": 20}])
@pytest.mark.parametrize("number", [1, 2, 31, LENGTH])
def test_forking_with_the_character_that_was_there_reproduces_the_run(ckpt, settings, number: int) -> None:
    gen = generator(ckpt, **settings)
    tree = BranchTree()
    original = run(gen, tree)
    forked = fork(gen, tree, original.id, number, original.tokens[number - 1].char, length=LENGTH - number)
    assert forked.text == original.text[number - 1 :]
    # The model's probabilities are bit-identical: the rebuilt state is the state the run had.
    assert [(t.prob, t.entropy, t.alternatives) for t in forked.tokens] == [
        (t.prob, t.entropy, t.alternatives) for t in original.tokens[number - 1 :]
    ]
    assert forked.tokens[1:] == original.tokens[number:]
    assert (forked.parent, forked.split, forked.context) == (original.id, number, SEED + original.text[: number - 1])


def test_an_empty_seed_forks_exactly_too(ckpt) -> None:
    """An empty seed fed the start character; the branch's context says so, and a fork re-feeds it."""
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree, seed="")
    assert original.context == "\n"
    for number in (1, 2):
        forked = fork(gen, tree, original.id, number, original.tokens[number - 1].char, length=LENGTH - number)
        assert forked.tokens[1:] == original.tokens[number:]


def test_a_fork_of_a_fork_reproduces_its_parent(ckpt) -> None:
    """A fork's first character was forced, not drawn: replaying its random numbers must skip it."""
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree)
    first = fork(gen, tree, original.id, 10, length=40)
    again = fork(gen, tree, first.id, 15, first.tokens[14].char, length=len(first.tokens) - 15)
    assert again.tokens[1:] == first.tokens[15:]
    assert again.context == SEED + original.text[:9] + first.text[:14]


def test_fork_defaults_to_the_models_likeliest_other_character(ckpt) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree)
    old = original.tokens[20]
    forked = fork(gen, tree, original.id, 21, length=10)
    expected = next(c for c, _ in old.alternatives if c != old.char)
    assert forked.tokens[0].char == expected != old.char
    assert len(forked.tokens) == 11 and tree.current == forked.id
    # The generator stands at the end of the new branch: what it predicts next is what a rebuild there gives.
    after = gen.get_state().logits.copy()
    rebuild(gen, forked, len(forked.tokens))
    np.testing.assert_array_equal(gen.get_state().logits, after)


def test_a_branch_without_a_known_rng_forks_from_the_generators(ckpt) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    primed = gen.prime(SEED)
    picked = tree.add(primed.text, list(gen.stream(30, alternatives=5)), "pick")  # no rng_state
    forked = fork(gen, tree, picked.id, 5, picked.tokens[4].char, length=20)
    assert forked.tokens[0] == picked.tokens[4]
    # The fork's own draws came from one RNG in order, so a fork of it replays them.
    again = fork(gen, tree, forked.id, 8, forked.tokens[7].char, length=len(forked.tokens) - 8)
    assert again.tokens[1:] == forked.tokens[8:]


def test_a_fork_stopped_part_way_keeps_what_it_made(ckpt) -> None:
    gen = generator(ckpt, temperature=0.9)
    tree = BranchTree()
    original = run(gen, tree)
    own_rng = gen.rng
    job = Fork(gen, tree, original.id, 5, length=40)
    assert tree.current == original.id  # nothing recorded before it runs
    made = []
    for token in job:
        made.append(token)
        if len(made) == 12:
            break  # what Ctrl-C does in a front end
    assert job.branch is not None and job.branch.tokens == made and tree.current == job.branch.id
    assert gen.settings.temperature == 0.9 and gen.rng is own_rng  # the parent's replay did not leak into gen
    finished = fork(gen, tree, original.id, 5, job.branch.tokens[0].char, length=40)
    assert finished.tokens[:12] == made  # the same replayed random numbers


@pytest.mark.parametrize("number", [0, LENGTH + 1, -1, "3", 2.0, True])
def test_fork_position_out_of_range_is_a_one_line_error(ckpt, number) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree)
    with pytest.raises(TextgenError, match=f"from 1 to {LENGTH}") as info:
        fork(gen, tree, original.id, number, length=5)
    assert "\n" not in str(info.value)
    assert len(tree.branches) == 1


@pytest.mark.parametrize("char", ["€", "ab", ""])
def test_fork_with_a_character_the_model_does_not_know_is_an_error(ckpt, char: str) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree)
    with pytest.raises(TextgenError, match="character"):
        fork(gen, tree, original.id, 3, char, length=5)
    with pytest.raises(TextgenError, match="no branch 9"):
        fork(gen, tree, 9, 3, length=5)
    assert len(tree.branches) == 1


def test_undo_then_the_same_choice_gives_identical_probabilities(ckpt) -> None:
    gen = generator(ckpt)
    gen.prime(SEED)
    stepper = Stepper(gen)
    stepper.take(1)
    stepper.draw()
    before = stepper.choices()
    token = stepper.take(3)
    after = stepper.choices()
    assert stepper.undo() == token
    assert stepper.choices() == before  # back exactly where it was
    assert stepper.take(3) == token
    assert stepper.choices() == after
    assert len(stepper.tokens) == 3


def test_undo_at_the_start_does_nothing(ckpt) -> None:
    gen = generator(ckpt)
    gen.prime(SEED)
    stepper = Stepper(gen)
    before = stepper.choices()
    assert stepper.undo() is None
    assert stepper.choices() == before


def test_choices_are_the_likeliest_and_honour_top_k_and_top_p(ckpt) -> None:
    gen = generator(ckpt)
    gen.prime(SEED)
    stepper = Stepper(gen)
    plain = stepper.choices()
    assert len(plain) == 9 and [c.number for c in plain] == list(range(1, 10))
    assert [c.prob for c in plain] == sorted((c.prob for c in plain), reverse=True)
    assert plain[0].prob == pytest.approx(softmax(gen.get_state().logits[0]).max())
    gen.settings = SamplingSettings(top_k=3)
    assert [c.char for c in stepper.choices()] == [c.char for c in plain[:3]]
    assert sum(c.sampled_prob for c in stepper.choices()) == pytest.approx(1.0)
    gen.settings = SamplingSettings(top_p=plain[0].prob / 2)  # the nucleus is the likeliest character alone
    assert [c.char for c in stepper.choices()] == [plain[0].char]
    gen.settings = SamplingSettings(temperature=0)  # greedy would keep one; step mode still shows the rest
    greedy = stepper.choices()
    assert [c.char for c in greedy] == [c.char for c in plain]
    assert [c.sampled_prob for c in greedy] == [1.0] + [0.0] * 8


def test_a_typed_character_is_taken_and_an_unknown_one_refused(ckpt) -> None:
    gen = generator(ckpt)
    gen.prime(SEED)
    stepper = Stepper(gen)
    least = min(stepper.choices(len(ckpt.vocab)), key=lambda c: c.prob)
    token = stepper.type(least.char)
    assert (token.char, token.prob) == (least.char, least.prob)
    before = stepper.choices()
    with pytest.raises(TextgenError, match="does not know"):
        stepper.type("€")
    with pytest.raises(TextgenError, match="choose 1 to 9"):
        stepper.take(10)
    assert stepper.choices() == before and stepper.text == least.char


def test_draws_in_step_mode_are_the_runs_draws(ckpt) -> None:
    a, b = generator(ckpt, seed=11, temperature=0.8), generator(ckpt, seed=11, temperature=0.8)
    a.prime(SEED)
    b.prime(SEED)
    stepper = Stepper(a)
    drawn = [stepper.draw() for _ in range(25)]
    assert drawn == list(b.stream(25, alternatives=5))


def test_a_pick_branch_is_rebuilt_exactly_at_every_character(ckpt) -> None:
    gen = generator(ckpt)
    primed = gen.prime(SEED)
    stepper = Stepper(gen)
    seen = []
    for choice in (2, 1, 5, 1, 3, 9, 1):
        seen.append(stepper.choices())
        stepper.take(choice)
    tree = BranchTree()
    branch = tree.add(primed.text, stepper.tokens, "pick")
    for k, choices in enumerate(seen):
        rebuild(gen, branch, k)
        assert Stepper(gen).choices() == choices


def test_records_name_their_branch_and_parent_and_hold_the_text(ckpt, tmp_path: Path) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    original = run(gen, tree)
    forked = fork(gen, tree, original.id, 12, length=15)
    records = tree.to_records()
    lines = [json.loads(json.dumps(r, ensure_ascii=False)) for r in records]
    heads = [r for r in lines if "text" in r]
    assert [(h["branch"], h["parent"], h["split"]) for h in heads] == [(1, None, None), (2, 1, 12)]
    assert heads[1]["context"] == forked.context and heads[0]["settings"]["temperature"] == 1.0
    for b in (original, forked):
        chars = [r for r in lines if r["branch"] == b.id and "char" in r]
        assert "".join(r["char"] for r in chars) == b.text
        assert all(r["parent"] == b.parent for r in chars)
        assert [r["prob"] for r in chars] == [t.prob for t in b.tokens]
    assert heads[1]["bits_per_char"] == pytest.approx(forked.bpc)


def test_tree_lookup_and_current_branch(ckpt) -> None:
    gen = generator(ckpt)
    tree = BranchTree()
    with pytest.raises(TextgenError, match="none yet"):
        tree.get(1)
    a = run(gen, tree)
    b = fork(gen, tree, a.id, 3, length=5)
    assert tree.current == b.id and tree.children(a.id) == [b]
    assert tree.go(a.id) is a and tree.current == a.id
    more = list(gen.stream(4))
    tree.extend(a.id, more, same_rng=False)
    assert a.text.endswith("".join(t.char for t in more)) and a.rng_state is None
    with pytest.raises(TextgenError, match="1 to 2"):
        tree.go(3)
