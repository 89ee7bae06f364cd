"""The numpy generation engine against torch, and the Generator / sample_many / score contracts."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, run_cli, write_random_checkpoint

from textgen_core import checkpoint
from textgen_core.generate import Generator, encode_seed, sample_many, start_id
from textgen_core.inference import NumpyLSTM
from textgen_core.sampling import SamplingSettings, softmax
from textgen_core.scoring import score
from textgen_core.training.model import CharLSTM


def load(path: Path) -> tuple[checkpoint.Checkpoint, NumpyLSTM, CharLSTM]:
    ckpt = checkpoint.load(path)
    return ckpt, NumpyLSTM.from_checkpoint(ckpt), CharLSTM.from_numpy(ckpt.config, ckpt.tensors).eval()


def torch_logits(model: CharLSTM, ids: np.ndarray) -> np.ndarray:
    """Full-sequence torch forward from a zero state: logits after each character, (T, V)."""
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(ids, dtype=np.int64))[None])[0][0].numpy()


def model_distribution(gen: Generator) -> np.ndarray:
    """The generator's pending T=1 distribution, read through the public API on a copy of its state."""
    saved = gen.get_state()
    (token,) = gen.stream(1, alternatives=len(gen.vocab))
    gen.set_state(saved)
    probs = np.zeros(len(gen.vocab))
    for ch, p in token.alternatives:
        probs[gen.vocab.index(ch)] = p
    return probs


def test_numpy_steps_match_torch_over_300_steps(gen_checkpoint: Path) -> None:
    ckpt, net, ref = load(gen_checkpoint)
    ids = np.random.default_rng(0).integers(0, ckpt.config.vocab_size, 300)
    expected = torch_logits(ref, ids)
    state = net.initial_state(1)
    got = np.stack([net.step(ids[t : t + 1], state)[0][0] for t in range(len(ids))])
    assert np.abs(got - expected).max() <= 1e-4
    full, _ = net.forward(ids, net.initial_state(1))
    assert np.abs(full - expected).max() <= 1e-4


def test_batched_steps_match_torch_per_stream(gen_checkpoint: Path) -> None:
    ckpt, net, ref = load(gen_checkpoint)
    ids = np.random.default_rng(1).integers(0, ckpt.config.vocab_size, (3, 50))
    state = net.initial_state(3)
    got = np.stack([net.step(ids[:, t], state)[0] for t in range(50)], axis=1)
    for b in range(3):
        assert np.abs(got[b] - torch_logits(ref, ids[b])).max() <= 1e-4


def test_distribution_after_priming_and_streaming_equals_full_recompute(gen_checkpoint: Path) -> None:
    ckpt, net, ref = load(gen_checkpoint)
    gen = Generator(net, ckpt.vocab, seed=3)
    seed = gen.prime("The will to power is")
    np.testing.assert_allclose(model_distribution(gen), softmax(torch_logits(ref, seed.ids)[-1]), atol=1e-5)
    tokens = list(gen.stream(40, alternatives=len(ckpt.vocab)))
    recomputed = softmax(torch_logits(ref, np.concatenate([seed.ids, [t.index for t in tokens]])))
    for i, token in enumerate(tokens):
        expected = recomputed[len(seed.ids) - 1 + i]
        assert token.prob == pytest.approx(expected[token.index], abs=1e-5)
        got = dict(token.alternatives)
        assert all(got[ch] == pytest.approx(expected[ckpt.vocab.index(ch)], abs=1e-5) for ch in got)
        assert token.entropy == pytest.approx(-(expected * np.log2(expected)).sum(), abs=1e-4)
        assert token.sampled_prob == pytest.approx(token.prob)  # T = 1, no filters


