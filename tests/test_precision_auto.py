"""`--precision auto` on a CPU: the faster precision by timing (injected here), cached per machine and shape, chosen
with `--size auto` so that sizes are timed in the precision that runs; the flag forces it; the checkpoint records
the precision and device, and `info` shows them."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_CONFIG, run_cli, write_random_checkpoint
from tests.test_size_auto import TINY_AUTO
from textgen_core import checkpoint as ckpt
from textgen_core.checkpoint import load
from textgen_core.describe import describe
from textgen_core.errors import TextgenError
from textgen_core.training import hardware
from textgen_core.training.config import TrainConfig
from textgen_core.training.events import Reporter
from textgen_core.training.loop import Trainer
from textgen_core.training.precision import (
    CACHE_FORMAT,
    Machine,
    cache_path,
    choose,
    decide,
    read_cache,
)

#: Seconds per default step measured on the two CPU classes (docs/record/README.md, machine classes): the Intel
#: Xeon whose bf16 is slower (938 and 1,235 ms), and the bf16-class AMD EPYC (about 0.66 s fp32, 0.30 s bf16).
INTEL = {"fp32": 0.938, "bf16": 1.235}
AMD = {"fp32": 0.66, "bf16": 0.30}
MACHINE = Machine("Test CPU 9000", "2.99.0", 2)
SHAPE = "2×640 LSTM, embedding 64, batch 32×128"


def timer_of(seconds: dict[str, float], calls: list[str] | None = None, sleep: float = 0.0):
    """A timing of both precisions whose two timed steps each take `seconds[precision]`; each call is recorded."""

    def timer() -> dict[str, list[float]]:
        if calls is not None:
            calls.append("both")
        time.sleep(sleep)
        return {p: [s, s] for p, s in seconds.items()}

    return timer


def never(*args: object) -> dict[str, list[float]]:
    raise AssertionError(f"timed {args} where nothing was to be timed")


def per_config(timer):
    """A `timer_of` timer as the run calls it: with the config and the precisions to time."""
    return lambda config, precisions: {p: ts for p, ts in timer().items() if p in precisions}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache folder; returns the cache file's path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cache_path()


def test_the_faster_precision_is_chosen_and_said_in_one_line(cache):
    assert choose(INTEL) == "fp32" and choose(AMD) == "bf16"
    assert choose({"fp32": 1.0, "bf16": 0.99}) == "fp32"  # within the margin: fp32 loses nothing to rounding
    close = decide(Machine("Close CPU", "2.99.0", 2), SHAPE, timer_of({"fp32": 1.0, "bf16": 0.98}), cache)
    assert close.precision == "fp32" and "(bf16 1.02× as fast here on a " in close.line()
    assert ", under the 5% bf16 must gain)" in close.line()
    intel = decide(MACHINE, SHAPE, timer_of(INTEL), cache)
    assert intel.precision == "fp32" and not intel.cached
    assert intel.line().startswith(f"--precision auto: fp32 (bf16 0.76× as fast here on a {SHAPE} step), timed in ")
    amd = decide(Machine("Other CPU", "2.99.0", 2), SHAPE, timer_of(AMD), cache)
    assert amd.precision == "bf16"
    assert amd.line().startswith("--precision auto: bf16 (fp32 0.45× as fast here")


def test_the_decision_is_cached_per_machine_and_shape_and_the_second_run_skips_the_timing(cache):
    calls: list[str] = []
    first = decide(MACHINE, SHAPE, timer_of(INTEL, calls, sleep=0.01), cache)
    assert calls == ["both"] and first.spent_s >= 0.01
    doc = json.loads(cache.read_text())
    assert doc["format"] == CACHE_FORMAT and list(doc["entries"]) == [MACHINE.key(SHAPE)]
    again = decide(MACHINE, SHAPE, never, cache)
    assert again.cached and again.precision == "fp32" and again.step_seconds == INTEL
    assert again.spent_s < first.spent_s
    assert "timed by an earlier run, kept in " in again.line() and str(cache) in again.line()
    # Another thread count, torch version, CPU or shape is another machine for this question: timed again, and
    # every answer kept.
    for machine, shape in [
        (Machine(MACHINE.cpu, MACHINE.torch, 1), SHAPE),
        (Machine(MACHINE.cpu, "3.0.0", 2), SHAPE),
        (MACHINE, "1×256 LSTM, embedding 64, batch 32×128"),
    ]:
        calls.clear()
        assert decide(machine, shape, timer_of(AMD, calls), cache).precision == "bf16"
        assert calls == ["both"]
    assert len(read_cache(cache)) == 4


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b'{"format": "textgen-precision-cache", "version": 1, "entries": {',  # cut off mid-write
        b"[1, 2, 3]",
        b'{"format": "someone-else", "version": 1, "entries": {}}',
        b'{"format": "textgen-precision-cache", "version": 99, "entries": {}}',
        b'{"format": "textgen-precision-cache", "version": 1, "entries": []}',
    ],
)
def test_a_damaged_or_foreign_cache_file_is_ignored_and_rewritten(cache, content):
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    calls: list[str] = []
    assert decide(MACHINE, SHAPE, timer_of(INTEL, calls), cache).precision == "fp32"
    assert calls == ["both"]
    assert read_cache(cache)[MACHINE.key(SHAPE)]["precision"] == "fp32"
    assert decide(MACHINE, SHAPE, never, cache).cached


@pytest.mark.parametrize(
    "entry",
    [
        "fp32",
        {"precision": "bf16", "step_seconds": INTEL, "timed_on": SHAPE},  # disagrees with its own timings
        {"precision": "fp32", "step_seconds": {"fp32": -1, "bf16": 1.0}, "timed_on": SHAPE},
        {"precision": "fp32", "step_seconds": {"fp32": "fast", "bf16": 1.0}, "timed_on": SHAPE},
        {"precision": "fp32", "step_seconds": {"fp32": 1.0}, "timed_on": SHAPE},
        {"precision": "fp32", "step_seconds": INTEL, "timed_on": 7},
    ],
)
def test_a_damaged_entry_is_timed_again_and_the_other_entries_are_kept(cache, entry):
    other = Machine("Other CPU", "2.99.0", 2).key(SHAPE)
    good = {"precision": "bf16", "step_seconds": AMD, "timed_on": SHAPE}
    doc = {"format": CACHE_FORMAT, "version": 1, "entries": {MACHINE.key(SHAPE): entry, other: good}}
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps(doc))
    calls: list[str] = []
    assert decide(MACHINE, SHAPE, timer_of(INTEL, calls), cache).precision == "fp32"
    assert calls == ["both"]
    assert read_cache(cache)[other] == good


def test_a_cache_that_cannot_be_written_costs_the_timing_and_nothing_else(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    path = blocker / "textgen" / "precision.json"
    calls: list[str] = []
    for _ in range(2):
        assert decide(MACHINE, SHAPE, timer_of(INTEL, calls), path).precision == "fp32"
    assert calls == ["both"] * 2


def test_a_budget_under_a_minute_trains_fp32_untimed_unless_the_cache_knows(cache):
    untimed = decide(MACHINE, SHAPE, never, cache, budget_s=30.0)
    assert untimed.precision == "fp32" and untimed.step_seconds == {} and not untimed.compared
    assert untimed.line() == "--precision auto: fp32 (not timed: the budget is under 60 s)"
    assert not cache.exists()
    assert decide(MACHINE, SHAPE, timer_of(AMD), cache, budget_s=600.0).precision == "bf16"
    assert decide(MACHINE, SHAPE, never, cache, budget_s=3.0).precision == "bf16"  # the cache knows it


def test_a_timing_taken_on_a_busy_machine_decides_the_run_but_is_not_kept(cache):
    """Steps of one precision that differ by more than `STEADY` say the machine was busy while they ran: the run
    goes by them (they are what it has), and the next run times again."""
    busy = {"fp32": [0.66, 0.70], "bf16": [0.30, 0.52]}
    choice = decide(MACHINE, SHAPE, lambda: busy, cache)
    assert (
        choice.precision == "bf16"
        and not choice.kept
        and choice.step_seconds == pytest.approx({"fp32": 0.68, "bf16": 0.41})
    )
    assert choice.line().startswith("--precision auto: bf16 (fp32 0.60× as fast here on a ")
    assert "; not kept: its steps varied by more than 25%, as on a busy machine), timed in " in choice.line()
    assert not cache.exists()
    calm = {"fp32": [0.66, 0.70], "bf16": [0.30, 0.33]}
    assert decide(MACHINE, SHAPE, lambda: calm, cache).kept and decide(MACHINE, SHAPE, never, cache).cached


class Notes(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


#: What this CPU itself reports, before any test pretends otherwise.
NATIVE_BF16 = hardware.cpu_supports_bf16()


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU that reports native bf16, whatever this one reports: where `auto` is decided by timing."""
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: True)


