"""Where and how a run computes: the device, the autocast precision (or that it is to be timed), the CPU threads,
what a checkpoint records of them, and whether the model fits."""

from __future__ import annotations

import os
import platform

import torch

from ..config import ModelConfig
from ..errors import TextgenError
from .distributed import World

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextgenError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise TextgenError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """True where bf16 matrix kernels are native (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(name: str, device: torch.device, *, lstm: bool = True) -> str:
    """The precision the flag names, checked. For `auto`: on a GPU bf16 autocast where it is supported (an LSTM
    step is mostly matrix products, which bf16 kernels run faster at no loss in bpc for a fixed time budget); on a
    CPU without native bf16, fp32 (bf16 is emulated there, several times slower); on a CPU with it, "auto": a CPU
    that has bf16 kernels may still run them slower than fp32, so the run times both (`precision`,
    `prepare.fit_to_machine`). fp16 (for GPUs without bf16) scales the loss with a GradScaler so small gradients
    do not underflow. `lstm`: the model has an LSTM layer, which bf16 on a CPU without native bf16 cannot train."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "auto" if cpu_supports_bf16() else "fp32"
    if name not in ("bf16", "fp16", "fp32"):
        raise TextgenError(f"--precision {name!r}: choose auto, bf16, fp16 or fp32")
    if name == "fp16" and device.type != "cuda":
        raise TextgenError("--precision fp16 is for CUDA GPUs; on a CPU use bf16 or fp32")
    if name == "bf16" and lstm and device.type == "cpu" and not cpu_supports_bf16():
        # Without native kernels torch's LSTM refuses bf16 (oneDNN has no such primitive) and the rest is emulated.
        raise TextgenError(
            "--precision bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX), and torch's LSTM cannot train in "
            "bf16 on it; use --precision fp32 or auto"
        )
    return name


def cpu_name() -> str:
    """The CPU's model name (``AMD EPYC 9R14``), which the precision cache and a checkpoint's record of where it
    trained name it by."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_record(device: torch.device, processes: int) -> dict:
    """Where a run trains, as its checkpoint records it: the device type and its name (the GPU's, or the CPU's
    with the threads each process had), and the processes."""
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "processes": processes}
    return {"type": "cpu", "name": cpu_name(), "threads": torch.get_num_threads(), "processes": processes}


def cpu_threads() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` narrows), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_processes(device: torch.device) -> int:
    """How many training processes this machine can run on `device`: one per GPU, or one per CPU core."""
    return torch.cuda.device_count() if device.type == "cuda" else cpu_threads()


def use_device(device: str, precision: str, world: World, *, lstm: bool = True) -> tuple[torch.device, str]:
    """The device and precision this process trains with (`pick_precision`: "auto" where it is timed), and torch
    set up for them: under torchrun the GPU of this rank (`process_group` selected it), and on a CPU an equal share
    of the cores per process on the machine (more threads than cores make every process slower)."""
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    prec = pick_precision(precision, dev, lstm=lstm)  # "auto" on a CPU where it is timed, once the threads are set
    if dev.type == "cpu":
        torch.set_num_threads(max(1, cpu_threads() // world.local_size))
    return dev, prec


def check_fits(model: ModelConfig, batch_size: int, seq_len: int, device: torch.device) -> None:
    """Refuse a model that cannot fit the device's memory before building it: torch would fail with a long
    allocation error, or (where the system overcommits memory) start and be killed by the OOM killer later."""
    need = model.training_bytes(batch_size, seq_len)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not POSIX: let torch report it
            return
    if need > total:
        raise TextgenError(
            f"a {model.describe()} at batch {batch_size}×{seq_len} needs at least {need / 2**30:,.1f} GiB to train "
            f"and this {device.type} has {total / 2**30:,.1f} GiB; lower --hidden-size, --num-layers, --embed-dim, "
            "--batch-size or --seq-len"
        )
