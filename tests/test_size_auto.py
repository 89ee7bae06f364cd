"""`--size auto`: the rule is deterministic in the step timings, respects the user's flags, counts its timing in the
budget, and a resumed run never chooses again."""

from __future__ import annotations

import time

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.test_train import TINY
from textgen_core import checkpoint as ckpt
from textgen_core.config import DEFAULT_HIDDEN, DEFAULT_LAYERS
from textgen_core.errors import TextgenError
from textgen_core.training.calibrate import calibrate
from textgen_core.training.config import TrainConfig
from textgen_core.training.loop import Trainer
from textgen_core.training.sizing import CALIBRATION_SHARE, CANDIDATES, SIZE_FIELDS, Candidate, choose

#: Seconds per step on a made-up machine, and the same machine twice as fast / four times as slow.
BASE = {c.label: 0.05 * 2**i for i, c in enumerate(CANDIDATES)}


def scaled(factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in BASE.items()}


def by_label(label: str) -> Candidate:
    return next(c for c in CANDIDATES if c.label == label)


def test_the_rule_takes_the_largest_candidate_that_gets_the_steps_it_needs():
    for budget in (30.0, 120.0, 600.0, 3600.0):
        choice = choose(BASE, budget)
        steps = {c.label: int(budget / BASE[c.label]) for c in CANDIDATES}
        ok = [c for c in CANDIDATES[1:] if steps[c.label] >= c.min_steps]
        assert choice.candidate == (ok[-1] if ok else CANDIDATES[0])
        assert choice.steps == steps
        assert choose(dict(BASE), budget) == choice  # same timings, same choice
        assert choice.line().startswith(f"--size auto: {choice.candidate.label} (")


def test_a_faster_machine_or_a_longer_budget_never_gets_a_smaller_model():
    order = [c.label for c in CANDIDATES]
    for budget in (60.0, 300.0, 600.0):
        picks = [order.index(choose(scaled(f), budget).candidate.label) for f in (4.0, 2.0, 1.0, 0.5, 0.25)]
        assert picks == sorted(picks)
        assert len(set(picks)) > 1  # the timings matter: the spread of machines changes the choice
    picks = [order.index(choose(BASE, b).candidate.label) for b in (30.0, 120.0, 600.0, 3600.0)]
    assert picks == sorted(picks) and len(set(picks)) > 1


def test_the_default_model_is_the_choice_where_it_gets_its_steps():
    default = CANDIDATES[-1]
    fast = {c.label: 0.001 for c in CANDIDATES}
    fast[default.label] = 600.0 / (default.min_steps + 10)
    assert choose(fast, 600.0).candidate == default


