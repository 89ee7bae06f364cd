"""`--precision auto` on a CPU: the faster of fp32 and bf16 autocast, timed on this machine and remembered for it.
Pure rules and the cache file, no torch (`calibrate` does the timing; tests inject timings).

Why timing and not a feature flag: a CPU that reports native bf16 (AVX-512 BF16 or AMX) has bf16 kernels, which
says nothing about whether they are faster. On the bf16-class AMD EPYC a default training step is about twice as
fast in bf16; on a 2-core Intel Xeon with AVX-512 BF16 and FP16 and no AMX it is 0.76× as fast, and a run that
trusted the flag trained 10 minutes at three quarters of the speed it could have had (docs/record/README.md,
machine classes). So the run trains a few steps of its own model in each precision and keeps the faster.

The answer belongs to the machine and the model's shape: it is kept in the user's cache folder (`cache_path`),
keyed by the CPU model, the torch version, the thread count and the shape timed, so that later runs of the same
kind skip the timing. A damaged or foreign cache file is ignored and rewritten; a cache that cannot be written
costs the next run the same few seconds, nothing more.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import TextgenError

#: The precisions `auto` chooses between on a CPU (fp16 is for GPUs).
PRECISIONS = ("fp32", "bf16")
#: bf16 must be this much faster to be chosen: at equal speed fp32 loses nothing to rounding, and a difference
#: smaller than this is within what two timings of the same step differ by on a shared machine.
BF16_MARGIN = 1.05
#: A --minutes budget shorter than this is not spent timing (unless the cache knows the answer): the timing takes
#: up to a few seconds on a large model, a tenth of such a budget, and it trains fp32, which needs no evidence.
MIN_TIMED_BUDGET_S = 60.0
CACHE_FORMAT = "textgen-precision-cache"
CACHE_VERSION = 1
#: A timing of the model being decided for: the seconds of each timed step, by precision, the precisions' steps
#: interleaved (`calibrate.time_steps`), or a test's.
PrecisionTimer = Callable[[], dict[str, list[float]]]
#: A timing whose steps of one precision differ by more than this factor was taken on a busy machine: it decides
#: this run, but is not kept, so that a moment's load does not decide every later run.
STEADY = 1.25


def cache_path() -> Path:
    """Where decisions are kept: the user's cache folder (XDG_CACHE_HOME, else ~/.cache/textgen on Linux)."""
    from platformdirs import user_cache_path

    return user_cache_path("textgen") / "precision.json"


@dataclass(frozen=True)
class Machine:
    """What the answer depends on besides the model: the CPU, the torch build (its kernels) and the threads."""

    cpu: str
    torch: str
    threads: int

    def key(self, shape: str) -> str:
        return f"{self.cpu} | torch {self.torch} | {self.threads} threads | {shape}"


def choose(step_seconds: Mapping[str, float]) -> str:
    """bf16 where its step is at least `BF16_MARGIN` times as fast as fp32's, else fp32. Deterministic."""
    return "bf16" if step_seconds["bf16"] * BF16_MARGIN <= step_seconds["fp32"] else "fp32"