def config(corpus, out, **kw) -> TrainConfig:
    return TrainConfig(corpus=[str(corpus)], out=str(out), **{**TINY_CONFIG, "precision": "auto", **kw})


@pytest.mark.parametrize(("timings", "expected"), [(INTEL, "fp32"), (AMD, "bf16")])
def test_the_run_trains_in_the_faster_precision_and_counts_the_timing_in_its_budget(
    corpus_file, tmp_path, cache, native_bf16, timings, expected
):
    notes = Notes()
    t = Trainer(
        config(corpus_file, tmp_path / "run", minutes=10.0),
        reporter=notes,
        config_timer=per_config(timer_of(timings, sleep=0.01)),
    )
    assert t.precision == expected and t.precision_choice is not None
    assert t.size_choice is None  # a fixed size: the precision was timed on the run's own model
    assert t.precision_choice.timed_on == "2×32 LSTM, embedding 16, batch 4×32"
    assert notes.lines == [t.precision_choice.line()]
    assert t.calibration_s == t.precision_choice.spent_s >= 0.01
    assert t.elapsed == t.calibration_s
    if expected == "bf16" and not NATIVE_BF16:
        pytest.skip("training in bf16 needs a CPU with native bf16 (AVX-512 BF16 or AMX)")
    # The checkpoint records what the run trained in, and where.
    t.run(should_stop=lambda tr: tr.step >= 2)
    info = describe(load(tmp_path / "run" / ckpt.WEIGHTS_NAME))
    assert info["precision"] == expected
    assert info["device"] == {
        "type": "cpu",
        "name": hardware.cpu_name(),
        "threads": hardware.cpu_threads(),
        "processes": 1,
    }


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_the_flag_forces_the_precision_and_nothing_is_timed(corpus_file, tmp_path, cache, native_bf16, forced):
    notes = Notes()
    t = Trainer(config(corpus_file, tmp_path / "run", steps=2, precision=forced), reporter=notes, config_timer=never)
    assert t.precision == forced and t.precision_choice is None and notes.lines == []
    assert not cache.exists()


