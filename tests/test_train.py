"""The trainer: stream batching, state carry, learning, checkpoints, atomic writes, exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import TINY_CONFIG as TINY
from tests.conftest import run_cli
from textgen_core import checkpoint as ckpt
from textgen_core.atomic import atomic_write_bytes
from textgen_core.errors import TextgenError
from textgen_core.runfolder import RESUME_KEYS, read_resume, run_step
from textgen_core.training.batching import make_streams, stream_batch
from textgen_core.training.config import TrainConfig
from textgen_core.training.evaluation import evaluate_bpc
from textgen_core.training.loop import Trainer
from textgen_core.training.model import CharLSTM, dropout, module_name


def tiny_config(corpus, out, **kw) -> TrainConfig:
    return TrainConfig(corpus=[str(corpus)], out=str(out), **{**TINY, **kw})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_1_minus_p_scales_the_kept_and_passes_gradient_through_the_mask(dtype):
    torch.manual_seed(0)
    p = 0.3
    x = torch.full((400, 500), 2.0, dtype=dtype, requires_grad=True)
    y = dropout(x, p, training=True)
    assert y.dtype == dtype
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert torch.allclose(y[kept].float(), torch.tensor(2.0 / (1 - p)), rtol=1e-2)
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # the gradient flows through the same mask
    assert dropout(x, p, training=False) is x and dropout(x, 0.0, training=True) is x


def test_each_layer_runs_as_its_own_lstm_under_the_checkpoint_names(corpus_file, tmp_path):
    """The model runs one `nn.LSTM` per layer (so dropout between layers is ours); checkpoints keep the
    multi-layer names, which the numpy path reads: a round trip through them gives the same outputs."""
    model = CharLSTM(tiny_config(corpus_file, tmp_path).model_config(20)).eval()
    assert module_name("lstm.weight_hh_l1", "lstm") == "layers.1.weight_hh_l0"
    assert module_name("gru.bias_ih_l0", "gru") == "layers.0.bias_ih_l0"
    assert module_name("head.bias", "lstm") == "head.bias"
    tensors = model.to_numpy()
    assert set(tensors) == set(model.config.tensor_shapes())
    twin = CharLSTM.from_numpy(model.config, tensors).eval()
    ids = torch.randint(0, 20, (3, 17))
    (a, (ha, ca)), (b, (hb, cb)) = model(ids), twin(ids)
    assert ha.shape == (2, 3, 32) and torch.equal(a, b) and torch.equal(ha, hb) and torch.equal(ca, cb)
    # The same tensors in one multi-layer nn.LSTM (the layout that wrote older checkpoints, and the bundled model)
    # compute the same thing: the names map each layer to its own weights.
    stacked = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True)
    stacked.load_state_dict(
        {k[len("lstm.") :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("lstm.")}
    )
    with torch.no_grad():
        out, (hs, cs) = stacked(model.embedding(ids))
        torch.testing.assert_close(model.head(out), a)
        torch.testing.assert_close((hs, cs), (ha, ca))


def test_streams_are_contiguous_and_targets_shift_by_one():
    tokens = np.arange(1000) % 97
    streams = torch.from_numpy(make_streams(tokens, 4).astype(np.int64))
    assert streams.shape == (4, 250)
    assert (streams[1, 0] == tokens[250]).item()
    x0, y0 = stream_batch(streams, 3, 0, 16)
    x1, _ = stream_batch(streams, 3, 1, 16)
    assert torch.equal(y0[:, :-1], x0[:, 1:])  # targets are the inputs shifted by one
    assert torch.equal(x1[:, 0], y0[:, -1])  # the next chunk continues exactly where this one ended
    assert torch.equal(x0[:, 0], streams[:, 3])


def test_state_carries_across_chunks_and_resets_each_epoch(corpus_file, tmp_path):
    t = Trainer(tiny_config(corpus_file, tmp_path / "run", steps=1))
    seen: list[tuple] = []
    forward = t.model.forward

    def spy(ids, state=None):
        seen.append(tuple(s.clone() for s in state))
        out = forward(ids, state)
        seen.append(tuple(s.detach().clone() for s in out[1]))
        return out

    t.model.forward = spy
    for _ in range(t.steps_per_epoch + 1):
        t._train_step()
    assert torch.count_nonzero(seen[0][0]) == 0  # fresh epoch: zero state
    assert torch.allclose(seen[2][0], seen[1][0]) and torch.allclose(seen[2][1], seen[1][1])  # carried
    assert torch.count_nonzero(seen[2 * t.steps_per_epoch][0]) == 0  # next epoch starts fresh


def test_loss_decreases_and_best_checkpoint_round_trips(corpus_file, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(corpus_file, out, steps=60, lr=1e-2, seq_len=64, batch_size=8, dropout=0.0, hidden_size=64)
    t = Trainer(cfg, command="textgen train test")
    assert t.run() == "done"
    vals = [json.loads(line)["val_bpc"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(vals) == 6
    assert vals[0] - min(vals) > 0.8  # it learns: validation bpc falls steadily
    first, best = t.model_config, ckpt.load(out)
    assert best.meta.val_bpc == pytest.approx(min(vals)) and best.meta.step == t.best_step
    assert best.meta.val_bpc < 3.3 < math.log2(len(t.corpus.vocab))  # well below a uniform guess
    assert best.config == first and best.vocab == t.corpus.vocab
    assert best.meta.corpus[0].sha256 == t.corpus.sources[0].sha256
    assert best.meta.command == "textgen train test"
    # The weights rebuild a model that scores the validation text exactly as reported.
    model = CharLSTM.from_numpy(best.config, best.tensors)
    assert evaluate_bpc(model, t.val_tokens, torch.device("cpu")) == pytest.approx(best.meta.val_bpc, abs=1e-4)


def test_evaluate_bpc_matches_a_single_full_pass(corpus_file, tmp_path):
    t = Trainer(tiny_config(corpus_file, tmp_path / "run", steps=1))
    t.model.eval()
    tokens = t.val_tokens[:1500]
    with torch.no_grad():
        ids = torch.from_numpy(tokens.astype(np.int64))[None]
        logits, _ = t.model(ids[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="sum")
    exact = float(nll) / (len(tokens) - 1) / math.log(2)
    assert evaluate_bpc(t.model, tokens, torch.device("cpu"), n_streams=1) == pytest.approx(exact, rel=1e-5)
    # Parallel pieces with burn-in stay close to the single pass.
    assert evaluate_bpc(t.model, tokens, torch.device("cpu"), n_streams=8, burn_in=64) == pytest.approx(exact, rel=2e-3)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_equals_uninterrupted_run(corpus_file, tmp_path, ema):
    full = Trainer(tiny_config(corpus_file, tmp_path / "full", steps=24, dropout=0.3, ema=ema))
    full.run()
    part = Trainer(tiny_config(corpus_file, tmp_path / "part", steps=24, dropout=0.3, ema=ema))
    assert part.run(should_stop=lambda tr: tr.step == 13) == "interrupted"
    assert part.step == 13 and run_step(tmp_path / "part") == 13
    resumed = Trainer(tiny_config(corpus_file, tmp_path / "part", steps=24, dropout=0.3), resume=True)
    assert resumed.step == 13 and resumed.config.ema == ema
    assert resumed.run() == "done" and resumed.step == 24
    for a, b in ((full.model, resumed.model), (full.weights, resumed.weights)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            assert torch.allclose(sa[k], sb[k], atol=1e-6), k
    assert resumed.best_val == pytest.approx(full.best_val, abs=1e-6)


def test_a_run_resumes_with_its_own_weight_decay_after_the_default_changed(corpus_file, tmp_path):
    """The default weight decay went from 0 to 0.3: a run started under the old default (or with any other
    value) must go on with its own, or its resume would no longer equal the uninterrupted run."""
    own = 0.0 if TrainConfig.weight_decay != 0.0 else 0.3
    full = Trainer(tiny_config(corpus_file, tmp_path / "full", steps=16, weight_decay=own))
    full.run()
    part = Trainer(tiny_config(corpus_file, tmp_path / "part", steps=16, weight_decay=own))
    assert part.run(should_stop=lambda tr: tr.step == 7) == "interrupted"
    resumed = Trainer(tiny_config(corpus_file, tmp_path / "part", steps=16), resume=True)
    assert resumed.config.weight_decay == own and resumed.optimizer.param_groups[0]["weight_decay"] == own
    assert resumed.run() == "done"
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k


def test_a_bare_resume_goes_on_with_the_runs_budget_and_evaluation_cadence(corpus_file, tmp_path):
    """`textgen train CORPUS --out RUN --resume` with no other flag ends where the uninterrupted run would have,
    evaluating as often as it did; a budget given on the command line replaces the run's."""
    out = tmp_path / "run"
    part = Trainer(tiny_config(corpus_file, out, steps=30, eval_every=6))
    assert part.run(should_stop=lambda tr: tr.step == 13) == "interrupted"
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--resume", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "budget 30 steps" in proc.stdout
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [6, 12, 18, 24, 30]
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--resume", "--steps", "36", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "budget 36 steps" in proc.stdout and run_step(out) == 36


