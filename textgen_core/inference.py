"""The model's forward pass in numpy: generation and scoring without torch, for every recurrent cell type.

Sampling is one character at a time, so each step is a few matrix-vector products whose cost is reading the
weights once. Everything here serves that: the weights are rearranged once at load time (each cell's `prepare`,
`textgen_core.recurrent`) so that a step is one or two BLAS calls per layer plus a handful of in-place ufuncs on
preallocated buffers.

- Layout is feature-major: a state is ``(num_layers * hidden, batch)`` (an LSTM's cell state too; a cell without
  one keeps an empty array), so every per-layer slice is a contiguous block for any batch size, and the prepared
  weights are row-major matrices multiplied from the left (the fastest OpenBLAS matrix-vector form measured here).
- Layer 0's input projection is a row lookup: the embedding is folded through ``W_ih`` (with the biases it can
  take) into a ``(vocab, rows)`` table. Layers above fuse their input and recurrent matrices so one product reads
  ``[h_below; h_own]``, which are adjacent rows of the state.
- The gates' order, pre-scaling and activations are the cell's (`recurrent`): for the LSTM, one ``tanh`` over all
  four gates followed by ``0.5 * t + 0.5`` on the sigmoid rows, or an imported Keras model's hard sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import RECURRENT_ACTIVATIONS, ModelConfig
from .recurrent import STEMS, Prepared

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
    """float32 inference for the checkpoint format of `ModelConfig.tensor_shapes`, whatever the config's cell.

    Not thread-safe: scratch buffers are shared between calls with the same batch size.
    """

    def __init__(self, config: ModelConfig, tensors: dict[str, np.ndarray]):
        expected = config.tensor_shapes()
        for name, shape in expected.items():
            if name not in tensors or tuple(np.shape(tensors[name])) != shape:
                raise ValueError(f"weight {name} is missing or not of shape {shape}")
        self.config = config
        #: Each layer's cell type (one for all but in an imported mixed stack).
        self.cells = [config.layer_cell(k) for k in range(config.num_layers)]
        #: Whether the state has a cell state: rows for every layer if any layer keeps one (an LSTM).
        self.memory = any(c.memory for c in self.cells)
        #: Per state row, whether its value in the cells view is tanh(c) (an LSTM layer's) or h.
        self._memory_rows = np.repeat([c.memory for c in self.cells], config.hidden_size)
        h = config.hidden_size
        self.hidden = h
        self.layers = config.num_layers
        self.vocab_size = config.vocab_size
        #: The hard sigmoid's slope, or None for the sigmoid (see `recurrent`).
        self.hard_slope = RECURRENT_ACTIVATIONS[config.recurrent_activation]
        emb = np.asarray(tensors["embedding.weight"], dtype=F32)
        self._layers: list[Prepared] = []
        for k, cell in enumerate(self.cells):
            w = {stem: tensors[f"{cell.prefix}.{stem}_l{k}"] for stem in STEMS}
            prepared = cell.prepare(w, emb if k == 0 else None, self.hard_slope)
            prepared.slope = self.hard_slope
            self._layers.append(prepared)
        first = self._layers[0]
        assert first.table is not None
        #: (vocab, rows): layer 0's whole input contribution for each character.
        self.table = np.ascontiguousarray(first.table)
        self.w_head = np.ascontiguousarray(tensors["head.weight"], dtype=F32)
        self.b_head = np.asarray(tensors["head.bias"], dtype=F32).reshape(-1, 1).copy()  # a column, like logits
        #: The table as (rows, vocab): a batch's lookup `_table_t[:, ids]` is then feature-major and contiguous, so
        #: adding it to the gates is one contiguous pass (a transposed row gather measured several times slower).
        self._table_t = np.ascontiguousarray(self.table.T)
        self._scratch: dict[int, tuple[np.ndarray, ...]] = {}

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> NumpyLSTM:
        return cls(ckpt.config, ckpt.tensors)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one step reads (the recurrent and fused matrices, one table row, the head)."""
        mats = [m for p in self._layers for m in (p.recurrent, p.fused, p.extra) if m is not None] + [self.w_head]
        return sum(m.nbytes for m in mats) + self.table[0].nbytes

    def initial_state(self, batch: int = 1) -> LSTMState:
        rows = self.layers * self.hidden
        return LSTMState(np.zeros((rows, batch), F32), np.zeros((rows if self.memory else 0, batch), F32))

    def initial_logits(self) -> np.ndarray:
        """What the head predicts from a zero hidden state: the model's context-free guess (its output bias)."""
        return self.b_head[:, 0].copy()

    def readout(self, state: LSTMState, index: tuple | int | slice = slice(None)) -> np.ndarray:
        """What the cells view shows of the units `index` selects in the state's (layers · hidden, batch) rows, in
        [-1, 1]: tanh of an LSTM's cell state (its memory, which the output gate scales into h), the hidden state
        of a cell without one. Only the selected values are computed (one unit per streamed character)."""
        if not self.memory:
            return state.h[index]
        if self._memory_rows.all():
            return np.tanh(state.c[index])
        rows = index[0] if isinstance(index, tuple) else index
        return np.where(self._memory_rows[rows], np.tanh(state.c[index]), state.h[index])

    def value_name(self, layer: int) -> str:
        """What `readout` shows of layer `layer`'s units, as a legend says it."""
        cell = self.cells[layer]
        return "tanh(c)" if cell.memory else f"h (a {cell.title} has no cell state apart from its output)"

    def _buffers(self, batch: int) -> tuple[np.ndarray, ...]:
        """The (gates, two temporaries, inputs) buffers for `batch` streams: a fresh multi-megabyte array per step
        costs more in page faults than the arithmetic done on it."""
        if batch not in self._scratch:
            h, rows = self.hidden, max(c.rows for c in self.cells) * self.hidden
            shapes = ((rows, batch), (h, batch), (h, batch), (rows, batch))
            self._scratch[batch] = tuple(np.empty(shape, F32) for shape in shapes)
        return self._scratch[batch]

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        """Layer 0's input projection for one character per stream, (rows, B), in a reused buffer."""
        ids = np.asarray(ids)
        return np.take(self._table_t, ids, axis=1, out=self._buffers(len(ids))[3])

    def _advance(self, x0: np.ndarray, state: LSTMState) -> None:
        """Advance every layer one step in place, given layer 0's input projection `x0` (rows, B)."""
        n = self.hidden
        bufs = self._buffers(state.batch)[:3]
        for k, (cell, prepared) in enumerate(zip(self.cells, self._layers, strict=True)):
            pair = state.h[k * n : (k + 1) * n] if k == 0 else state.h[(k - 1) * n : (k + 1) * n]
            c = state.c[k * n : (k + 1) * n] if cell.memory else state.c[:0]
            gates = bufs[0][: cell.rows * n]
            cell.step(prepared, x0 if k == 0 else None, pair, c, (gates, *bufs[1:]))

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
