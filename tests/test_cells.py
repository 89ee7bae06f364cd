"""Looking inside the model: per-character cell values, text features, and the ranking of cells by correlation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_random_checkpoint
from textgen_core.cells import (
    FEATURES,
    CellTracker,
    bracket_depth,
    cell_values,
    correlations,
    feature_values,
    inside_brackets,
    inside_quotes,
    line_position,
    parse_cell,
    rank_cells,
    rank_feature,
    regex_mask,
    sentence_start,
    trace_cells,
    word_position,
)
from textgen_core.checkpoint import load
from textgen_core.errors import TextgenError
from textgen_core.generate import Generator, start_id
from textgen_core.inference import NumpyLSTM

#: With the fixture's 80 steps the best quote cell reached |r| 0.965-0.983 over training seeds 0-3 (0.87-0.93 after
#: 50 steps); the bar leaves room.
QUOTE_BAR = 0.8
#: Against a shuffled feature the best of 32 cells reached 0.026-0.044 (chance over 4,000 characters: ~0.05).
SHUFFLED_BAR = 0.2


def quoted_text(n_chars: int, seed: int) -> str:
    """Lower-case words, with runs of 2-5 upper-case words in double quotes: to predict a letter's case after a
    space inside a quotation the model must remember that a quote is open, so a cell learns to."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n_chars:
        if rng.random() < 0.25:
            words = ["".join(rng.choices("ABCDEFGH", k=rng.randint(2, 5))) for _ in range(rng.randint(2, 5))]
            piece = '"' + " ".join(words) + '" '
        else:
            piece = "".join(rng.choices("abcdefgh", k=rng.randint(2, 5))) + " "
        if rng.random() < 0.1:
            piece += "\n"
        out.append(piece)
        size += len(piece)
    return "".join(out)[:n_chars]


@pytest.fixture(scope="module")
def quote_model(tmp_path_factory: pytest.TempPathFactory):
    """A 1×32 LSTM trained for a few seconds on `quoted_text`; returns (model, vocabulary)."""
    from textgen_core.training.config import TrainConfig
    from textgen_core.training.loop import Trainer  # torch: only the tests that train pay for it

    tmp = tmp_path_factory.mktemp("cells")
    corpus = tmp / "quotes.txt"
    corpus.write_text(quoted_text(40_000, seed=0), encoding="utf-8")
    config = TrainConfig(
        corpus=[str(corpus)],
        out=str(tmp / "run"),
        embed_dim=16,
        hidden_size=32,
        num_layers=1,
        dropout=0.0,
        embed_dropout=0.0,
        weight_drop=0.0,
        batch_size=8,
        seq_len=64,
        lr=1e-2,
        warmup_steps=10,
        steps=80,
        eval_every=80,
        sample_len=0,
        device="cpu",
        precision="fp32",
    )
    trainer = Trainer(config, command="test")
    trainer.run()
    ckpt = load(tmp / "run")
    return NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab


@pytest.fixture
def tiny(tmp_path: Path):
    """A 2×32 random-weights model over `quoted_text`'s characters: enough for shapes, alignment and errors."""
    ckpt = load(write_random_checkpoint(tmp_path / "m.safetensors", layers=2, text=quoted_text(2000, 1) + "()[]{}."))
    return NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab


# ----- the ranking finds a cell that was trained to exist -------------------------------------------------------


def test_a_trained_model_has_a_quote_cell_and_a_shuffled_feature_finds_nothing(quote_model, tmp_path):
    model, vocab = quote_model
    text = quoted_text(4000, seed=7)  # unseen text of the same kind
    trace = trace_cells(model, vocab, text)
    feature = feature_values("quote", trace.text)
    best = rank_cells(trace, feature, name="quote", top=3)
    assert abs(best.cells[0].r) >= QUOTE_BAR, best
    shuffled = np.random.default_rng(0).permutation(feature)
    assert abs(rank_cells(trace, shuffled, top=1).cells[0].r) < SHUFFLED_BAR
    # The bar is one training earns: upper-case letters alone mark most quoted characters, and an untrained model
    # of the same shape follows them only partly (best |r| 0.33-0.56 over three random seeds).
    ckpt = load(write_random_checkpoint(tmp_path / "r.safetensors", layers=1, text=quoted_text(40_000, seed=0)))
    untrained = trace_cells(NumpyLSTM.from_checkpoint(ckpt), ckpt.vocab, text)
    assert abs(rank_cells(untrained, feature, top=1).cells[0].r) < QUOTE_BAR
    # The cell's own values, read in one exact stream, are what the ranking correlated.
    cell = best.cells[0]
    text, values = cell_values(model, vocab, trace.text, cell.layer, cell.index)
    assert text == trace.text
    assert abs(np.corrcoef(values, feature)[0, 1]) >= QUOTE_BAR


