"""Several processes training one model, with torch.distributed (gloo on CPU, NCCL on CUDA).

textgen starts no workers and moves no data between them itself. ``torchrun`` (or ``textgen train --nproc N``,
which calls torchrun's own launcher) starts one process per device and describes the job in the environment
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT); `process_group` joins that job, and the
trainer asks `World.current()` which rank it is. Gradients are averaged by DistributedDataParallel; the few other
things ranks must agree on (when to stop, the clock, the stream state in a resume file) go through the small
collectives below.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import TextgenError

_CPU = torch.device("cpu")


class MainFailed(TextgenError):
    """Raised on the other ranks when rank 0 fails to set up (rank 0 raises and reports the actual problem)."""


@dataclass(frozen=True)
class World:
    """This process's place in the job. The default is a single process, for which every method is free."""

    rank: int = 0
    size: int = 1
    #: Processes on this machine (they share its CPU cores).
    local_size: int = 1
    #: Where collectives run: NCCL only moves CUDA tensors, gloo moves CPU ones.
    device: torch.device = _CPU

    @classmethod
    def current(cls) -> World:
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        size = dist.get_world_size()
        nccl = dist.get_backend() == "nccl"
        return cls(
            rank=dist.get_rank(),
            size=size,
            local_size=int(os.environ.get("LOCAL_WORLD_SIZE", size)),
            device=torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu"),
        )

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, reports and writes every file of the run."""
        return self.rank == 0

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block before the others: it builds shared files (the token file) once, and an error in
        the set-up (a bad corpus, a mismatched --resume) is reported once, by rank 0; the others then raise
        `MainFailed`, which front ends need not print."""
        if self.size == 1:
            yield
            return
        ok = torch.ones(1, device=self.device)
        if self.is_main:
            try:
                yield
            except BaseException:
                dist.broadcast(ok.zero_(), src=0)
                raise
            dist.broadcast(ok, src=0)
            return
        dist.broadcast(ok, src=0)
        if not ok.item():
            raise MainFailed("rank 0 stopped during set-up; its message says why")
        yield

    def agree(self, stop: bool, elapsed: float) -> tuple[bool, float]:
        """Stop if any rank was asked to; everyone uses the slowest clock (so a --minutes budget ends everywhere
        at the same step)."""
        if self.size == 1:
            return stop, elapsed
        t = torch.tensor([float(stop), elapsed], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0].item()), float(t[1].item())

    def mean(self, value: float) -> float:
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.size

    def gather(self, t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Every rank's `t` concatenated along `dim` in rank order, on every rank (for small state tensors)."""
        if self.size == 1:
            return t
        x = t.to(self.device).contiguous()
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim).to(t.device)


def launched() -> bool:
    """True in a process that torchrun started as part of a job of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_if_worker(code: int) -> None:
    """End a torchrun worker with `code` now, skipping the interpreter's teardown.

    After a clean `destroy_process_group`, torch's C++ side can still hold a running thread that is destroyed
    at exit, which aborts the process ("terminate called without an active exception") and turns a finished run
    into exit status 134 now and then (a race, more likely on a busy machine). By this point every file is written
    and fsynced, so only the buffered output needs flushing."""
    if not launched():
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


@contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join torchrun's job for the duration of the block (a no-op for a single process).

    Each process drives the GPU numbered by its LOCAL_RANK, so `device` is the kind of device the run uses."""
    if not launched():
        yield World()
        return
    if device.type == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise TextgenError(
                f"{os.environ['LOCAL_WORLD_SIZE']} processes on this machine need as many GPUs, and it has "
                f"{torch.cuda.device_count()}; start fewer (--nproc / --nproc_per_node) or use --device cpu"
            )
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield World.current()
        # Every rank reaches the end before any tears its connections down: gloo aborts a process
        # ("terminate called without an active exception") whose peer closed the connection first.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch(nproc: int, module: str, args: list[str], cpu_threads: int) -> int:
    """Run ``python -m module args`` as `nproc` processes on this machine with torchrun's launcher
    (torch.distributed.run, standalone rendezvous); returns the job's exit status.

    Each process gets an equal share of the `cpu_threads` cores. The workers print their own errors, so the
    launcher's log (which repeats them inside a report) is silenced and only the exit status is passed on.
    """
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpu_threads // nproc)))
    torchrun = run.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", module])
    torchrun.training_script_args = args  # not parsed: torchrun's parser would take --nproc for its own option
    logging.disable(logging.ERROR)
    try:
        run.run(torchrun)
    except ChildFailedError as e:
        code = e.get_first_failure()[1].exitcode
        return code if code > 0 else 128 - code  # a negative code is the signal that ended the worker
    except SignalException as e:
        return 128 + e.sigval  # Ctrl-C: the launcher passed the signal on and the workers saved their state
    return 0