def test_bf16_on_a_cpu_without_native_bf16_is_refused_in_one_line(monkeypatch) -> None:
    """torch's LSTM has no bf16 kernel there (it raised from deep inside the first step); the flag is refused
    before anything runs, saying what to use instead."""
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    with pytest.raises(TextgenError, match=r"^--precision bf16: this CPU has no native bf16 .* use --precision fp32"):
        hardware.pick_precision("bf16", torch.device("cpu"))
    # A GRU or plain RNN has bf16 kernels there (emulated): the flag still does what it says.
    assert hardware.pick_precision("bf16", torch.device("cpu"), lstm=False) == "bf16"
    assert hardware.pick_precision("fp32", torch.device("cpu")) == "fp32"
    assert hardware.pick_precision("auto", torch.device("cpu")) == "fp32"


def test_a_cpu_without_native_bf16_trains_fp32_without_timing(corpus_file, tmp_path, monkeypatch, cache):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    t = Trainer(config(corpus_file, tmp_path / "run", steps=2), config_timer=never)
    assert t.precision == "fp32" and t.precision_choice is None


#: Seconds per step by candidate on a made-up CPU where bf16 pays only from 1×512 on (a small model's step is less
#: matrix product): the precision chosen on the smallest candidate would be the wrong one for the size chosen.
BY_SIZE = {
    "1×256": {"fp32": 0.05, "bf16": 0.06},
    "1×512": {"fp32": 0.15, "bf16": 0.10},
    "2×384": {"fp32": 0.30, "bf16": 0.20},
    "2×512": {"fp32": 0.60, "bf16": 0.40},
    "2×640": {"fp32": 1.00, "bf16": 0.70},
}


def test_with_size_auto_each_size_is_timed_in_both_and_trains_in_its_faster(corpus_file, tmp_path, cache, native_bf16):
    """Both automatic: every candidate timed in both precisions and sized by its faster; the run trains the size
    the rule picks in that size's faster precision; a second run finds every decision in the cache and times each
    candidate once, in its precision. The timing counts in the budget, and each choice says its line."""
    calls: list[tuple[str, str]] = []

    def timer(config: TrainConfig, precisions) -> dict[str, list[float]]:
        label = f"{config.num_layers}×{config.hidden_size}"
        calls.append((label, tuple(precisions)))
        time.sleep(0.005)
        return {p: [BY_SIZE[label][p]] * 2 for p in precisions}

    cfg = TrainConfig(
        corpus=[str(corpus_file)], out=str(tmp_path / "run"), **{**TINY_AUTO, "precision": "auto", "minutes": 10.0}
    )
    notes = Notes()
    t = Trainer(cfg, reporter=notes, config_timer=timer)
    # 2×384 gets 3,000 steps in bf16 (it needs 1,750) and 2×512 1,500 (it needs 2,200): timing stops there.
    timed = ["1×256", "1×512", "2×384", "2×512"]
    assert calls == [(label, ("fp32", "bf16")) for label in timed]
    assert t.size_choice is not None and t.size_choice.candidate.label == "2×384"
    assert t.size_choice.step_seconds == {k: min(BY_SIZE[k].values()) for k in timed}
    assert t.precision == "bf16" and t.precision_choice is not None
    assert t.precision_choice.timed_on.startswith("2×384 LSTM, ")
    assert notes.lines == [
        "--precision auto: bf16 (fp32 0.67× as fast here on a 2×384 LSTM, embedding 16, batch 4×32 step; each size "
        "timed in both)",
        f"{t.size_choice.line()}, timed in {t.calibration_s:.1f} s of the budget",
    ]
    assert t.elapsed == t.calibration_s >= 4 * 0.005
    assert len(read_cache(cache)) == 4  # each size's answer, the smallest's fp32 too

    calls.clear()
    notes = Notes()
    again = Trainer(replace(cfg, out=str(tmp_path / "again")), reporter=notes, config_timer=timer)
    assert calls == [("1×256", ("fp32",)), ("1×512", ("bf16",)), ("2×384", ("bf16",)), ("2×512", ("bf16",))]
    assert again.precision == "bf16" and again.size_choice.candidate.label == "2×384"
    assert again.precision_choice.cached and "timed by an earlier run" in notes.lines[0]


