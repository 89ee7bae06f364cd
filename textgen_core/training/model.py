"""The torch model used for training: embedding → stacked recurrent layers (LSTM, GRU or plain RNN) → linear head.

Each layer is its own torch layer (`TORCH_LAYERS`: the torch side of each trainable cell type of
`textgen_core.recurrent`), so that the dropout between layers is textgen's `dropout` (the masks at half the cost)
rather than the `bernoulli_` masks inside a multi-layer one. `to_numpy`, `from_numpy` and `load_numpy` speak the
checkpoint's names (`ModelConfig.tensor_shapes`, those of one multi-layer torch layer), which the torch-free
inference path reads.

A stream's state is ``(h, c)`` for every cell, so that the loop, the resume file and DDP carry one shape of
thing: a cell without a cell state has a ``c`` of no features, ``(layers, batch, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..errors import TextgenError
from ..recurrent import CELLS


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with the masks drawn as `uniform >= p`: the same Bernoulli(1 - p) masks as `F.dropout`,
    cheaper on CPU, where torch's `bernoulli_` is slower than `rand` and the masks are a visible share of a small
    model's step (bench/bench_train.py measures it). The bool mask keeps the result in `x`'s dtype (bf16 under
    autocast) and is all that backward stores."""
    if not training or p == 0:
        return x
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep * (1.0 / (1.0 - p))


#: The torch layer of each trainable cell type (`recurrent.TRAINABLE`), built for one layer, batch first.
TORCH_LAYERS: dict[str, Callable[[int, int], nn.Module]] = {
    "lstm": lambda inp, hidden: nn.LSTM(inp, hidden, batch_first=True),
    "gru": lambda inp, hidden: nn.GRU(inp, hidden, batch_first=True),
    "rnn": lambda inp, hidden: nn.RNN(inp, hidden, nonlinearity="tanh", batch_first=True),
}


def module_name(name: str, prefix: str) -> str:
    """The module's name for a checkpoint tensor: checkpoints name layer k's weights as one multi-layer torch layer
    does (`lstm.weight_ih_l{k}`, `gru.…`); the model runs each layer as its own (`layers.{k}.…_l0`)."""
    if not name.startswith(prefix + "."):
        return name
    stem, k = name[len(prefix) + 1 :].rsplit("_l", 1)
    return f"layers.{k}.{stem}_l0"


class CharLSTM(nn.Module):
    """The model of a `ModelConfig`, whichever trainable cell it names."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.cell not in TORCH_LAYERS:  # a Keras-only cell, or an imported mixed stack
            raise TextgenError(
                f"textgen cannot train a {config.cell_title} model (it trains one cell type for every layer, "
                f"one of {', '.join(TORCH_LAYERS)})"
            )
        self.config = config
        self.memory = CELLS[config.cell].memory
        self._prefix = CELLS[config.cell].prefix
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        make = TORCH_LAYERS[config.cell]
        self.layers = nn.ModuleList(
            make(config.embed_dim if k == 0 else config.hidden_size, config.hidden_size)
            for k in range(config.num_layers)
        )
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """ids: (batch, time) → logits (batch, time, vocab) and the final (h, c) state."""
        cfg = self.config
        x = dropout(self.embedding(ids), cfg.embed_dropout, self.training)
        hs, cs = [], []
        for k, layer in enumerate(self.layers):
            s = None
            if state is not None:
                s = (state[0][k : k + 1], state[1][k : k + 1]) if self.memory else state[0][k : k + 1]
            if self.training and cfg.weight_drop > 0:
                weights = dict(layer.named_parameters())
                weights["weight_hh_l0"] = dropout(weights["weight_hh_l0"], cfg.weight_drop, True)
                x, out = torch.func.functional_call(layer, weights, (x, s))
            else:
                x, out = layer(x, s)
            h, c = out if self.memory else (out, out[..., :0])
            hs.append(h)
            cs.append(c)
            x = dropout(x, cfg.dropout, self.training)  # between the layers, and before the head
        return self.head(x), (torch.cat(hs), torch.cat(cs))

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        shape = (cfg.num_layers, batch, cfg.hidden_size)
        memory = (cfg.num_layers, batch, cfg.hidden_size if self.memory else 0)
        return torch.zeros(shape, device=device), torch.zeros(memory, device=device)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """float32 copies of the weights, keyed by checkpoint names."""
        sd = self.state_dict()
        return {
            name: sd[module_name(name, self._prefix)].detach().to("cpu", torch.float32).numpy().copy()
            for name in self.config.tensor_shapes()
        }

    def load_numpy(self, tensors: dict[str, np.ndarray]) -> None:
        """Load weights keyed by checkpoint names (as `to_numpy` returns them)."""
        self.load_state_dict(
            {
                module_name(k, self._prefix): torch.from_numpy(np.asarray(v, dtype=np.float32))
                for k, v in tensors.items()
            }
        )

    @classmethod
    def from_numpy(cls, config: ModelConfig, tensors: dict[str, np.ndarray]) -> CharLSTM:
        model = cls(config)
        model.load_numpy(tensors)
        return model