# ----- running a text --------------------------------------------------------------------------------------------


def test_trace_values_are_the_states_after_each_character_from_the_start_character(tiny):
    model, vocab = tiny
    text = quoted_text(300, seed=3)
    trace = trace_cells(model, vocab, text, streams=1)
    assert trace.values.shape == (300, 2 * 32) and trace.values.dtype == np.float32
    state = model.initial_state(1)
    model.step(np.array([start_id(model, vocab)]), state)
    for t, i in enumerate(vocab.encode(text).ids[:50]):
        model.step(np.array([i]), state)
        np.testing.assert_array_equal(trace.values[t], np.tanh(state.c[:, 0]))
    np.testing.assert_array_equal(trace.cell(1, 5), trace.values[:, 32 + 5])


def test_parallel_streams_agree_with_one_stream_after_the_burn_in(tiny):
    model, vocab = tiny
    text = quoted_text(4000, seed=4)
    exact = trace_cells(model, vocab, text, streams=1).values

    def off(burn_in: int) -> float:
        """The share of values more than 0.01 from one stream's, in 4 streams after `burn_in` characters."""
        parallel = trace_cells(model, vocab, text, streams=4, burn_in=burn_in).values
        assert parallel.shape == exact.shape
        # The first stream reads from the true start: equal up to the rounding of a batched product.
        np.testing.assert_allclose(parallel[:900], exact[:900], atol=1e-4)
        return float((np.abs(parallel - exact) > 0.01).mean())

    # Measured on this model: 4.2% without a burn-in, 0.07% after 200 characters (a random model forgets slowly).
    assert off(200) < 0.005 and off(0) > 10 * off(200)


def test_long_texts_are_cut_and_say_so_unknown_characters_are_skipped_and_lowercase_applies(tiny):
    model, vocab = tiny
    trace = trace_cells(model, vocab, quoted_text(500, 5) + "ÿ", max_chars=100)
    assert trace.chars == 100 and trace.values.shape[0] == 100 and trace.truncated and trace.source_chars == 500
    assert trace.unknown == {"ÿ": 1}
    lower = trace_cells(model, vocab, "ABC abc " * 5, lowercase=True)
    assert lower.text == "abc abc " * 5 and not lower.truncated


def test_cell_values_and_the_tracker_read_the_same_cell_as_the_trace(tiny):
    model, vocab = tiny
    text = quoted_text(200, 6)
    trace = trace_cells(model, vocab, text)
    _, values = cell_values(model, vocab, text, 1, 7)
    np.testing.assert_array_equal(values, trace.cell(1, 7))
    # While generating: the tracker reads the chosen cell from the state the generator just stepped.
    gen = Generator(model, vocab, seed=0)
    tracker = CellTracker(model, 1, 7)
    tokens = "".join(t.char for t in gen.stream(30))
    live = tracker.value(gen.get_state().lstm)
    _, replay = cell_values(model, vocab, tokens, 1, 7)
    assert tracker.label == "1:7" and live == pytest.approx(float(replay[-1]), abs=1e-5)
    assert tracker.values(model.initial_state(3)).shape == (3,)


# ----- features --------------------------------------------------------------------------------------------------


def test_quotes_straight_and_curly_open_on_the_opening_quote_and_close_on_the_closing_one():
    assert inside_quotes('a "bc" d').tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert inside_quotes("a “b” c").tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert inside_quotes('"a\n\nb').tolist() == [1, 1, 1, 0, 0]  # a blank line ends an unclosed quotation


def test_brackets_depth_and_inside():
    assert bracket_depth("a(b[c])d)").tolist() == [0, 1, 1, 2, 2, 1, 0, 0, 0]  # a stray closer is ignored
    assert inside_brackets("(a{b}) c").tolist() == [1, 1, 1, 1, 1, 0, 0, 0]


