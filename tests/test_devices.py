"""Training on a CUDA GPU: every precision learns and resumes exactly, and what a GPU trained loads, evaluates,
samples and resumes on a CPU-only machine. The same tests run on the CPU everywhere, so their logic is checked
in CI, which has no GPU; their CUDA cases run where torch sees one (``pytest tests/test_devices.py``). One test
needs two GPUs (DDP over NCCL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TINY_TRAIN, run_cli
from tests.test_train import tiny_config
from textgen_core import checkpoint as ckpt
from textgen_core.runfolder import run_step
from textgen_core.training.evaluation import evaluate_bpc
from textgen_core.training.hardware import cpu_supports_bf16
from textgen_core.training.loop import Trainer
from textgen_core.training.model import CharLSTM

one_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=one_gpu)]
#: A CPU without native bf16 refuses `--precision bf16` (`test_precision_auto.py` checks the message).
native_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="needs a CPU with native bf16 (AVX-512 BF16 or AMX)")
#: fp16 (loss scaling) is for GPUs only.
PRECISIONS = [
    pytest.param(
        device.values[0],
        p,
        marks=[*device.marks, native_bf16] if (device.values[0], p) == ("cpu", "bf16") else device.marks,
    )
    for device in DEVICES
    for p in ("bf16", "fp16", "fp32")
    if p != "fp16" or device.values[0] == "cuda"
]
#: How much validation bpc must fall between the first and the last evaluation of these short runs.
LEARNS = 0.05


def cli_train(device: str) -> list[str]:
    """The tiny settings of the CLI tests on `device`."""
    return [*TINY_TRAIN[: TINY_TRAIN.index("--device")], "--device", device, "--lr", "1e-2", "--warmup-steps", "5"]


#: Everything a CPU-only process sees: no GPU at all.
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


def _vals(run) -> list[float]:
    return [json.loads(line)["val_bpc"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("device", "precision"), PRECISIONS)
def test_each_precision_learns_and_resumes_exactly(corpus_file, tmp_path, device, precision):
    kw = dict(steps=30, dropout=0.3, weight_drop=0.2, embed_dropout=0.1, lr=1e-2, device=device, precision=precision)
    full = Trainer(tiny_config(corpus_file, tmp_path / "full", **kw))
    assert full.device.type == device and full.precision == precision
    assert full.run() == "done"
    vals = _vals(tmp_path / "full")
    assert vals[-1] < vals[0] - LEARNS, vals
    part = Trainer(tiny_config(corpus_file, tmp_path / "part", **kw))
    assert part.run(should_stop=lambda tr: tr.step == 17) == "interrupted"
    resumed = Trainer(tiny_config(corpus_file, tmp_path / "part", **kw), resume=True)
    assert resumed.step == 17
    if precision == "fp16":  # the loss scale goes on from where it was, not from its initial 65,536
        assert resumed.scaler.get_scale() == part.scaler.get_scale()
    assert resumed.run() == "done" and resumed.step == 30
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-5, msg=k)


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_evaluates_samples_and_resumes_on_a_cpu_only_machine(corpus_file, tmp_path, device):
    out = tmp_path / "run"
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "40", *cli_train(device))
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("textgen train: "))
    assert f", {device} " in header  # the header names the device it trains on
    vals = _vals(out)
    assert vals[-1] < vals[0] - LEARNS, vals

    # The weights are plain safetensors: numpy reads them, and they score the text on the CPU as where they trained.
    saved = ckpt.load(out)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in saved.tensors.values())
    t = Trainer(tiny_config(corpus_file, tmp_path / "scratch", steps=1))
    model = CharLSTM.from_numpy(saved.config, saved.tensors)
    assert evaluate_bpc(model, t.val_tokens, torch.device("cpu")) == pytest.approx(saved.meta.val_bpc, abs=2e-3)

    sample = run_cli("sample", "-c", str(out), "--len", "60", "--seed", "1", env=NO_GPU)
    assert sample.returncode == 0, sample.stderr
    assert len(sample.stdout.strip()) >= 40
    ev = run_cli("eval", "-c", str(out), str(corpus_file), "--split", "val", "--json", env=NO_GPU)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["bpc"] == pytest.approx(saved.meta.val_bpc, abs=2e-3)

    # The resume file holds the GPU's random state too; a CPU-only machine continues the step count without it.
    more = run_cli(
        "train", str(corpus_file), "--out", str(out), "--resume", "--steps", "50", "--device", "cpu", env=NO_GPU
    )
    assert more.returncode == 0, more.stderr
    assert run_step(out) == 50


@one_gpu
def test_auto_picks_the_gpu_and_bf16_where_it_has_it(corpus_file, tmp_path):
    t = Trainer(tiny_config(corpus_file, tmp_path / "run", steps=1, device="auto", precision="auto"))
    assert t.device.type == "cuda"
    assert t.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


@two_gpus
def test_two_gpus_train_with_nccl_and_resume(corpus_file, tmp_path):
    out = tmp_path / "run"
    flags = [*cli_train("cuda"), "--sample-len", "0", "--nproc", "2"]
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "20", *flags)
    assert proc.returncode == 0, proc.stderr
    assert "× 2 processes" in proc.stdout
    vals = _vals(out)
    assert len(vals) == 2 and vals[1] < vals[0]
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "30", "--resume", *flags)
    assert proc.returncode == 0, proc.stderr
    assert run_step(out) == 30