def test_a_resume_keeps_the_runs_sample_length_unless_given(corpus_file, tmp_path):
    """Samples are reporting, not training: `--sample-len 0` on a resume turns them off (and the run keeps that)."""
    out = tmp_path / "run"
    part = Trainer(tiny_config(corpus_file, out, steps=18, eval_every=6, sample_len=20))
    assert part.run(should_stop=lambda tr: tr.step == 4) == "interrupted"
    base = ("train", str(corpus_file), "--out", str(out), "--resume", "--device", "cpu")
    proc = run_cli(*base, "--steps", "6")
    assert proc.returncode == 0, proc.stderr
    assert "T=0.2" in proc.stdout  # the run's own sample length
    proc = run_cli(*base, "--steps", "12", "--sample-len", "0")
    assert proc.returncode == 0, proc.stderr
    assert "eval step 12" in proc.stdout and "T=0.2" not in proc.stdout
    proc = run_cli(*base, "--steps", "18")
    assert proc.returncode == 0, proc.stderr
    assert "eval step 18" in proc.stdout and "T=0.2" not in proc.stdout


def test_ema_is_what_is_evaluated_and_saved(corpus_file, tmp_path):
    out = tmp_path / "run"
    t = Trainer(tiny_config(corpus_file, out, steps=30, lr=1e-2, ema=0.95, eval_every=30))
    assert t.run() == "done"
    trained, averaged = t.model.to_numpy(), t.weights.to_numpy()
    saved = ckpt.load(out)
    for k, v in saved.tensors.items():
        assert np.array_equal(v, averaged[k]), k
        assert not np.allclose(v, trained[k]), k  # the average lags the latest weights
    model = CharLSTM.from_numpy(saved.config, saved.tensors)
    assert evaluate_bpc(model, t.val_tokens, torch.device("cpu")) == pytest.approx(saved.meta.val_bpc, abs=1e-4)
    assert saved.meta.extra["ema"] == 0.95