def test_unknown_seed_characters_are_reported_and_skipped(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    assert "é" not in ckpt.vocab and "€" not in ckpt.vocab
    gen = Generator(net, ckpt.vocab)
    result = gen.prime("thé will €€ to")
    assert result.unknown == {"é": 1, "€": 2} and result.unknown_count == 3
    assert result.text == "th will  to"
    with_unknown = model_distribution(gen)
    gen.prime("th will  to")
    np.testing.assert_array_equal(model_distribution(gen), with_unknown)


def test_lowercase_model_lowercases_the_seed(tmp_path: Path) -> None:
    path = write_random_checkpoint(tmp_path / "lower.safetensors", text="the will to power.\n", layers=2)
    ckpt = checkpoint.load(path)
    checkpoint.save(path, ckpt.tensors, dataclasses.replace(ckpt.meta, lowercase=True))
    gen = Generator.from_checkpoint(checkpoint.load(path))
    result = gen.prime("THE Will")
    assert result.text == "the will" and result.unknown == {}


def test_empty_seed_starts_from_newline_or_the_most_likely_first_character(tmp_path: Path) -> None:
    ckpt, net, _ = load(write_random_checkpoint(tmp_path / "a.safetensors", layers=2))
    assert encode_seed(net, ckpt.vocab, "").text == "\n"
    assert encode_seed(net, ckpt.vocab, "€").started_empty  # nothing usable: same start
    ckpt, net, _ = load(write_random_checkpoint(tmp_path / "b.safetensors", text="abc xyz", layers=2))
    seed = encode_seed(net, ckpt.vocab, "")
    assert seed.started_empty and seed.ids[0] == np.argmax(ckpt.tensors["head.bias"])
    assert start_id(net, ckpt.vocab) == seed.ids[0]


def test_get_and_set_state_rewind_exactly(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    gen = Generator(net, ckpt.vocab, seed=5)
    gen.prime("the will")
    saved = gen.get_state()
    gen.set_seed(11)
    first = list(gen.stream(30))
    more = list(gen.stream(10))
    gen.set_state(saved)
    gen.set_seed(11)
    again = list(gen.stream(40))
    assert again == first + more  # stopping and resuming a stream is seamless, rewinding is exact


def test_carry_priming_continues_the_state(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    gen = Generator(net, ckpt.vocab)
    gen.prime("the will ")
    gen.prime("to power", carry=True)
    carried = model_distribution(gen)
    gen.prime("the will to power")
    np.testing.assert_allclose(model_distribution(gen), carried, atol=1e-6)
    assert gen.prime("", carry=True).ids.size == 0


def test_settings_are_read_at_every_character(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    gen = Generator(net, ckpt.vocab, settings=SamplingSettings(1.5), seed=0)
    gen.prime("the")
    tokens = []
    for i, token in enumerate(gen.stream(20, alternatives=1)):
        tokens.append(token)
        if i == 9:
            gen.settings = SamplingSettings(0)  # e.g. the REPL's live temperature key
    assert all(t.sampled_prob == 1.0 and t.char == t.alternatives[0][0] for t in tokens[10:])


def test_sample_many_rows_equal_single_runs_with_the_spawned_generators(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    settings = [SamplingSettings(t) for t in (0.2, 0.5, 1.0, 1.2)] + [SamplingSettings(0.8, top_k=5, top_p=0.9)]
    rows = list(sample_many(net, ckpt.vocab, "the will", settings, 60, np.random.default_rng(7)))
    assert len(rows) == 60 and all(len(r) == len(settings) for r in rows)
    children = np.random.default_rng(7).spawn(len(settings))
    for i, s in enumerate(settings):
        gen = Generator(net, ckpt.vocab, settings=s)
        gen.rng = children[i]
        gen.prime("the will")
        single = list(gen.stream(60))
        assert "".join(t.char for t in single) == "".join(r[i].char for r in rows)
        np.testing.assert_allclose([t.prob for t in single], [r[i].prob for r in rows], rtol=1e-5)


def test_score_matches_torch_and_the_generators_probabilities(gen_checkpoint: Path) -> None:
    ckpt, net, ref = load(gen_checkpoint)
    gen = Generator(net, ckpt.vocab, seed=2)  # starts from the empty seed, like score
    tokens = list(gen.stream(80))
    text = "".join(t.char for t in tokens)
    result = score(net, ckpt.vocab, text)
    assert result.text == text and result.chars == 80
    np.testing.assert_allclose(result.probs, [t.prob for t in tokens], rtol=1e-5)
    ids = ckpt.vocab.encode(text).ids
    logits = torch.from_numpy(torch_logits(ref, np.concatenate([[start_id(net, ckpt.vocab)], ids[:-1]])))
    nats = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ids), reduction="sum").item()
    assert result.total_bits == pytest.approx(nats / np.log(2), rel=1e-5)
    assert result.bpc == pytest.approx(result.total_bits / 80)


def test_score_skips_and_counts_unknown_characters(gen_checkpoint: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    result = score(net, ckpt.vocab, "the é will €")
    assert result.unknown == {"é": 1, "€": 1} and result.text == "the  will "
    assert result.probs.tolist() == score(net, ckpt.vocab, "the  will ").probs.tolist()
    assert np.isnan(score(net, ckpt.vocab, "").bpc)


def test_eval_prints_what_score_computes(gen_checkpoint: Path, tmp_path: Path) -> None:
    ckpt, net, _ = load(gen_checkpoint)
    text = "The will to power, said he.\nWhat is noble? é\n" * 40
    path = tmp_path / "eval.txt"
    path.write_text(text, encoding="utf-8")
    proc = run_cli("eval", "-c", str(gen_checkpoint), str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    expected = score(net, ckpt.vocab, text)
    assert report["bpc"] == expected.bpc and report["chars"] == expected.chars
    assert report["unknown_chars"] == 40 and report["unknown"] == {"é": 40}
    proc = run_cli("eval", "-c", str(gen_checkpoint), str(path), "--split", "val", "--val-fraction", "0.25", "--json")
    assert json.loads(proc.stdout)["bpc"] == score(net, ckpt.vocab, text[len(text) - len(text) // 4 :]).bpc


def test_generation_path_does_not_import_torch() -> None:
    code = "import sys, textgen_core.generate, textgen_core.checkpoint; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
