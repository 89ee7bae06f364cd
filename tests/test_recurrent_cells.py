"""Other recurrent cells than the LSTM, as a user meets them: `textgen train --cell gru|rnn`, resumed exactly,
sampled, scored, described, and opened in the REPL; the numpy step of every cell equals torch's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    TINY_TRAIN,
    Terminal,
    assert_one_line_error,
    assert_resumes_exactly,
    make_text,
    run_cli,
    spawn_repl,
    write_random_checkpoint,
)

from textgen_core import checkpoint
from textgen_core.config import ModelConfig
from textgen_core.errors import TextgenError
from textgen_core.inference import NumpyLSTM
from textgen_core.recurrent import CELLS, TRAINABLE
from textgen_core.training.model import CharLSTM


@pytest.mark.parametrize("cell", TRAINABLE)
def test_the_numpy_step_equals_torch_for_every_trainable_cell(cell: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(23, cell=cell, embed_dim=8, hidden_size=16, num_layers=3)
    model = CharLSTM(config).eval()
    assert sum(p.numel() for p in model.parameters()) == config.num_params()
    ids = torch.randint(0, 23, (1, 40))
    with torch.no_grad():
        logits, (h, _) = model(ids)
    net = NumpyLSTM(config, model.to_numpy())
    state = net.initial_state(1)
    ours, _ = net.forward(ids[0].numpy(), state)
    assert np.abs(ours - logits[0].numpy()).max() < 1e-5
    assert np.abs(state.h.reshape(3, 16) - h[:, 0].numpy()).max() < 1e-5
    assert state.c.shape == ((48, 1) if CELLS[cell].memory else (0, 1))
    batched = net.initial_state(3)  # three streams stepped together give the single stream's logits
    for t in range(40):
        step_logits, _ = net.step(np.full(3, int(ids[0, t])), batched)
    assert np.abs(step_logits - logits[0, -1].numpy()).max() < 1e-5


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_a_gru_and_an_rnn_resume_exactly(corpus_file: Path, tmp_path: Path, cell: str) -> None:
    assert_resumes_exactly(corpus_file, tmp_path, cell=cell)
    saved = checkpoint.load(tmp_path / "full")
    assert saved.config.cell == cell and all(name.startswith((cell, "embedding", "head")) for name in saved.tensors)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_train_cell_then_info_sample_and_eval(corpus_file: Path, tmp_path: Path, cell: str) -> None:
    run = tmp_path / "run"
    proc = run_cli("train", str(corpus_file), "--out", str(run), "--cell", cell, "--steps", "6", *TINY_TRAIN)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(run_cli("info", "-c", str(run), "--json").stdout)
    assert info["config"]["cell"] == cell and info["cell"] == CELLS[cell].title
    assert f"2×32 {CELLS[cell].title}" in run_cli("info", "-c", str(run)).stdout
    args = ("sample", "-c", str(run), "--prompt", "the ", "--len", "40", "--seed", "3")
    sample = run_cli(*args)
    assert sample.returncode == 0 and sample.stdout.startswith("the ") and len(sample.stdout) == len("the ") + 41
    assert run_cli(*args).stdout == sample.stdout  # seeded: the same text again
    long_text = tmp_path / "long.txt"  # long enough to be scored in parallel streams
    long_text.write_text(make_text(60_000, seed=5), encoding="utf-8")
    fast, exact = (
        json.loads(run_cli("eval", "-c", str(run), str(long_text), "--json", *flags).stdout)["bpc"]
        for flags in ((), ("--exact",))
    )
    assert abs(fast - exact) < 0.002 and fast != exact


def test_a_checkpoint_whose_weights_do_not_fit_its_cell_is_one_line(tmp_path: Path) -> None:
    lstm = checkpoint.load(write_random_checkpoint(tmp_path / "lstm.safetensors"))
    meta = lstm.meta
    meta.config = ModelConfig(**{**meta.config.to_dict(), "cell": "gru"})  # LSTM weights under a GRU's config
    forged = tmp_path / "forged.safetensors"
    renamed = {name.replace("lstm.", "gru."): t for name, t in lstm.tensors.items()}  # a GRU's names, an LSTM's 4H rows
    checkpoint.write_safetensors(forged, renamed, {"textgen": meta.to_json()})
    with pytest.raises(TextgenError) as e:
        checkpoint.load(forged)
    assert "\n" not in str(e.value) and "gru.weight_ih_l0" in str(e.value) and "(96, 16)" in str(e.value)
    assert_one_line_error(run_cli("info", "-c", str(forged)), "gru.weight_ih_l0")
    assert_one_line_error(run_cli("train", "c.txt", "--out", str(tmp_path / "x"), "--cell", "lstmx"), "--cell", "gru")


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_the_repl_runs_cells_pick_and_beam_on_another_cell(tmp_path: Path, cell: str) -> None:
    ckpt = write_random_checkpoint(tmp_path / f"tiny-{cell}.safetensors", hidden=32, layers=2, cell=cell)
    child = spawn_repl(ckpt, tmp_path, length=30)
    term = Terminal(child)
    try:
        term.wait_for(f"2×32 {CELLS[cell].title}")  # the banner names the cell
        term.wait_for(f"model tiny-{cell}")
        term.command("/cells", "the best cell for each feature")
        term.command("/cell 1:3", f"h (a {CELLS[cell].title} has no cell state apart from its output)")
        term.command("the will to", "bits/char")
        term.command("/beam 3", "── beam3")
        term.child.send("/pick the \r")
        term.wait_for("Esc or q leave")
        term.child.send("1")
        term.pause(0.2)
        term.child.send("q")
        term.wait_for("picked 1 character(s)")
        term.command("/info", f"{CELLS[cell].title}")
    finally:
        child.close(force=True)


def test_a_gru_trains_in_bf16_and_on_two_processes(corpus_file: Path, tmp_path: Path) -> None:
    """The cell is the torch layer only: precision and DDP take it as they take the LSTM (one cell is enough)."""
    cell = "gru"
    for name, flags in (("bf16", ("--precision", "bf16")), ("ddp", ("--nproc", "2"))):
        run = tmp_path / name
        proc = run_cli(
            "train", str(corpus_file), "--out", str(run), "--cell", cell, "--steps", "4", *TINY_TRAIN, *flags
        )
        assert proc.returncode == 0, proc.stderr
        assert checkpoint.load(run).config.cell == cell
