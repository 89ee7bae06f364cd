"""Beam search: width 1 is greedy, a wider beam finds the likelier text greedy misses, scores match the model."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import write_random_checkpoint

from textgen_core import checkpoint
from textgen_core.beam import MAX_WIDTH, BeamSearch, beam_search
from textgen_core.config import ModelConfig
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator
from textgen_core.inference import NumpyLSTM
from textgen_core.sampling import LN2, SamplingSettings, log_softmax
from textgen_core.vocab import Vocabulary

PROMPT = "The will to power"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[NumpyLSTM, Vocabulary]:
    """Random weights whose beams part ways with greedy (many random models fall into "tttt…", where every
    width agrees and a beam that gathered the wrong parents' states would go unnoticed)."""
    path = write_random_checkpoint(tmp_path_factory.mktemp("beam") / "m.safetensors", layers=2, seed=3)
    ckpt = checkpoint.load(path)
    net = NumpyLSTM.from_checkpoint(ckpt)
    net.w_head *= 0.5  # flatter distributions: more candidates stay close
    net.b_head *= 0.5
    return net, ckpt.vocab


def bits_by_forward(net: NumpyLSTM, vocab: Vocabulary, prompt: str, text: str) -> float:
    """−log2 P(text | prompt) recomputed in one full forward pass: independent of the beam's bookkeeping."""
    p, t = vocab.encode(prompt).ids, vocab.encode(text).ids
    logits, _ = net.forward(np.concatenate([p, t]), net.initial_state(1))
    logp = log_softmax(logits[len(p) - 1 : -1])
    return float(-logp[np.arange(len(t)), t].sum() / LN2)


def test_width_one_is_greedy_decoding_exactly(model) -> None:
    net, vocab = model
    gen = Generator(net, vocab, settings=SamplingSettings(temperature=0))
    gen.prime(PROMPT)
    greedy = list(gen.stream(80, alternatives=5))
    beam = beam_search(net, vocab, PROMPT, width=1, length=80)
    assert [t.char for t in beam.tokens] == [t.char for t in greedy]
    # Same arithmetic as the sampler (one stream, one step per character), so the probabilities are identical.
    assert [(t.prob, t.entropy, t.alternatives) for t in beam.tokens] == [
        (t.prob, t.entropy, t.alternatives) for t in greedy
    ]


@pytest.mark.parametrize("width", [2, 4, 8])
def test_total_bits_are_the_models_probability_of_the_text(model, width: int) -> None:
    """Traced back through the parents, the tokens and the total are those of one real path of the model."""
    net, vocab = model
    result = beam_search(net, vocab, PROMPT, width=width, length=60)
    assert len(result.tokens) == 60 and result.complete
    recomputed = bits_by_forward(net, vocab, PROMPT, result.text)
    assert result.total_bits == pytest.approx(recomputed, rel=1e-5)
    assert result.total_bits == pytest.approx(-sum(np.log2(t.prob) for t in result.tokens), rel=1e-9)
    assert all(t.sampled_prob == 1.0 for t in result.tokens)  # a deterministic choice, like greedy
    greedy = beam_search(net, vocab, PROMPT, width=1, length=60)
    assert result.text != greedy.text  # the fixture's beams do part ways, so the states' gathering is exercised


def test_the_beam_is_deterministic_and_its_state_continues_the_text(model) -> None:
    net, vocab = model
    a = beam_search(net, vocab, PROMPT, width=4, length=40)
    b = beam_search(net, vocab, PROMPT, width=4, length=40)
    assert a.tokens == b.tokens and a.total_bits == b.total_bits
    ids = vocab.encode(PROMPT + a.text).ids
    logits, _ = net.forward(ids, net.initial_state(1))
    np.testing.assert_allclose(a.state.logits[0], logits[-1], atol=1e-5)


def test_progress_per_position_and_a_search_stopped_early_keeps_its_best(model) -> None:
    net, vocab = model
    gen = Generator(net, vocab)
    gen.prime(PROMPT)
    before = gen.get_state()
    search = BeamSearch.from_generator(gen, width=3, length=50)
    positions = []
    for progress in search:
        positions.append(progress.position)
        if progress.position == 20:
            break  # what Ctrl-C does in a front end
    assert positions == list(range(1, 21))
    partial = search.result()
    assert len(partial.tokens) == 20 and not partial.complete
    assert partial.total_bits == pytest.approx(bits_by_forward(net, vocab, PROMPT, partial.text), rel=1e-5)
    assert progress.best_bits == partial.total_bits
    np.testing.assert_array_equal(gen.get_state().lstm.h, before.lstm.h)  # the generator itself did not move


def hand_built_model() -> tuple[NumpyLSTM, Vocabulary]:
    """A 1-layer LSTM over "abc" whose hidden state is (almost exactly) a one-hot of the last character, with a
    head that turns it into a chosen transition table: after "a", "b" is likelier than "c", but "b" leads
    nowhere in particular while "c" is followed by "a" almost surely, so greedy's first step is the wrong one."""
    vocab = Vocabulary("abc")
    transitions = np.array(
        [
            [0.10, 0.50, 0.40],  # after a
            [0.34, 0.33, 0.33],  # after b
            [0.95, 0.03, 0.02],  # after c
        ]
    )
    v = len(vocab)
    config = ModelConfig(vocab_size=v, embed_dim=v, hidden_size=v, num_layers=1, dropout=0.0)
    big = 12.0
    # PyTorch gate order i, f, g, o: input and output gates open, forget gate shut, g = tanh(big · onehot).
    w_ih = np.zeros((4 * v, v))
    w_ih[2 * v : 3 * v] = big * np.eye(v)
    bias = np.concatenate([np.full(v, big), np.full(v, -big), np.zeros(v), np.full(v, big)])
    h_one = np.tanh(np.tanh(big))  # the hidden value of the active unit
    tensors = {
        "embedding.weight": np.eye(v),
        "lstm.weight_ih_l0": w_ih,
        "lstm.weight_hh_l0": np.zeros((4 * v, v)),
        "lstm.bias_ih_l0": bias,
        "lstm.bias_hh_l0": np.zeros(4 * v),
        "head.weight": np.log(transitions).T / h_one,
        "head.bias": np.zeros(v),
    }
    return NumpyLSTM(config, {k: np.asarray(a, np.float32) for k, a in tensors.items()}), vocab


def test_a_wider_beam_finds_the_likeliest_sequence_that_greedy_misses() -> None:
    net, vocab = hand_built_model()
    length = 4
    # Brute force over all 3**4 continuations, each scored by the model itself.
    exact = {"".join(s): bits_by_forward(net, vocab, "a", "".join(s)) for s in itertools.product("abc", repeat=length)}
    best = min(exact, key=exact.get)
    greedy = beam_search(net, vocab, "a", width=1, length=length)
    assert greedy.text != best and greedy.total_bits > exact[best] + 0.5  # greedy provably loses here
    for width in (2, 3, 8):
        found = beam_search(net, vocab, "a", width=width, length=length)
        assert found.text == best
        assert found.total_bits == pytest.approx(exact[best], rel=1e-6)


def test_ties_go_to_the_lower_character_id() -> None:
    """A model whose every distribution is uniform: all texts tie, and the beam must answer with id 0 throughout."""
    vocab = Vocabulary("xyz")
    config = ModelConfig(vocab_size=3, embed_dim=2, hidden_size=2, num_layers=1, dropout=0.0)
    tensors = {k: np.zeros(s, np.float32) for k, s in config.tensor_shapes().items()}
    for width in (1, 2, 5):
        assert beam_search(NumpyLSTM(config, tensors), vocab, "z", width=width, length=6).text == "xxxxxx"


@pytest.mark.parametrize("width", [0, -1, MAX_WIDTH + 1, 2.5, True, "4"])
def test_bad_width_is_a_one_line_error(model, width) -> None:
    net, vocab = model
    with pytest.raises(TextgenError, match="beam width") as info:
        beam_search(net, vocab, PROMPT, width=width, length=5)
    assert "\n" not in str(info.value)


def test_bad_length_is_a_one_line_error(model) -> None:
    net, vocab = model
    with pytest.raises(TextgenError, match="length"):
        beam_search(net, vocab, PROMPT, width=2, length=-1)
    assert beam_search(net, vocab, PROMPT, width=2, length=0).tokens == []


def test_an_empty_prompt_starts_as_the_sampler_does(tmp_path: Path) -> None:
    """An empty prompt starts like the sampler does (the start character), not from nothing."""
    ckpt = checkpoint.load(write_random_checkpoint(tmp_path / "m.safetensors"))
    net = NumpyLSTM.from_checkpoint(ckpt)
    gen = Generator(net, ckpt.vocab, settings=SamplingSettings(temperature=0))
    gen.prime("")
    assert beam_search(net, ckpt.vocab, "", width=1, length=30).text == "".join(t.char for t in gen.stream(30))