def test_ema_turned_on_at_resume_averages_from_the_resumed_weights(corpus_file, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(corpus_file, out, steps=10)).run()
    resumed = Trainer(tiny_config(corpus_file, out, steps=12, ema=0.99), resume=True, explicit=frozenset({"ema"}))

    def weights(m: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in m.state_dict().items()}

    resumed._train_step()
    first = weights(resumed.model)
    for k, v in weights(resumed.weights).items():  # the average starts at the first weights after the resume
        assert torch.equal(v, first[k]), k
    resumed._train_step()
    # The decay ramps up as (1 + n) / (10 + n): the second update keeps 2/11 of the average.
    for k, v in weights(resumed.weights).items():
        assert torch.allclose(v, 2 / 11 * first[k] + 9 / 11 * resumed.model.state_dict()[k], atol=1e-6), k


def test_resume_refuses_a_different_corpus_or_model(corpus_file, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(corpus_file, out, steps=5)).run()
    other = tmp_path / "other.txt"
    other.write_text(corpus_file.read_text()[::-1])
    with pytest.raises(TextgenError, match="corpus differs"):
        Trainer(tiny_config(other, out, steps=10), resume=True)
    with pytest.raises(TextgenError, match="--hidden-size 64 differs"):
        Trainer(
            tiny_config(corpus_file, out, steps=10, hidden_size=64), resume=True, explicit=frozenset({"hidden_size"})
        )


def test_a_new_run_never_starts_over_a_folder_that_holds_one(corpus_file, tmp_path):
    """Library users get the CLI's protection: a new Trainer in a used folder would replace its model."""
    out = tmp_path / "run"
    Trainer(tiny_config(corpus_file, out, steps=5)).run()
    with pytest.raises(TextgenError, match="add --resume"):
        Trainer(tiny_config(corpus_file, out, steps=5))
    (out / ckpt.RESUME_NAME).unlink()
    before = (out / ckpt.WEIGHTS_NAME).read_bytes()
    with pytest.raises(TextgenError, match="already holds a trained model"):
        Trainer(tiny_config(corpus_file, out, steps=5))
    assert (out / ckpt.WEIGHTS_NAME).read_bytes() == before