class FakeClock:
    """A clock that timing advances: each timed candidate costs its step time times the steps timed, plus one."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_calibration_stops_once_larger_candidates_cannot_win_and_returns_its_time():
    clock = FakeClock()
    timed: list[str] = []

    def timer(c: Candidate) -> float:
        timed.append(c.label)
        clock.now += 3 * BASE[c.label]
        return BASE[c.label]

    budget = 120.0
    choice, spent = calibrate(CANDIDATES, budget, timer, clock)
    assert spent == pytest.approx(sum(3 * BASE[k] for k in timed))
    # It timed up to the first candidate that falls short of its steps, and chose the one before it.
    first_short = next(i for i, k in enumerate(timed) if (budget - 0) / BASE[k] < by_label(k).min_steps)
    assert len(timed) == first_short + 1 < len(CANDIDATES)
    assert choice.candidate.label == timed[-2]
    assert choice.budget_s == pytest.approx(budget - spent)


def test_calibration_gives_up_on_larger_candidates_past_its_share_of_the_budget():
    clock = FakeClock()

    def slow_timer(c: Candidate) -> float:
        clock.now += CALIBRATION_SHARE * 100.0  # the first timing alone takes the share of a 100-second budget
        return 0.0001

    choice, spent = calibrate(CANDIDATES, 100.0, slow_timer, clock)
    assert list(choice.step_seconds) == [CANDIDATES[0].label]
    assert spent == pytest.approx(CALIBRATION_SHARE * 100.0)


#: test_train's small settings without the ones a candidate sets.
TINY_AUTO = {k: v for k, v in TINY.items() if k not in SIZE_FIELDS} | {"size": "auto"}


def auto_config(corpus, out, **kw) -> TrainConfig:
    return TrainConfig(corpus=[str(corpus)], out=str(out), **{**TINY_AUTO, **kw})


def small_timer(c: Candidate) -> float:
    """Timings under which the smallest candidate wins any short budget (so tests train a small model)."""
    return 0.001 if c == CANDIDATES[0] else 10.0


def test_the_run_trains_what_the_rule_chose_and_counts_the_timing_in_its_budget(corpus_file, tmp_path):
    def timer(c: Candidate) -> float:
        time.sleep(0.02)
        return small_timer(c)

    trainer = Trainer(auto_config(corpus_file, tmp_path / "run", minutes=10.0), step_timer=timer)
    chosen = CANDIDATES[0]
    assert trainer.size_choice is not None and trainer.size_choice.candidate == chosen
    assert (trainer.config.hidden_size, trainer.config.num_layers) == (chosen.hidden_size, chosen.num_layers)
    assert trainer.config.dropout == chosen.dropout and trainer.config.lr == chosen.lr
    assert trainer.model_config.hidden_size == chosen.hidden_size
    timed = len(trainer.size_choice.step_seconds)
    assert trainer.calibration_s >= 0.02 * timed
    assert trainer.elapsed == trainer.calibration_s  # the budget starts spent by the timing
    assert trainer.budget_fraction() == pytest.approx(trainer.calibration_s / 600.0)


def test_every_flag_the_user_gave_wins_over_the_candidates_settings(corpus_file, tmp_path):
    given = {"dropout": 0.33, "lr": 1e-3, "weight_decay": 0.01}
    trainer = Trainer(
        auto_config(corpus_file, tmp_path / "run", minutes=10.0, **given),
        explicit=frozenset(given),
        step_timer=small_timer,
    )
    assert trainer.config.hidden_size == CANDIDATES[0].hidden_size
    for name, value in given.items():
        assert getattr(trainer.config, name) == value


def test_size_flags_narrow_the_choice_to_the_candidates_that_have_them(corpus_file, tmp_path):
    two_layer = [c for c in CANDIDATES if c.num_layers == 2]
    trainer = Trainer(
        auto_config(corpus_file, tmp_path / "run", minutes=10.0, num_layers=2),
        explicit=frozenset({"num_layers"}),
        step_timer=lambda c: 0.001 if c == two_layer[0] else 10.0,
    )
    assert trainer.size_choice is not None and trainer.size_choice.candidate == two_layer[0]
    assert set(trainer.size_choice.step_seconds) <= {c.label for c in two_layer}
    with pytest.raises(TextgenError, match="none has --hidden-size 300"):
        Trainer(
            auto_config(corpus_file, tmp_path / "run2", minutes=10.0, hidden_size=300),
            explicit=frozenset({"hidden_size"}),
            step_timer=small_timer,
        )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [({"steps": 100}, "--minutes budget"), ({"epochs": 1.0}, "--minutes budget"), ({"init": "bundled"}, "--init")],
)
def test_auto_needs_a_minutes_budget_and_a_new_model(corpus_file, tmp_path, extra, needle):
    def never(c: Candidate) -> float:
        raise AssertionError("timed a candidate for a run --size auto does not apply to")

    with pytest.raises(TextgenError, match=needle):
        Trainer(auto_config(corpus_file, tmp_path / "run", **extra), step_timer=never)


def test_a_resumed_run_goes_on_with_the_size_it_chose_and_never_times_again(corpus_file, tmp_path):
    out = tmp_path / "run"
    first = Trainer(auto_config(corpus_file, out, minutes=10.0), step_timer=small_timer)
    first.run(should_stop=lambda t: t.step >= 12)
    chosen = CANDIDATES[0]

    def never(c: Candidate) -> float:
        raise AssertionError("a resumed run timed candidates again")

    # Given flags that would steer a new choice elsewhere: a resume keeps the run's model all the same.
    again = Trainer(auto_config(corpus_file, out, minutes=20.0), resume=True, step_timer=never)
    assert again.size_choice is None and again.step == 12
    assert (again.config.hidden_size, again.config.num_layers) == (chosen.hidden_size, chosen.num_layers)
    assert again.elapsed >= first.calibration_s
    meta = ckpt.read_meta(out / ckpt.WEIGHTS_NAME)
    assert meta.config.hidden_size == chosen.hidden_size and meta.config.num_layers == chosen.num_layers


#: Small training settings that leave the size to --size auto.
AUTO_FLAGS = ["--embed-dim", "16", "--batch-size", "4", "--seq-len", "32", "--sample-len", "0", "--device", "cpu"]


def test_the_cli_prints_the_choice_in_one_line_and_trains_that_size(corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--size", "auto", "--minutes", "0.05", *AUTO_FLAGS)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("--size auto: ")]
    assert len(lines) == 1, proc.stdout
    label = lines[0].split()[2]
    meta = ckpt.read_meta(out / ckpt.WEIGHTS_NAME)
    assert f"{meta.config.num_layers}×{meta.config.hidden_size}" == label


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "auto", "--steps", "5"], "--minutes budget"),
        (["--size", "auto", "--minutes", "1", "--hidden-size", "300"], "none has --hidden-size 300"),
        (["--size", "big"], "--size"),
    ],
)
def test_cli_refusals_are_one_line(corpus_file, tmp_path, args, needle):
    proc = run_cli("train", str(corpus_file), "--out", str(tmp_path / "run"), *AUTO_FLAGS, *args)
    assert_one_line_error(proc, needle)


@pytest.mark.parametrize(
    ("args", "size"),
    [
        ([], "auto"),  # no budget flag: the default --minutes, so the size is fitted to it
        (["--minutes", "5"], "auto"),
        (["--minutes", "5", "--dropout", "0.3"], "auto"),  # other flags win over the candidate's, auto still picks
        (["--minutes", "5", "--size", "auto"], "auto"),
        (["--minutes", "5", "--size", "fixed"], None),
        (["--minutes", "5", "--hidden-size", "300"], None),
        (["--minutes", "5", "--num-layers", "1"], None),
        (["--steps", "100"], None),
        (["--epochs", "2"], None),
        (["--minutes", "5", "--init", "bundled"], None),
        (["--minutes", "5", "--nproc", "2"], None),
        (["--minutes", "5", "--resume"], None),
    ],
)
def test_auto_is_the_default_only_where_it_has_a_size_to_fit(args, size):
    from repl.cli import build_parser
    from repl.cli.train import size_policy

    parsed = build_parser().parse_args(["train", "book.txt", "--out", "run", *args])
    assert size_policy(parsed, launched=False) == size
    if size == "auto" and "--size" not in args:
        assert size_policy(parsed, launched=True) is None  # a worker of a torchrun the user started


def test_cli_without_size_flags_fits_the_size_and_size_fixed_trains_the_default(corpus_file, tmp_path):
    auto = run_cli("train", str(corpus_file), "--out", str(tmp_path / "auto"), "--minutes", "0.05", *AUTO_FLAGS)
    assert auto.returncode == 0, auto.stderr
    assert sum(line.startswith("--size auto: ") for line in auto.stdout.splitlines()) == 1, auto.stdout
    fixed = tmp_path / "fixed"
    proc = run_cli("train", str(corpus_file), "--out", str(fixed), "--minutes", "0.05", "--size", "fixed", *AUTO_FLAGS)
    assert proc.returncode == 0, proc.stderr
    assert "--size auto" not in proc.stdout
    meta = ckpt.read_meta(fixed / ckpt.WEIGHTS_NAME)
    assert (meta.config.num_layers, meta.config.hidden_size) == (DEFAULT_LAYERS, DEFAULT_HIDDEN)
