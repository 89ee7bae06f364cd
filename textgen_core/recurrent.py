"""The recurrent cell types, each defined once: its weights' names and shapes, its gate order, and its numpy step.

The checkpoint format (`ModelConfig.tensor_shapes`), the numpy inference (`inference.NumpyModel`: the stateful
step, the batched forward, parallel scoring, beam search, the cells view), the torch model
(`training/model.py`, which adds each trainable cell's torch layer) and the Keras importer all read these
definitions; a new cell type is one more class here, plus its torch layer if textgen trains it.

Every cell stores PyTorch's layout: per layer k, ``{prefix}.weight_ih_l{k}`` (G·H, in), ``weight_hh_l{k}``
(G·H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G·H,), G blocks of H rows in the cell's gate order:

- `lstm`: i, f, g, o (input, forget, cell input, output); a hidden state h and a cell state c.
- `gru`: r, z, n (reset, update, new); ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, the reset applied after
  the recurrent product (PyTorch's GRU, Keras's ``reset_after=True``); only a hidden state.
- `gru_reset_before`: r, z, n with ``n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)``, the reset applied before the
  product (Keras's ``reset_after=False``, its default before Keras 2.3). Imported only: torch has no such layer.
- `rnn`: one block; ``h = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

The numpy step: a state is feature-major, ``(layers · H, batch)``, so that layer k's rows and the pair
``[h_below; h_own]`` are contiguous blocks. Each cell turns a layer's weights into *pre-activation rows*
(`prepare`): layer 0's input contribution is a per-character table (the embedding folded through ``W_ih`` with the
biases), the layers above one fused matrix over ``[h_below; h_own]``, so a step is one or two BLAS products per
layer and a few in-place ufuncs. Sigmoid gates are pre-scaled by 1/2 so that ``0.5 · tanh + 0.5`` gives the
sigmoid in the same ``tanh`` pass, or by a hard sigmoid's slope, ``clip(slope · x + 1/2, 0, 1)``, for imported
Keras models (`config.RECURRENT_ACTIVATIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

F32 = np.float32
#: The four tensors of a layer, by their PyTorch stems.
STEMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@dataclass
class Prepared:
    """One layer's weights rearranged for the numpy step. Layer 0 has `table` (vocab, rows) and the recurrent
    matrices; a layer above has `fused` (rows, 2H) over ``[h_below; h_own]`` and `bias` (rows, 1); `extra` holds a
    second product's matrix where the cell needs one (the reset-before GRU's ``W_hn``)."""

    table: np.ndarray | None = None
    recurrent: np.ndarray | None = None
    fused: np.ndarray | None = None
    bias: np.ndarray | None = None
    extra: np.ndarray | None = None
    #: The hard sigmoid's slope, or None for the sigmoid (the gates' rows were pre-scaled for it).
    slope: float | None = None


class Cell:
    """A recurrent cell type. Subclasses set the class attributes and the numpy step."""

    #: The name a config records and `--cell` takes; `prefix` names its tensors in a checkpoint.
    name: ClassVar[str]
    prefix: ClassVar[str]
    #: How `info`, the banner and messages call it.
    title: ClassVar[str]
    #: Blocks of H rows in ``weight_ih`` / ``weight_hh``, in `gate_order`.
    gates: ClassVar[int]
    gate_order: ClassVar[str]
    #: Whether the cell keeps a cell state apart from its output (only the LSTM): the cells view reads tanh(c)
    #: there, the hidden state h otherwise.
    memory: ClassVar[bool] = False
    #: Blocks of H pre-activation rows the numpy step computes per layer.
    rows: ClassVar[int]
    #: Whether `textgen train --cell` offers it (torch has the layer).
    trainable: ClassVar[bool] = True

    # ---- the format ------------------------------------------------------------------------------------------

    def layer_shapes(self, k: int, inp: int, hidden: int) -> dict[str, tuple[int, ...]]:
        """Checkpoint names and shapes of layer k's weights, for an input of `inp` features."""
        g = self.gates * hidden
        shapes = ((g, inp), (g, hidden), (g,), (g,))
        return {f"{self.prefix}.{stem}_l{k}": shape for stem, shape in zip(STEMS, shapes, strict=True)}

    def layer_params(self, inp: int, hidden: int) -> int:
        """The number of weights of one layer, in closed form (what `layer_shapes` adds up to)."""
        return self.gates * hidden * (inp + hidden + 2)

    # ---- the numpy step --------------------------------------------------------------------------------------

    def prepare(self, w: dict[str, np.ndarray], emb: np.ndarray | None, slope: float | None) -> Prepared:
        """Layer weights (by stem, PyTorch's layout) as the step reads them; `emb` (vocab, E) for layer 0, None
        above; `slope` the hard sigmoid's, None for the sigmoid. The caller records `slope` in the result."""
        raise NotImplementedError

    def step(
        self, p: Prepared, x0: np.ndarray | None, pair: np.ndarray, c: np.ndarray, bufs: tuple[np.ndarray, ...]
    ) -> None:
        """Advance one layer in place. `pair` is ``[h_below; h_own]`` (2H, B) for a layer above, or h_own (H, B) for
        layer 0, whose input contribution `x0` (rows·H, B) comes from the table; `c` the layer's cell state (no
        rows for a cell without one); `bufs` (gates (rows·H, B), two (H, B) temporaries)."""
        raise NotImplementedError