def test_line_word_and_sentence_positions():
    assert line_position("ab\ncd\n\ne").tolist() == [1, 2, 0, 1, 2, 0, 0, 1]
    assert word_position("ab c's, d").tolist() == [1, 2, 0, 1, 2, 3, 0, 0, 1]
    assert sentence_start('No. Yes!" So? x.y').tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]


def test_regex_mask_marks_the_characters_inside_matches():
    assert regex_mask(r"b+", "abbcb").tolist() == [0, 1, 1, 0, 1]
    assert regex_mask(r"x*", "ab").tolist() == [0, 0]  # empty matches mark nothing


def test_every_feature_is_registered_with_a_name_and_a_one_line_description():
    assert {"quote", "bracket", "depth", "line", "word", "sentence"} <= set(FEATURES)
    for name, f in FEATURES.items():
        assert f.name == name and " " not in name
        assert f.description.endswith(".") and "\n" not in f.description
        text = 'A "b" (c).\nD'
        assert f.compute(text).shape == (len(text),)


# ----- correlation -----------------------------------------------------------------------------------------------


def test_correlations_match_numpy_and_a_constant_cell_scores_zero():
    rng = np.random.default_rng(0)
    feature = rng.standard_normal(5000).astype(np.float32)
    values = rng.standard_normal((5000, 6)).astype(np.float32)
    values[:, 2] = 0.9 + 0.001 * feature  # barely moves, near ±1: float32 sums of squares would lose it
    values[:, 4] = 0.5
    r = correlations(values, feature)
    for j in (0, 1, 2, 3, 5):
        assert r[j] == pytest.approx(np.corrcoef(values[:, j].astype(np.float64), feature)[0, 1], abs=1e-6)
    assert r[2] == pytest.approx(1.0, abs=1e-4) and r[4] == 0.0


def test_ranking_orders_by_absolute_correlation_across_layers(tiny):
    model, vocab = tiny
    trace = trace_cells(model, vocab, quoted_text(500, 8))
    target = trace.cell(1, 3)
    ranking = rank_cells(trace, -target, name="neg", top=4)
    assert (ranking.cells[0].layer, ranking.cells[0].index) == (1, 3)
    assert ranking.cells[0].r == pytest.approx(-1.0, abs=1e-5) and ranking.cells[0].label == "1:3"
    rs = [abs(c.r) for c in ranking.cells]
    assert rs == sorted(rs, reverse=True) and len(rs) == 4
    assert ranking.to_dict()["cells"][0] == {"layer": 1, "index": 3, "correlation": ranking.cells[0].r}
    assert rank_feature(trace, "find [A-H]+").feature == "find [A-H]+"


# ----- errors: one line that says what to do ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda m, v, tr: feature_values("quotes", tr.text), "choose one of quote, bracket"),
        (lambda m, v, tr: rank_feature(tr, "find (a"), "bad regular expression"),
        (lambda m, v, tr: rank_feature(tr, "find "), "find REGEX"),
        (lambda m, v, tr: rank_feature(tr, "bracket"), "never changes"),  # the text has no brackets
        (lambda m, v, tr: rank_feature(tr, "find Z"), "never changes"),
        (lambda m, v, tr: parse_cell("2:0", m), "layers are 0 to 1"),
        (lambda m, v, tr: parse_cell("1:32", m), "cells are 0 to 31"),
        (lambda m, v, tr: parse_cell("one", m), "LAYER:INDEX"),
        (lambda m, v, tr: CellTracker(m, 0, -1), "cells are 0 to 31"),
        (lambda m, v, tr: trace_cells(m, v, "abc"), "too short"),
        (lambda m, v, tr: trace_cells(m, v, "ÿ" * 100), "too short"),
    ],
)
def test_user_errors_are_one_line_textgen_errors(tiny, call, says):
    model, vocab = tiny
    trace = trace_cells(model, vocab, "abc de " * 10)
    with pytest.raises(TextgenError) as e:
        call(model, vocab, trace)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_parse_cell_accepts_layer_colon_index(tiny):
    model, _ = tiny
    assert parse_cell("1:31", model) == (1, 31) and parse_cell(" 0 : 4 ", model) == (0, 4)