def test_init_starts_from_a_checkpoint_and_keeps_its_vocabulary(corpus_file, tmp_path):
    """Fine-tuning: the run starts from the checkpoint's weights, on a corpus that uses only some of its
    characters; its checkpoints, samples and resume keep the parent's vocabulary and name the parent."""
    parent = tmp_path / "parent"
    Trainer(tiny_config(corpus_file, parent, steps=5, dropout=0.1)).run()
    start = ckpt.load(parent)
    subset = tmp_path / "subset.txt"
    subset.write_text("".join(ch for ch in corpus_file.read_text() if ch not in "aeiouAEIOU"))
    child = tmp_path / "child"
    t = Trainer(tiny_config(subset, child, steps=6, eval_every=3, sample_len=10, init=str(parent)))
    assert len(t.corpus.vocab) < len(start.vocab) and t.vocab == start.vocab
    assert t.config.dropout == 0.1  # the parent's, as the command did not give one
    for name, arr in t.model.to_numpy().items():
        assert np.array_equal(arr, start.tensors[name]), name
    # The corpus's ids are renumbered as the model's vocabulary numbers them.
    val_text = subset.read_text()[-len(t.val_tokens) :]
    assert t.vocab.decode(t.val_tokens.tolist()) == val_text
    t.run()
    saved = ckpt.load(child)
    assert saved.vocab == start.vocab
    assert saved.meta.extra["init"]["step"] == 5 and saved.meta.extra["init"]["checkpoint"] == str(parent)
    assert saved.meta.extra["init"]["command"] == start.meta.command
    grandchild = Trainer(tiny_config(subset, tmp_path / "grandchild", steps=3, eval_every=3, init=str(child)))
    grandchild.run()
    assert ckpt.load(grandchild.out).meta.extra["init"]["init"]["step"] == 5  # the whole chain is kept
    resumed = Trainer(tiny_config(subset, child, steps=9), resume=True)
    assert resumed.step == 6 and resumed.vocab == start.vocab
    resumed.run()
    assert ckpt.load(child).meta.extra["init"]["step"] == 5


def test_init_refuses_what_the_checkpoint_cannot_be(corpus_file, tmp_path):
    parent = tmp_path / "parent"
    Trainer(tiny_config(corpus_file, parent, steps=2)).run()
    other = tmp_path / "other.txt"
    other.write_text(corpus_file.read_text() + "Ærø\n")
    with pytest.raises(TextgenError, match="--init: the corpus has 'Æø', which the model's vocabulary lacks"):
        Trainer(tiny_config(other, tmp_path / "a", steps=2, init=str(parent)))
    with pytest.raises(TextgenError, match="--init: --hidden-size 64 differs from the checkpoint's 32; drop"):
        Trainer(
            tiny_config(corpus_file, tmp_path / "b", steps=2, hidden_size=64, init=str(parent)),
            explicit=frozenset({"hidden_size", "init"}),
        )
    with pytest.raises(TextgenError, match="no such checkpoint"):
        Trainer(tiny_config(corpus_file, tmp_path / "c", steps=2, init=str(tmp_path / "nope")))
    given = Trainer(
        tiny_config(corpus_file, tmp_path / "d", steps=2, dropout=0.3, init=str(parent)),
        explicit=frozenset({"dropout", "init"}),
    )
    assert given.config.dropout == 0.3