def _sigmoid_in_place(x: np.ndarray, slope: float | None) -> None:
    """σ over rows pre-scaled by `_scale`: ``0.5 · tanh + 0.5`` (the sigmoid), or the hard sigmoid's clip."""
    if slope is None:
        np.tanh(x, out=x)
        x *= 0.5
        x += 0.5
    else:
        x += 0.5
        np.clip(x, 0.0, 1.0, out=x)


def _scale(slope: float | None) -> float:
    """The factor sigmoid rows are multiplied by in `prepare` (see `_sigmoid_in_place`)."""
    return 0.5 if slope is None else slope


def _place(out: np.ndarray, a: np.ndarray, hidden: int, order: tuple[int, ...], scaled: int, scale: float) -> None:
    """Write the H-row blocks of `a` into `out` in `order`, the first `scaled` of them multiplied by `scale`: one
    pass over the weights, widening them (a float16 checkpoint) on the way, so opening a model costs one copy of
    its weights rather than a copy per rearrangement (start-up reads every weight once)."""
    for i, b in enumerate(order):
        rows = out[i * hidden : (i + 1) * hidden]
        rows[...] = a[b * hidden : (b + 1) * hidden]
        if i < scaled:
            rows *= scale


class LSTM(Cell):
    """Gates reordered i, f, g, o → i, f, o, g, the three sigmoid rows pre-scaled, so one ``tanh`` over all four
    (or over g alone for a hard sigmoid) and an affine map give every gate."""

    name = prefix = "lstm"
    title = "LSTM"
    gates, gate_order, memory, rows = 4, "i, f, g, o", True, 4

    #: Where each stored gate block (i, f, g, o) goes: i, f, o, g, the first three (the sigmoids) pre-scaled.
    _ORDER = (0, 1, 3, 2)

    def prepare(self, w: dict[str, np.ndarray], emb: np.ndarray | None, slope: float | None) -> Prepared:
        h = w["weight_hh"].shape[1]
        s = _scale(slope)
        bias = np.empty(4 * h, F32)
        _place(bias, np.asarray(w["bias_ih"], F32) + w["bias_hh"], h, self._ORDER, 3, s)
        wh = w["weight_hh"]
        if emb is not None:
            wi = np.empty(w["weight_ih"].shape, F32)
            _place(wi, w["weight_ih"], h, self._ORDER, 3, s)
            recurrent = np.empty(wh.shape, F32)
            _place(recurrent, wh, h, self._ORDER, 3, s)
            return Prepared(table=emb @ wi.T + bias, recurrent=recurrent)
        below = w["weight_ih"].shape[1]
        fused = np.empty((4 * h, below + h), F32)
        _place(fused[:, :below], w["weight_ih"], h, self._ORDER, 3, s)
        _place(fused[:, below:], wh, h, self._ORDER, 3, s)
        return Prepared(fused=fused, bias=bias[:, None])

    def step(
        self, p: Prepared, x0: np.ndarray | None, pair: np.ndarray, c: np.ndarray, bufs: tuple[np.ndarray, ...]
    ) -> None:
        gates, tmp, _ = bufs
        n = c.shape[0]
        h = pair[-n:]
        if x0 is not None:
            np.dot(p.recurrent, pair, out=gates)
            gates += x0
        else:
            np.dot(p.fused, pair, out=gates)
            gates += p.bias
        slope = p.slope
        if slope is None:
            np.tanh(gates, out=gates)
            gates[: 3 * n] *= 0.5
            gates[: 3 * n] += 0.5
        else:
            np.tanh(gates[3 * n :], out=gates[3 * n :])
            gates[: 3 * n] += 0.5
            np.clip(gates[: 3 * n], 0.0, 1.0, out=gates[: 3 * n])
        c *= gates[n : 2 * n]
        np.multiply(gates[:n], gates[3 * n :], out=tmp)
        c += tmp
        np.tanh(c, out=h)
        h *= gates[2 * n : 3 * n]