def test_a_refused_size_auto_is_refused_before_anything_is_timed(corpus_file, tmp_path, cache, native_bf16):
    cfg = TrainConfig(corpus=[str(corpus_file)], out=str(tmp_path / "run"), **{**TINY_AUTO, "precision": "auto"})
    from textgen_core.errors import TextgenError

    with pytest.raises(TextgenError, match="--minutes budget"):
        Trainer(TrainConfig(**{**cfg.to_dict(), "steps": 5}), config_timer=never)


def test_info_shows_the_precision_and_device_and_dashes_where_unrecorded(tmp_path):
    from repl.describe import table

    old = describe(load(write_random_checkpoint(tmp_path / "old.safetensors")))
    assert old["precision"] is None and old["device"] is None
    assert "  trained on  —\n" in table(old) + "\n"
    c = load(write_random_checkpoint(tmp_path / "new.safetensors"))
    c.meta.extra = {"precision": "bf16", "device": {"type": "cpu", "name": "AMD EPYC", "threads": 2, "processes": 1}}
    assert "  trained on  cpu (AMD EPYC, 2 threads), bf16" in table(describe(c))
    c.meta.extra = {"precision": 16, "device": {"type": "abacus"}}  # metadata is anyone's to write
    assert describe(c)["precision"] is None and describe(c)["device"] is None
    c.meta.extra = {"precision": "fp32", "device": {"type": "cuda", "name": ["x"], "threads": "2", "processes": 4}}
    info = describe(c)
    assert info["device"] == {"type": "cuda", "name": None, "threads": None, "processes": 4}
    assert "  trained on  cuda (unnamed, × 4 processes), fp32" in table(info)


def test_the_cli_trains_records_and_shows_the_precision_and_device(corpus_file, tmp_path):
    """One tiny real run with the default `--precision auto` on this machine: its line, its cache entry (keyed by
    this machine), and the checkpoint's record as `info --json` and the table show it."""
    flags = ["--hidden-size", "32", "--embed-dim", "16", "--num-layers", "1", "--batch-size", "4"]
    flags += ["--seq-len", "32", "--sample-len", "0", "--device", "cpu", "--steps", "3", "--eval-every", "3"]
    cache = tmp_path / "cache"
    proc = run_cli(
        "train", str(corpus_file), "--out", str(tmp_path / "run"), *flags, env={"XDG_CACHE_HOME": str(cache)}
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("--precision auto: ")]
    info = json.loads(run_cli("info", "-c", str(tmp_path / "run"), "--json").stdout)
    assert info["device"]["type"] == "cpu" and info["device"]["name"] == hardware.cpu_name()
    assert info["device"]["processes"] == 1
    entries = read_cache(cache / "textgen" / "precision.json")
    if hardware.cpu_supports_bf16():  # decided by timing, and kept for this machine and shape
        assert len(lines) == 1 and "timed in " in lines[0], proc.stdout
        assert info["precision"] == lines[0].split()[2]
        machine = Machine(hardware.cpu_name(), torch.__version__, info["device"]["threads"])
        kept = "not kept: " not in lines[0]  # a busy machine's timing decides the run and is not kept
        assert list(entries) == [machine.key("1×32 LSTM, embedding 16, batch 4×32")] * kept
    else:  # no native bf16: fp32 without timing
        assert lines == [] and info["precision"] == "fp32" and entries == {}
    from repl.describe import table

    row = f"  trained on  cpu ({info['device']['name']}, {info['device']['threads']} thread"
    assert row in table(info)
