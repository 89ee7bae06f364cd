"""A run's training state in its resume file: written and put back here, so that what its tensors hold is known
in one module (`runfolder` opens the file and checks that it is complete; it needs no torch).

The resume file's tensors: ``model/…`` the weights, ``ema/…`` their moving average (with --ema), ``optim/I/NAME``
AdamW's state of parameter I, ``stream/h`` and ``stream/c`` the LSTM state of every stream of the world
(layers, world × batch, hidden), ``rng/torch`` and ``rng/cuda`` one RNG state per rank. Its metadata is the run's
record (what `loop.Trainer` says the run is and where it stands) with the state's own: the optimiser's parameter
groups, the loss scaler, the world size and how many steps the average holds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from .. import checkpoint as ckpt
from ..config import ModelConfig
from ..errors import TextgenError
from .distributed import World
from .model import CharLSTM

#: The LSTM state of this rank's streams: (h, c), each (layers, batch, hidden).
StreamState = tuple[torch.Tensor, torch.Tensor]


def save_resume(
    path: Path,
    record: dict,
    *,
    world: World,
    device: torch.device,
    model: CharLSTM,
    averaged: AveragedModel | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: StreamState,
) -> Path | None:
    """Write the resume file on rank 0 and return its path there (None on the other ranks). Every rank must
    call this: it gathers their streams and RNG states. Non-finite values are refused, never saved."""
    h, c = (world.gather(s.detach().float(), dim=1) for s in state)
    rng = world.gather(torch.get_rng_state()[None])
    rng_cuda = world.gather(torch.cuda.get_rng_state(device)[None]) if device.type == "cuda" else None
    if not world.is_main:
        return None
    tensors: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.to_numpy().items()}
    if averaged is not None:
        tensors.update({f"ema/{k}": v for k, v in averaged.module.to_numpy().items()})
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for name, t in st.items():
            # Views of the live tensors (on CPU), not copies: the file is written before training goes on.
            tensors[f"optim/{idx}/{name}"] = (
                t.detach().to("cpu", torch.float32).reshape(-1).numpy() if name == "step" else t.detach().cpu().numpy()
            )
    tensors["stream/h"] = h.cpu().numpy()
    tensors["stream/c"] = c.cpu().numpy()
    tensors["rng/torch"] = rng.numpy()
    if rng_cuda is not None:
        tensors["rng/cuda"] = rng_cuda.cpu().numpy()
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise TextgenError(f"refusing to save resume state: {name} contains NaN or Inf")
    meta = record | {
        "param_groups": opt["param_groups"],
        "world_size": world.size,
        "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "ema_updates": 0 if averaged is None else int(averaged.n_averaged),
    }
    ckpt.write_safetensors(path, tensors, {"resume": json.dumps(meta)})
    return path


def _prefixed(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The weights stored under `prefix` in a resume file, keyed by checkpoint names."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore(
    tensors: dict[str, np.ndarray],
    meta: dict,
    *,
    model: CharLSTM,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch_size: int,
    world: World,
    device: torch.device,
) -> StreamState:
    """Put the saved weights, optimiser state, loss scaler and this rank's RNG back; return this rank's streams'
    LSTM state. Streams are saved for the whole world, RNG states one row per rank."""
    model.load_numpy(_prefixed(tensors, "model/"))
    opt_state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/")
            t = torch.from_numpy(v)
            if name == "step":
                t = t.reshape(())
            opt_state["state"].setdefault(int(idx), {})[name] = t
    optimizer.load_state_dict(opt_state)
    if scaler.is_enabled() and meta.get("grad_scaler"):
        scaler.load_state_dict(meta["grad_scaler"])
    b, r, n = batch_size, world.rank, world.size
    h, c = (np.ascontiguousarray(tensors[f"stream/{k}"][:, r * b : (r + 1) * b]) for k in "hc")
    torch.set_rng_state(torch.from_numpy(tensors["rng/torch"].reshape(n, -1)[r]))
    if device.type == "cuda" and "rng/cuda" in tensors:
        torch.cuda.set_rng_state(torch.from_numpy(tensors["rng/cuda"].reshape(n, -1)[r]), device)
    return torch.from_numpy(h).to(device), torch.from_numpy(c).to(device)


def restore_average(
    averaged: AveragedModel, tensors: dict[str, np.ndarray], meta: dict, model_config: ModelConfig, path: Path
) -> None:
    """Put a saved moving average back. A run that turns --ema on at a resume has none saved: its average
    starts from the weights it resumes with."""
    if not meta.get("ema_updates"):
        return
    weights = _prefixed(tensors, "ema/")
    if weights.keys() != model_config.tensor_shapes().keys():
        raise TextgenError(
            f"{path}: resume state is incomplete (lacks the moving average of the weights); "
            "resume with --ema 0 or start a new --out"
        )
    averaged.module.load_numpy(weights)
    averaged.n_averaged.fill_(int(meta["ema_updates"]))


def best_so_far(out: Path, meta: dict) -> tuple[float, int]:
    """The best validation bpc and its step: the resume file's, or the run's model's where that is better (a
    crash between writing model.safetensors and resume.safetensors leaves it so)."""
    best_val = float(meta["best_val"]) if meta["best_val"] is not None else math.inf
    best_step = int(meta["best_step"])
    best_path = out / ckpt.WEIGHTS_NAME
    if best_path.exists():
        best = ckpt.read_meta(best_path)
        if best.val_bpc is not None and best.val_bpc < best_val:
            return best.val_bpc, best.step
    return best_val, best_step
