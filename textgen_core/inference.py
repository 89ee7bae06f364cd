"""The LSTM forward pass in numpy: generation and scoring without torch.

Sampling is one character at a time, so each step is a few matrix-vector products whose cost is reading the
weights once. Everything here serves that: the weights are rearranged once at load time so that a step is one
BLAS call per layer plus a handful of in-place ufuncs on preallocated buffers.

- Layout is feature-major: a state is ``(num_layers * hidden, batch)`` and gates are ``(4 * hidden, batch)``,
  so every per-layer and per-gate slice is a contiguous block for any batch size, and the fused weights are
  row-major ``(4H, in)`` matrices multiplied from the left (the fastest OpenBLAS matrix-vector form measured here).
- Layer 0's input projection is a row lookup: the embedding is folded through ``W_ih`` (plus both biases) into a
  ``(vocab, 4H)`` table. Layers above fuse ``[W_ih | W_hh]`` so one product reads ``[h_below; h_own]``, which are
  adjacent rows of the state.
- Gates are reordered from PyTorch's i, f, g, o to i, f, o, g and the sigmoid rows are pre-scaled by 1/2
  (exact in float32), so one ``tanh`` over all four gates followed by ``0.5 * t + 0.5`` on the first three gives
  σ(x) = (1 + tanh(x / 2)) / 2 without a separate exp pass.
- An imported Keras model may use a hard sigmoid, ``clip(a·x + 1/2, 0, 1)``: its rows are pre-scaled by the slope
  `a` instead, and ``tanh`` runs over the cell-input gate alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import RECURRENT_ACTIVATIONS, ModelConfig

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

F32 = np.float32


@dataclass
class LSTMState:
    """Hidden and cell states, feature-major: rows ``k*H:(k+1)*H`` belong to layer k, one column per stream.

    `NumpyLSTM.step` and `forward` update a state in place (no allocation per character); take `copy()` to keep one.
    """

    h: np.ndarray
    c: np.ndarray

    @property
    def batch(self) -> int:
        return self.h.shape[1]

    def copy(self) -> LSTMState:
        return LSTMState(self.h.copy(), self.c.copy())

    def repeat(self, batch: int) -> LSTMState:
        """A state of `batch` streams, each a copy of this single-stream state (one prompt, several samples)."""
        if self.batch != 1:
            raise ValueError("only a single-stream state can be repeated")
        return LSTMState(np.repeat(self.h, batch, axis=1), np.repeat(self.c, batch, axis=1))


class NumpyLSTM:
    """float32 inference for the checkpoint format of `ModelConfig.tensor_shapes` (PyTorch's nn.LSTM layout).

    Not thread-safe: scratch buffers are shared between calls with the same batch size.
    """

    def __init__(self, config: ModelConfig, tensors: dict[str, np.ndarray]):
        expected = config.tensor_shapes()
        for name, shape in expected.items():
            if name not in tensors or tuple(np.shape(tensors[name])) != shape:
                raise ValueError(f"weight {name} is missing or not of shape {shape}")
        self.config = config
        h = config.hidden_size
        self.hidden = h
        self.layers = config.num_layers
        self.vocab_size = config.vocab_size
        #: The hard sigmoid's slope, or None for the sigmoid (see the module doc).
        self.hard_slope = RECURRENT_ACTIVATIONS[config.recurrent_activation]
        # Rows reordered i, f, g, o → i, f, o, g, the three sigmoid gates pre-scaled: written block by block into
        # the arrays that keep them, so that no weight matrix is copied twice (start-up pays for every pass).
        slope = 0.5 if self.hard_slope is None else self.hard_slope
        order = ((0, 2 * h), (3 * h, 4 * h), (2 * h, 3 * h))

        def gates(*names: str, k: int) -> np.ndarray:
            parts = [np.asarray(tensors[f"lstm.{name}_l{k}"], dtype=F32) for name in names]
            widths = [1 if p.ndim == 1 else p.shape[1] for p in parts]
            out = np.empty((4 * h, sum(widths)), F32)
            col = 0
            for part, width in zip(parts, widths, strict=True):
                rows = 0
                for a, b in order:
                    out[rows : rows + b - a, col : col + width] = part[a:b].reshape(b - a, width)
                    rows += b - a
                col += width
            out[: 3 * h] *= slope
            return out if out.shape[1] > 1 else out[:, 0]

        emb = np.asarray(tensors["embedding.weight"], dtype=F32)
        #: (vocab, 4H): layer 0's whole input contribution, biases included, for each character.
        self.table = np.ascontiguousarray(
            emb @ gates("weight_ih", k=0).T + gates("bias_ih", k=0) + gates("bias_hh", k=0)
        )
        #: Layer 0 recurrent weights (4H, H); layers above: fused (4H, 2H) over [h_below; h_own], and biases.
        self.w_hh0 = gates("weight_hh", k=0)
        self.w_fused = [gates("weight_ih", "weight_hh", k=k) for k in range(1, self.layers)]
        self.b_fused = [(gates("bias_ih", k=k) + gates("bias_hh", k=k))[:, None] for k in range(1, self.layers)]
        self.w_head = np.ascontiguousarray(tensors["head.weight"], dtype=F32)
        self.b_head = np.asarray(tensors["head.bias"], dtype=F32).reshape(-1, 1).copy()  # a column, like logits
        #: The table as (4H, vocab): a batch's lookup `_table_t[:, ids]` is then feature-major and contiguous, so
        #: adding it to the gates is one contiguous pass (a transposed row gather measured several times slower).
        self._table_t = np.ascontiguousarray(self.table.T)
        self._scratch: dict[int, tuple[np.ndarray, ...]] = {}

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> NumpyLSTM:
        return cls(ckpt.config, ckpt.tensors)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one step reads (the recurrent and fused matrices, one table row, the head)."""
        mats = [self.w_hh0, *self.w_fused, self.w_head]
        return sum(m.nbytes for m in mats) + self.table[0].nbytes

    def initial_state(self, batch: int = 1) -> LSTMState:
        shape = (self.layers * self.hidden, batch)
        return LSTMState(np.zeros(shape, F32), np.zeros(shape, F32))

    def initial_logits(self) -> np.ndarray:
        """What the head predicts from a zero hidden state: the model's context-free guess (its output bias)."""
        return self.b_head[:, 0].copy()

    def _buffers(self, batch: int) -> tuple[np.ndarray, ...]:
        """The (gates, tmp, inputs) buffers for `batch` streams: a fresh multi-megabyte array per step costs more
        in page faults than the arithmetic done on it."""
        if batch not in self._scratch:
            h = self.hidden
            self._scratch[batch] = tuple(np.empty(shape, F32) for shape in ((4 * h, batch), (h, batch), (4 * h, batch)))
        return self._scratch[batch]

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        """Layer 0's input projection for one character per stream, (4H, B), in a reused buffer."""
        ids = np.asarray(ids)
        return np.take(self._table_t, ids, axis=1, out=self._buffers(len(ids))[2])

    def _cell(self, gates: np.ndarray, c: np.ndarray, h: np.ndarray, tmp: np.ndarray) -> None:
        """In place: gates (4H, B) pre-activations → new cell state `c` and hidden state `h` (views into a state)."""
        n = self.hidden
        sig = gates[: 3 * n]
        if self.hard_slope is None:
            np.tanh(gates, out=gates)
            sig *= 0.5
            sig += 0.5
        else:
            np.tanh(gates[3 * n :], out=gates[3 * n :])
            sig += 0.5
            np.clip(sig, 0.0, 1.0, out=sig)
        c *= gates[n : 2 * n]
        np.multiply(gates[:n], gates[3 * n :], out=tmp)
        c += tmp
        np.tanh(c, out=h)
        h *= gates[2 * n : 3 * n]

    def _advance(self, x0: np.ndarray, state: LSTMState) -> None:
        """Advance every layer one step in place, given layer 0's input projection `x0` (4H, B), biases included."""
        n = self.hidden
        gates, tmp, _ = self._buffers(state.batch)
        np.dot(self.w_hh0, state.h[:n], out=gates)
        gates += x0
        self._cell(gates, state.c[:n], state.h[:n], tmp)
        for k in range(1, self.layers):
            np.dot(self.w_fused[k - 1], state.h[(k - 1) * n : (k + 1) * n], out=gates)
            gates += self.b_fused[k - 1]
            self._cell(gates, state.c[k * n : (k + 1) * n], state.h[k * n : (k + 1) * n], tmp)

    def top(self, state: LSTMState) -> np.ndarray:
        """The top layer's hidden state (H, B): what the head reads (a view into `state`)."""
        return state.h[(self.layers - 1) * self.hidden :]

    def head(self, top: np.ndarray) -> np.ndarray:
        """Logits (N, V) from top-layer outputs given feature-major, (H, N). One product for any N: callers that
        feed many steps before they need the predictions run the head once over all of them."""
        logits = np.dot(self.w_head, top)
        logits += self.b_head
        return logits.T

    def advance(self, ids: np.ndarray, state: LSTMState) -> None:
        """Feed one character per stream (`ids` of shape (B,)), updating `state` in place, without the head: for
        callers that read the state (cells) or batch the head over many steps (parallel scoring)."""
        self._advance(self._lookup(ids), state)

    def step(self, ids: np.ndarray, state: LSTMState) -> tuple[np.ndarray, LSTMState]:
        """Feed one character per stream (`ids` of shape (B,)); returns logits (B, V) and the updated `state`."""
        self.advance(ids, state)
        return self.head(self.top(state)), state

    def window_logits(self, windows: np.ndarray) -> np.ndarray:
        """Logits (B, V) after feeding each row of `windows` (B, W) to its own zero state: the prediction a model
        trained on fixed windows (the Keras book's recipe) makes for the character after each window. All B
        windows advance together, so each of the W steps is one matrix product per layer, and the head runs once."""
        windows = np.asarray(windows)
        state = self.initial_state(len(windows))
        for t in range(windows.shape[1]):
            self.advance(windows[:, t], state)
        return self.head(self.top(state))

    def forward(self, ids: np.ndarray, state: LSTMState) -> tuple[np.ndarray, LSTMState]:
        """Feed a sequence to one stream: logits (T, V) after each character, and the updated `state`.

        Layer 0's input projection for all T characters is one row gather and the head is one matrix product
        at the end; the recurrence runs per character with the same step as `step`. (Projecting the upper
        layers' inputs for all T at once as a matrix product measured no faster on a 2-core CPU: the fused
        matrix-vector product already reads the weights from cache at close to the machine's bandwidth.)
        Memory is O(T · (4H + V)): callers scoring long texts feed chunks and carry the state.
        """
        if state.batch != 1:
            raise ValueError("forward() runs one stream; use step() for a batch")
        x = self.table[np.asarray(ids)]
        top = self.top(state)[:, 0]
        outs = np.empty((len(x), self.hidden), F32)
        for t in range(len(x)):
            self._advance(x[t][:, None], state)
            outs[t] = top
        return self.head(outs.T), state