def _gru_fused(wi: np.ndarray, wh: np.ndarray, scale: float, rows: int) -> np.ndarray:
    """A GRU layer's fused matrix over ``[h_below; h_own]`` (rows·H, 2H): the r and z rows (pre-scaled) read both
    halves, the input's n rows only h_below; the rows after those (the recurrent n part, in `GRU`) are left zero."""
    h = wh.shape[1]
    fused = np.zeros((rows * h, 2 * h), F32)
    fused[: 2 * h, :h] = wi[: 2 * h] * scale
    fused[: 2 * h, h:] = wh[: 2 * h] * scale
    fused[2 * h : 3 * h, :h] = wi[2 * h :]
    return fused


class GRU(Cell):
    """Pre-activation rows r, z (sigmoid, pre-scaled), the input's n part, the recurrent n part: the reset gate
    multiplies the recurrent part after its product, so a layer above is still one fused product (with zero
    blocks where the input does not reach h's part and the other way round)."""

    name = prefix = "gru"
    title = "GRU"
    gates, gate_order, rows = 3, "r, z, n", 4

    def prepare(self, w: dict[str, np.ndarray], emb: np.ndarray | None, slope: float | None) -> Prepared:
        h = w["weight_hh"].shape[1]
        s = _scale(slope)
        wi, wh = np.asarray(w["weight_ih"], F32), np.asarray(w["weight_hh"], F32)
        bi, bh = np.asarray(w["bias_ih"], F32), np.asarray(w["bias_hh"], F32)
        bias = np.concatenate([(bi[: 2 * h] + bh[: 2 * h]) * s, bi[2 * h :], bh[2 * h :]])
        if emb is not None:
            table = np.empty((len(emb), 4 * h), F32)
            table[:, : 3 * h] = emb @ wi.T
            table[:, 3 * h :] = 0.0
            table[:, : 2 * h] *= s
            table += bias
            recurrent = np.empty((2 * h, h), F32)  # the r, z rows; W_hn is `extra`
            np.multiply(wh[: 2 * h], s, out=recurrent)
            return Prepared(table=table, recurrent=recurrent, extra=np.ascontiguousarray(wh[2 * h :]))
        fused = _gru_fused(wi, wh, s, rows=4)
        fused[3 * h :, h:] = wh[2 * h :]
        return Prepared(fused=fused, bias=bias[:, None])

    def step(
        self, p: Prepared, x0: np.ndarray | None, pair: np.ndarray, c: np.ndarray, bufs: tuple[np.ndarray, ...]
    ) -> None:
        gates, tmp, _ = bufs
        n = tmp.shape[0]
        h = pair[-n:]
        if x0 is not None:
            np.dot(p.recurrent, pair, out=gates[: 2 * n])
            np.dot(p.extra, pair, out=gates[3 * n :])
            gates[2 * n : 3 * n] = 0.0
            gates += x0
        else:
            np.dot(p.fused, pair, out=gates)
            gates += p.bias
        _sigmoid_in_place(gates[: 2 * n], p.slope)
        np.multiply(gates[:n], gates[3 * n :], out=tmp)  # r ⊙ (W_hn h + b_hn)
        tmp += gates[2 * n : 3 * n]
        np.tanh(tmp, out=tmp)  # n
        h -= tmp  # h' = n + z ⊙ (h − n)
        h *= gates[n : 2 * n]
        h += tmp