def test_interrupted_atomic_write_leaves_the_old_checkpoint_loadable(corpus_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    t = Trainer(tiny_config(corpus_file, out, steps=10))
    t.run()
    before = (out / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(TextgenError, match=r"No space left on device.*intact"):
        t.save_best(1.0, 0.5)
    monkeypatch.undo()
    assert (out / "model.safetensors").read_bytes() == before
    assert ckpt.load(out).meta.step == 10
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


def test_a_write_that_fails_midway_for_any_reason_leaves_the_old_file_and_no_temporary(tmp_path):
    from textgen_core.atomic import atomic_write

    p = tmp_path / "resume.safetensors"
    atomic_write_bytes(p, b"old")

    def half_then_fail(f) -> None:
        f.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, half_then_fail)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["resume.safetensors"]


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new contents")
    assert p.read_bytes() == b"new contents"


def test_written_safetensors_read_back_exactly_with_safetensors_own_readers(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    rng = np.random.default_rng(0)
    tensors = {
        "model/w": rng.standard_normal((5, 3), dtype=np.float32),
        "half": rng.standard_normal(7).astype(np.float16),  # 14 bytes: the next tensor starts unaligned
        "rng/torch": rng.integers(0, 256, (2, 9), dtype=np.uint8),
        "transposed": rng.standard_normal((4, 6)).T,  # float64, not contiguous
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "step": np.array([12.0], dtype=np.float32),
        "scalar": np.array(0.5, dtype=np.float32),  # 0-d: the shape must stay ()
    }
    path = tmp_path / "x.safetensors"
    ckpt.write_safetensors(path, tensors, {"resume": '{"step": 12}'})
    back = load_file(str(path))
    assert back.keys() == tensors.keys()
    for name, arr in tensors.items():
        assert back[name].dtype == arr.dtype.newbyteorder("=") and back[name].shape == arr.shape, name
        assert np.array_equal(back[name], arr), name
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"resume": '{"step": 12}'}


def test_writing_safetensors_does_not_build_the_file_in_memory(tmp_path):
    """A resume file is several times the model; writing it must not hold a second copy of it."""
    import tracemalloc

    tensors = {"a": np.ones(4_000_000, dtype=np.float32), "b": np.zeros((1000, 1000), dtype=np.float32)}
    size = sum(a.nbytes for a in tensors.values())
    tracemalloc.start()
    try:
        ckpt.write_safetensors(tmp_path / "x.safetensors", tensors, {"k": "v"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "x.safetensors").stat().st_size > size
    assert peak < size / 20


def test_reading_a_resume_file_holds_its_tensors_once(tmp_path):
    """A resume file is several times the model; reading it must not hold the file and its tensors together."""
    import tracemalloc

    tensors = {
        "model/w": np.ones(4_000_000, dtype=np.float32),
        "stream/h": np.zeros((2, 4, 8), dtype=np.float32),
        "stream/c": np.ones((2, 4, 8), dtype=np.float32),
        "rng/torch": np.arange(10, dtype=np.uint8),
    }
    ckpt.write_safetensors(tmp_path / ckpt.RESUME_NAME, tensors, {"resume": json.dumps({k: {} for k in RESUME_KEYS})})
    size = sum(a.nbytes for a in tensors.values())
    tracemalloc.start()
    try:
        back, meta = read_resume(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(meta) == set(RESUME_KEYS)
    for name, arr in tensors.items():
        assert np.array_equal(back[name], arr), name
    assert peak < 1.25 * size


def test_diverging_loss_stops_without_overwriting_the_checkpoint(corpus_file, tmp_path):
    out = tmp_path / "run"
    t = Trainer(tiny_config(corpus_file, out, steps=20))
    t.run(should_stop=lambda tr: tr.step == 10)
    good = (out / "model.safetensors").read_bytes()
    t2 = Trainer(tiny_config(corpus_file, out, steps=20), resume=True)
    with torch.no_grad():
        t2.model.head.bias.fill_(float("nan"))
    with pytest.raises(TextgenError, match="diverged at step 11"):
        t2.run()
    assert (out / "model.safetensors").read_bytes() == good


def test_a_resume_file_missing_fields_is_a_one_line_error(corpus_file, tmp_path):
    from safetensors.numpy import load_file, save_file

    out = tmp_path / "run"
    Trainer(tiny_config(corpus_file, out, steps=4)).run()
    path = out / "resume.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["resume"])
    del meta["step"]
    save_file(load_file(str(path)), str(path), metadata={"resume": json.dumps(meta)})
    with pytest.raises(TextgenError, match=r"resume state is incomplete \(lacks step\)"):
        Trainer(tiny_config(corpus_file, out, steps=8), resume=True)


def test_a_resume_file_that_lost_its_moving_average_is_a_one_line_error(corpus_file, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    out = tmp_path / "run"
    Trainer(tiny_config(corpus_file, out, steps=4, ema=0.9)).run()
    path = out / "resume.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("ema/")}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(TextgenError, match=r"lacks the moving average.*--ema 0"):
        Trainer(tiny_config(corpus_file, out, steps=8), resume=True)
    # Turning the average off, as the message says, resumes.
    assert Trainer(tiny_config(corpus_file, out, steps=8, ema=0.0), resume=True, explicit=frozenset({"ema"})).step == 4