@dataclass(frozen=True)
class PrecisionChoice:
    """What `--precision auto` decided and why, for the one-line report and the cache."""

    precision: str
    #: Seconds per step of the model timed, in each of `PRECISIONS`.
    step_seconds: dict[str, float]
    #: The model the steps were timed on (`prepare.model_shape`).
    timed_on: str
    #: Seconds of the run's budget the decision took (a cache hit takes only the reading of the file).
    spent_s: float = 0.0
    #: The decision came from the cache file, timed by an earlier run.
    cached: bool = False
    #: The timing was steady enough to keep (`STEADY`); a cached one was.
    kept: bool = True

    @property
    def compared(self) -> bool:
        """Both precisions were timed (`decide` times none where the budget is too short)."""
        return len(self.step_seconds) == len(PRECISIONS)

    def speed_of_other(self) -> float:
        """How fast the precision not chosen is, as a multiple of the chosen one's speed (below 1)."""
        other = "bf16" if self.precision == "fp32" else "fp32"
        slower = self.step_seconds[other]
        return self.step_seconds[self.precision] / slower if slower > 0 else 1.0

    def line(self, with_sizes: bool = False) -> str:
        """E.g. "--precision auto: fp32 (bf16 0.76× as fast here on a 2×640 LSTM, … step), timed in 2.9 s of the
        budget"; from the cache: "…; timed by an earlier run, kept in ~/.cache/textgen/precision.json"; `with_sizes`
        where it was timed along with --size auto's candidates, whose line says what the timing took."""
        if not self.compared:
            return f"--precision auto: fp32 (not timed: the budget is under {MIN_TIMED_BUDGET_S:.0f} s)"
        other = "bf16" if self.precision == "fp32" else "fp32"
        why = f"{other} {self.speed_of_other():.2f}× as fast here on a {self.timed_on} step"
        if self.speed_of_other() > 1:  # fp32 kept: bf16 was faster by less than it must be
            why += f", under the {BF16_MARGIN - 1:.0%} bf16 must gain"
        if self.cached:
            return f"--precision auto: {self.precision} ({why}; timed by an earlier run, kept in {cache_path()})"
        if not self.kept:
            why += f"; not kept: its steps varied by more than {STEADY - 1:.0%}, as on a busy machine"
        if with_sizes:
            return f"--precision auto: {self.precision} ({why}; each size timed in both)"
        return f"--precision auto: {self.precision} ({why}), timed in {self.spent_s:.1f} s of the budget"

    def record(self) -> dict:
        """What the cache keeps of the decision."""
        return {"precision": self.precision, "step_seconds": self.step_seconds, "timed_on": self.timed_on}


def _from_record(record: object) -> PrecisionChoice | None:
    """A cached decision, or None where the entry is not one this version wrote (then it is timed again)."""
    if not isinstance(record, dict):
        return None
    seconds, timed_on = record.get("step_seconds"), record.get("timed_on")
    if not isinstance(seconds, dict) or not isinstance(timed_on, str) or set(seconds) != set(PRECISIONS):
        return None
    if not all(type(s) in (int, float) and 0 < s < float("inf") for s in seconds.values()):
        return None
    seconds = {p: float(seconds[p]) for p in PRECISIONS}
    if record.get("precision") != choose(seconds):  # edited by hand, or by a version with another rule
        return None
    return PrecisionChoice(choose(seconds), seconds, timed_on, cached=True)


def read_cache(path: Path) -> dict[str, object]:
    """The cache's entries by key; empty where the file is missing, unreadable, damaged or not this cache's."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or doc.get("version") != CACHE_VERSION:
        return {}
    entries = doc.get("entries")
    return entries if isinstance(entries, dict) else {}


def write_cache(path: Path, entries: Mapping[str, object]) -> None:
    """Replace the cache file atomically. Failing to write it (a read-only home, a full disk) is no error: the
    next run times again."""
    doc = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "entries": dict(entries)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    except (OSError, TextgenError):
        pass


def steady(times: Mapping[str, list[float]]) -> bool:
    """Whether each precision's timed steps agree within `STEADY` (a busy machine's do not)."""
    return all(min(ts) > 0 and max(ts) / min(ts) <= STEADY for ts in times.values())


def decide(
    machine: Machine,
    shape: str,
    timer: PrecisionTimer,
    path: Path | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PrecisionChoice:
    """The precision for a model of `shape` on `machine`: the cached answer, or both precisions timed with `timer`,
    the faster (by the median step) chosen (`choose`) and the answer cached where the timing was `steady`. `path`
    is the cache file (`cache_path()` by default). The returned `spent_s` counts in the run's budget. A wall-clock
    `budget_s` under `MIN_TIMED_BUDGET_S` is not spent timing: the run trains fp32, the precision that needs no
    evidence, and nothing is cached."""
    path = cache_path() if path is None else path
    start = clock()
    entries = read_cache(path)
    key = machine.key(shape)
    hit = _from_record(entries.get(key))
    if hit is not None:
        return replace(hit, spent_s=clock() - start)
    if budget_s is not None and budget_s < MIN_TIMED_BUDGET_S:
        return PrecisionChoice("fp32", {}, shape, clock() - start)
    times = timer()
    seconds = {p: statistics.median(times[p]) for p in PRECISIONS}
    choice = PrecisionChoice(choose(seconds), seconds, shape, kept=steady(times))
    if choice.kept:
        write_cache(path, {**entries, key: choice.record()})
    return replace(choice, spent_s=clock() - start)