class GRUResetBefore(Cell):
    """Keras's ``reset_after=False`` GRU: the reset gate multiplies h before ``W_hn``, so each layer takes a second
    product, ``W_hn (r ⊙ h)``, after the gates; every bias is outside the reset and folds into the input rows."""

    name = "gru_reset_before"
    prefix = "gru"
    title = "GRU (reset before)"
    gates, gate_order, rows, trainable = 3, "r, z, n", 3, False

    def prepare(self, w: dict[str, np.ndarray], emb: np.ndarray | None, slope: float | None) -> Prepared:
        h = w["weight_hh"].shape[1]
        s = _scale(slope)
        wi, wh = np.asarray(w["weight_ih"], F32), np.asarray(w["weight_hh"], F32)
        bias = np.asarray(w["bias_ih"], F32) + np.asarray(w["bias_hh"], F32)
        bias[: 2 * h] *= s
        extra = np.ascontiguousarray(wh[2 * h :])
        if emb is not None:
            table = emb @ wi.T
            table[:, : 2 * h] *= s
            table += bias
            return Prepared(table=table, recurrent=np.ascontiguousarray(wh[: 2 * h] * s), extra=extra)
        return Prepared(fused=_gru_fused(wi, wh, s, rows=3), bias=bias[:, None], extra=extra)

    def step(
        self, p: Prepared, x0: np.ndarray | None, pair: np.ndarray, c: np.ndarray, bufs: tuple[np.ndarray, ...]
    ) -> None:
        gates, tmp, tmp2 = bufs
        n = tmp.shape[0]
        h = pair[-n:]
        if x0 is not None:
            np.dot(p.recurrent, pair, out=gates[: 2 * n])
            gates[2 * n : 3 * n] = 0.0
            gates[: 3 * n] += x0
        else:
            np.dot(p.fused, pair, out=gates[: 3 * n])
            gates[: 3 * n] += p.bias
        _sigmoid_in_place(gates[: 2 * n], p.slope)
        np.multiply(gates[:n], h, out=tmp)  # r ⊙ h
        np.dot(p.extra, tmp, out=tmp2)
        tmp2 += gates[2 * n : 3 * n]
        np.tanh(tmp2, out=tmp2)  # n
        h -= tmp2
        h *= gates[n : 2 * n]
        h += tmp2


class RNN(Cell):
    """The plain (Elman) recurrent layer with tanh: one block, ``h = tanh(W_ih x + W_hh h + b)``."""

    name = prefix = "rnn"
    title = "RNN"
    gates, gate_order, rows = 1, "h", 1

    def prepare(self, w: dict[str, np.ndarray], emb: np.ndarray | None, slope: float | None) -> Prepared:
        wi, wh = np.asarray(w["weight_ih"], F32), np.asarray(w["weight_hh"], F32)
        bias = np.asarray(w["bias_ih"], F32) + np.asarray(w["bias_hh"], F32)
        if emb is not None:
            return Prepared(table=emb @ wi.T + bias, recurrent=np.ascontiguousarray(wh))
        return Prepared(fused=np.concatenate([wi, wh], axis=1), bias=bias[:, None])

    def step(
        self, p: Prepared, x0: np.ndarray | None, pair: np.ndarray, c: np.ndarray, bufs: tuple[np.ndarray, ...]
    ) -> None:
        gates, tmp, _ = bufs
        n = tmp.shape[0]
        if x0 is not None:
            np.dot(p.recurrent, pair, out=gates[:n])
            gates[:n] += x0
        else:
            np.dot(p.fused, pair, out=gates[:n])
            gates[:n] += p.bias
        np.tanh(gates[:n], out=pair[-n:])


#: Every cell type by the name a config records.
CELLS: dict[str, Cell] = {c.name: c() for c in (LSTM, GRU, RNN, GRUResetBefore)}
#: What `textgen train --cell` offers.
TRAINABLE = tuple(name for name, c in CELLS.items() if c.trainable)


def cell_type(name: str) -> Cell:
    """The cell a config names; ValueError (a checkpoint's metadata is wrong) for any other name."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {name!r}")
    return CELLS[name]
