"""The fast kernels: faster equivalents of the textbook model's hot spots, chosen once.

`encoder.py`, `attention.py` and `decoder.py` compute the model as the literature writes it, in
plain PyTorch. Each has one replaceable kernel per hot spot, a plain callable attribute whose
default is the textbook computation:

- `Encoder.run_rnn(rnn, x, lengths)`: the RNN over a padded batch (textbook: a packed sequence);
- `Attention.additive`: additive attention's scores v . tanh(q + k) (textbook: `TanhScores`);
- `Attention.general`: general attention's scores (W q) . k (textbook: `ProjectedQuery`);
- `Decoder.run_rnn(rnn, x, hidden)`: the decoder RNN over one step or a whole target
  (textbook: the RNN module).

`prepare(model, device, mode, precision, enabled)` is the ONE place that picks the kernels, from
`plan(...)`, a pure function of where and how the model will run; the trainer calls it for
training (and for inference around each validation), the translator for inference. Nothing in
a forward pass looks at grad mode, the device or autocast to pick a path. `model.fast_kernels:
false` keeps the textbook kernels (plus the float32 recurrence that bfloat16 on a CPU without
native bf16 needs to run at all). Tests hold every kernel to the textbook's outputs and
gradients (`tests/test_fast.py`); why each is faster, and by how much, is measured in
`benchmarks/` and recorded in docs/benchmarks.md.

| device | mode  | encoder    | additive scores   | general scores  | decoder steps        |
|--------|-------|------------|-------------------|-----------------|----------------------|
| CPU    | train | `ByLength` | `SlicedScores`    | projected query | `CellKernelSteps`    |
| CPU    | infer | packed     | `CachedExpScores` | `ProjectedKeys` | `FusedSteps` / int8  |
| GPU    | train | packed     | `SigmoidScores`   | projected query | `CellKernelSteps`    |
| GPU    | infer | packed     | `SigmoidScores`   | `ProjectedKeys` | `CellKernelSteps`    |

(`SlicedScores` has its own backward; int8 steps run the decoder's quantized step cells.)
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tandem.cpu import native_bf16
from tandem.model.attention import Attention, ProjectedQuery, TanhScores
from tandem.model.decoder import Decoder, plain_rnn
from tandem.model.encoder import Encoder, packed_rnn

Mode = Literal["train", "infer"]
Precision = Literal["fp32", "bf16", "int8"]


# --- the plan -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Which kernel each hot spot uses (names as in the table of this module's docstring)."""

    encoder: Literal["packed", "by_length"]
    additive: Literal["tanh", "sigmoid", "sliced", "cached_exp"]
    decoder: Literal["rnn", "cell_kernels", "fused_cells", "int8_cells"]
    float32_rnn: bool  # run the recurrences in float32 under bfloat16 autocast
    general: Literal["query", "keys"] = "query"  # general attention: which side W projects


TEXTBOOK = Plan("packed", "tanh", "rnn", False)


def plan(device: torch.device | str, mode: Mode, precision: Precision = "fp32",
         enabled: bool = True) -> Plan:
    """The kernels for a model that runs on `device` for `mode` at `precision`.

    oneDNN has no bfloat16 recurrent kernel, so on a CPU without native bf16 the recurrences
    run in float32 and only the products around them in bf16: that is needed to run at all,
    so it holds with `enabled=False` too."""
    cpu = torch.device(device).type == "cpu"
    float32_rnn = cpu and precision == "bf16" and not native_bf16()
    if not enabled:
        return Plan("packed", "tanh", "rnn", float32_rnn)
    if mode == "train":
        # under autocast the own-backward kernel would see bf16 products; autograd's graph
        # of the sigmoid form handles the mixed dtypes
        additive = "sliced" if cpu and precision == "fp32" else "sigmoid"
        return Plan("by_length" if cpu else "packed", additive, "cell_kernels", float32_rnn)
    if precision == "int8":
        decoder = "int8_cells"
    elif cpu and not float32_rnn:
        decoder = "fused_cells"
    else:  # a GPU step is bound by kernel launches: its fused cell kernel does best
        decoder = "cell_kernels"
    return Plan("packed", "cached_exp" if cpu else "sigmoid", decoder, float32_rnn, "keys")


def prepare(model: nn.Module, device: torch.device | str, mode: Mode,
            precision: Precision = "fp32", enabled: bool = True) -> Plan:
    """Give every encoder, attention and decoder inside `model` the kernels of `plan(...)`.
    Idempotent and cheap (it sets attributes); returns the plan."""
    p = plan(device, mode, precision, enabled)
    for m in model.modules():
        if isinstance(m, Encoder):
            run = ByLength() if p.encoder == "by_length" else packed_rnn
            m.run_rnn = Float32(run) if p.float32_rnn else run
        elif isinstance(m, Attention):
            m.additive = ADDITIVE[p.additive]()
            m.general = ProjectedKeys() if p.general == "keys" else ProjectedQuery()
        elif isinstance(m, Decoder):
            m.run_rnn = _decoder_kernel(m, p)
    return p


def _decoder_kernel(decoder: Decoder, p: Plan):
    if p.decoder == "int8_cells":
        if getattr(decoder, "step_cells", None) is None:
            raise ValueError("int8 decoding needs quantize_int8(model), which adds the cells")
        return Int8Steps(decoder.step_cells)
    run = {"rnn": plain_rnn, "cell_kernels": CellKernelSteps(),
           "fused_cells": FusedSteps()}[p.decoder]
    return Float32(run) if p.float32_rnn else run


class Float32:
    """Runs an RNN kernel with autocast off and its inputs in float32 (see `plan`)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, rnn: nn.RNNBase, x, extra=None):
        with torch.autocast("cpu", enabled=False):
            if isinstance(extra, tuple):
                extra = tuple(h.float() for h in extra)
            elif isinstance(extra, torch.Tensor) and extra.is_floating_point():
                extra = extra.float()
            return self.inner(rnn, x.float(), extra)


# --- the encoder: one fused call per distinct source length ---------------------------------
class ByLength:
    """The encoder RNN over x (B, S, E) as one unpadded call per distinct source length: the
    same states and final states as over the packed sequence. On a CPU, PyTorch runs a packed
    sequence step by step with a shrinking batch, and its backward pass slices and re-joins
    the state at every step; unpacked calls go to the fused oneDNN kernel. Batches sorted by
    length have few distinct lengths; past `max_groups` the packed call is used.
    For training: oneDNN keeps a compiled kernel per (rows, length) shape, so a stream of
    inference batches would grow memory; inference keeps the packed call."""

    def __init__(self, max_groups: int = 8) -> None:
        self.max_groups = max_groups

    def __call__(self, rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor):
        distinct, which = torch.unique(lengths, return_inverse=True)
        if len(distinct) > self.max_groups:
            return packed_rnn(rnn, x, lengths)
        B, S = x.shape[:2]
        lens = distinct.tolist()
        if len(lens) == 1:
            out, hidden = rnn(x[:, : lens[0]])
            return nn.functional.pad(out, (0, 0, 0, S - lens[0])), hidden
        outs, hs, cs, order = [], [], [], []
        for g, n in enumerate(lens):
            idx = (which == g).nonzero().squeeze(1)
            out, hidden = rnn(x[idx, :n])
            outs.append(nn.functional.pad(out, (0, 0, 0, S - n)))
            if isinstance(hidden, tuple):
                hs.append(hidden[0])
                cs.append(hidden[1])
            else:
                hs.append(hidden)
            order.append(idx)
        back = torch.empty(B, dtype=torch.long)
        back[torch.cat(order)] = torch.arange(B)  # row b of the batch is row back[b]
        states = torch.cat(outs).index_select(0, back)
        h = torch.cat(hs, 1).index_select(1, back)
        return states, ((h, torch.cat(cs, 1).index_select(1, back)) if cs else h)


# --- additive attention ---------------------------------------------------------------------
# v . tanh(x) = 2 v . sigmoid(2x) - sum(v), and softmax ignores the constant: the same weights,
# and a CPU computes sigmoid faster than tanh over the (B, T, S, A) tensor. The keys are
# doubled once per batch (`keys`), the query and v at each call.

# exp(-x) of every |x| <= EXP_LIMIT, and the product of two of them, stays a normal float32
# or overflows/underflows to exactly what the sigmoid gives (0 or 1); see `CachedExpScores`.
EXP_LIMIT = 80.0


class SigmoidScores(TanhScores):
    """scores = 2v . sigmoid(2q + 2k): additive attention through the sigmoid identity."""

    def keys(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """k (B, S, A) -> (2k, no cache)."""
        return k * 2, None

    def __call__(self, q, keys, cache, v):
        """q (B, T, A), keys (B, S, A) from `keys`, v (A,) -> scores (B, T, S)."""
        return torch.matmul((q.unsqueeze(2) * 2 + keys.unsqueeze(1)).sigmoid_(), v * 2)


class SlicedScores(SigmoidScores):
    """The sigmoid form for CPU training, through `_AdditiveScores`' own backward in slices."""

    def __init__(self, slice_bytes: int | None = None) -> None:
        self.slice_bytes = slice_bytes

    def __call__(self, q, keys, cache, v):
        return _AdditiveScores.apply(q.unsqueeze(2) * 2, keys.unsqueeze(1), v * 2,
                                     self.slice_bytes or SLICE_BYTES)


class CachedExpScores(SigmoidScores):
    """The sigmoid form for searches on a CPU (no gradients): sigmoid(q + k) as
    1 / (1 + exp(-q) exp(-k)), with exp(-k) computed once per batch: one product and one
    reciprocal per element of the (B, T, S, A) tensor instead of an add and an exponential,
    in slices of at most `slice_bytes`, one reused buffer that stays in cache. Keys or a
    query beyond EXP_LIMIT fall back to `SigmoidScores`."""

    def __init__(self, slice_bytes: int | None = None) -> None:
        self.slice_bytes = slice_bytes

    def keys(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """k (B, S, A) -> (2k, exp(-2k) or None when some |2k| > EXP_LIMIT)."""
        k = k * 2
        return k, (None if float(k.abs().max()) > EXP_LIMIT else torch.exp(-k))

    def __call__(self, q, keys, cache, v):
        q = q.unsqueeze(2) * 2
        if cache is None or float(q.abs().max()) > EXP_LIMIT:
            return torch.matmul((q + keys.unsqueeze(1)).sigmoid_(), v * 2)
        eq, ek = torch.exp(-q), cache.unsqueeze(1)
        one = eq.new_ones((), dtype=torch.promote_types(eq.dtype, ek.dtype))
        return _sliced_scores(eq, ek, v * 2, self.slice_bytes or SLICE_BYTES,
                              lambda x, y, out: torch.addcmul(one, x, y, out=out).reciprocal_())


# --- general attention -----------------------------------------------------------------------
class ProjectedKeys(ProjectedQuery):
    """General attention's scores for searches: (W q) . k_j = q . (W^T k_j), with W^T k
    computed once per batch (the cache) instead of W q at every step for every beam: a
    search step's products shrink by one (Hq x He) per hypothesis. Keys of a quantized
    projection (int8: its weight is packed) keep the textbook form."""

    def keys(self, k: torch.Tensor, proj: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """k (B, S, He) -> (k, W^T k (B, S, Hq)), or (k, None) for a quantized projection."""
        w = proj.weight
        if not isinstance(w, torch.Tensor):  # a dynamically quantized Linear's packed weight
            return k, None
        return k, torch.matmul(k, w.to(k.dtype))

    def __call__(self, query, keys, cache, proj):
        if cache is None:
            return super().__call__(query, keys, cache, proj)
        return torch.bmm(query.to(cache.dtype), cache.transpose(1, 2))


ADDITIVE = {"tanh": TanhScores, "sigmoid": SigmoidScores, "sliced": SlicedScores,
            "cached_exp": CachedExpScores}

# The (B, T, S, A) tensor is built in slices over the batch of at most this many bytes, each
# reduced with v at once, while it is still in cache.
SLICE_BYTES = 4 << 20


def _slice_rows(B: int, T: int, S: int, A: int, dtype: torch.dtype, slice_bytes: int) -> int:
    """How many batch rows of a (B, T, S, A) tensor make one slice of <= slice_bytes."""
    return max(1, min(B, slice_bytes // (T * S * A * dtype.itemsize)))


def _sliced_scores(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, slice_bytes: int,
                   fill) -> torch.Tensor:
    """sum_i v_i f(a, b)_i for a (B, T, 1, A), b (B, 1, S, A) -> (B, T, S), slice by slice:
    `fill(a_rows, b_rows, out)` writes f of a slice of batch rows into `out` and returns it."""
    B, T, _, A = a.shape
    S = b.size(2)
    dtype = torch.promote_types(a.dtype, b.dtype)
    rows = _slice_rows(B, T, S, A, dtype, slice_bytes)
    buf = a.new_empty((rows, T, S, A), dtype=dtype)
    out = a.new_empty((B, T, S), dtype=dtype)
    v = v.to(dtype)
    for i in range(0, B, rows):
        n = min(rows, B - i)
        s = fill(a[i:i + n], b[i:i + n], buf[:n])
        torch.mv(s.view(-1, A), v, out=out[i:i + n].view(-1))
    return out


class _AdditiveScores(torch.autograd.Function):
    """scores (B, T, S) = sum_a v_a sigmoid(q + k)_a for q (B, T, 1, A), k (B, 1, S, A).
    Forward and a hand-written backward both work in slices over the batch, and the backward
    recomputes each slice's sigmoid instead of saving the (B, T, S, A) tensor: every pass
    over it stays in cache, and none is kept between forward and backward."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                slice_bytes: int) -> torch.Tensor:
        """q (B, T, 1, A), k (B, 1, S, A), v (A,) -> scores (B, T, S), slice by slice."""
        ctx.save_for_backward(q, k, v)
        ctx.slice_bytes = slice_bytes
        return _sliced_scores(q, k, v, slice_bytes,
                              lambda x, y, out: torch.add(x, y, out=out).sigmoid_())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        """g (B, T, S) -> gradients of q, k and v, each slice's sigmoid recomputed."""
        q, k, v = ctx.saved_tensors
        B, T, _, A = q.shape
        S = k.size(2)
        rows = _slice_rows(B, T, S, A, q.dtype, ctx.slice_bytes)
        buf, dz = q.new_empty((rows, T, S, A)), q.new_empty((rows, T, S, A))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.zeros_like(v)
        for b in range(0, B, rows):
            n = min(rows, B - b)
            s = torch.add(q[b:b + n], k[b:b + n], out=buf[:n]).sigmoid_()
            gb = g[b:b + n]
            dv.addmv_(s.view(-1, A).t(), gb.reshape(-1))
            d = torch.addcmul(s, s, s, value=-1, out=dz[:n])  # sigmoid' = s - s^2
            d.mul_(gb.unsqueeze(-1)).mul_(v)
            torch.sum(d, 2, keepdim=True, out=dq[b:b + n])
            torch.sum(d, 1, keepdim=True, out=dk[b:b + n])
        return dq, dk, dv, None


def additive_scores(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    slice_bytes: int = SLICE_BYTES) -> torch.Tensor:
    """sum_a v_a sigmoid(q + k)_a, q (B, T, 1, A), k (B, 1, S, A), v (A,) -> (B, T, S), with
    the sliced hand-written backward (what `SlicedScores` runs)."""
    return _AdditiveScores.apply(q, k, v, slice_bytes)


# --- decoder steps --------------------------------------------------------------------------
_CELLS = {nn.LSTM: torch.lstm_cell, nn.GRU: torch.gru_cell, nn.RNN: torch.rnn_tanh_cell}


def steppable(rnn: nn.Module) -> bool:
    """True for the RNNs the step kernels handle: unidirectional, biased, tanh, no projection."""
    return (type(rnn) in _CELLS and not rnn.bidirectional and rnn.bias and not rnn.proj_size
            and getattr(rnn, "nonlinearity", "tanh") == "tanh")


def step_layers(x: torch.Tensor, hidden, layers, lstm: bool, hidden_size: int,
                dropout: float = 0.0, training: bool = False):
    """One time step through a stack of cells: x (N, 1, In) -> (N, 1, H), new hidden (L, N, H)
    or an LSTM (h, c) pair. `layers` are callables cell(input, hx) -> h or (h, c)."""
    N, L = x.size(0), len(layers)
    if hidden is None:
        zeros = x.new_zeros(L, N, hidden_size)
        hidden = (zeros, zeros) if lstm else zeros
    inp, hs, cs = x[:, 0], [], []
    for i, cell in enumerate(layers):
        if i and dropout and training:
            inp = nn.functional.dropout(inp, dropout, True)
        if lstm:
            h, c = cell(inp, (hidden[0][i], hidden[1][i]))
            cs.append(c)
        else:
            h = cell(inp, hidden[i])
        hs.append(h)
        inp = h
    new = (torch.stack(hs), torch.stack(cs)) if lstm else torch.stack(hs)
    return inp.unsqueeze(1), new


class CellKernelSteps:
    """A single time step of the RNN through PyTorch's cell kernels (`torch.lstm_cell`...) on
    its own weights, so gradients flow: the same arithmetic as `rnn(x, h)` without the
    per-call setup of the fused sequence kernel, which dominates a single step. Longer
    inputs go to the RNN module."""

    def __call__(self, rnn: nn.RNNBase, x: torch.Tensor, hidden=None):
        if x.size(1) != 1 or not steppable(rnn):
            return rnn(x, hidden)
        fn = _CELLS[type(rnn)]
        w = rnn._flat_weights
        layers = [lambda inp, hx, i=i: fn(inp, hx, *w[4 * i: 4 * i + 4])
                  for i in range(rnn.num_layers)]
        return step_layers(x, hidden, layers, isinstance(rnn, nn.LSTM), rnn.hidden_size,
                           rnn.dropout, rnn.training)


class FusedSteps:
    """Search steps without gradients through fused `StepCell`s built from the RNN's live
    weights and rebuilt when any of them changes (in-place updates bump a tensor's version;
    a move or a load gives new storage), so validation during training is always current.
    The cache is derived state: never saved, and a copy of the model starts without it."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._cells: nn.ModuleList | None = None

    def cells(self, rnn: nn.RNNBase) -> nn.ModuleList:
        """The step cells of `rnn`'s current weights."""
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in rnn._flat_weights)
        if key != self._key or self._cells is None:
            self._cells, self._key = step_cells(rnn), key
        return self._cells

    def __deepcopy__(self, memo) -> FusedSteps:
        return FusedSteps()

    def __call__(self, rnn: nn.RNNBase, x: torch.Tensor, hidden=None):
        if x.size(1) != 1 or not steppable(rnn):
            return rnn(x, hidden)
        return step_layers(x, hidden, list(self.cells(rnn)), rnn.mode == "LSTM",
                           rnn.hidden_size)


class Int8Steps:
    """Search steps through the decoder's own per-layer step cells (`add_step_cells`), whose
    Linears int8 quantization has turned into int8 products."""

    def __init__(self, cells: nn.ModuleList) -> None:
        self.cells = cells

    def __call__(self, rnn: nn.RNNBase, x: torch.Tensor, hidden=None):
        if x.size(1) != 1:
            return rnn(x, hidden)
        return step_layers(x, hidden, list(self.cells), rnn.mode == "LSTM", rnn.hidden_size)


def _tanh_from_sigmoid_(s: torch.Tensor) -> torch.Tensor:
    """In place: sigmoid(2z) -> tanh(z)."""
    return s.mul_(2).sub_(1)


class StepCell(nn.Module):
    """One layer of a unidirectional RNN for one time step: x (N, In), hx -> h or (h, c),
    with its weights laid out for a step:

    - LSTM and plain RNN: one Linear over [x; h] (one product instead of two);
    - LSTM gates reordered to i, f, o, g so one sigmoid covers all four;
    - tanh computed as 2 * sigmoid(2z) - 1 with the 2 folded into the weights: on step-sized
      tensors PyTorch's CPU tanh is slower than its sigmoid, and the two agree to ~1e-7.

    Being plain `nn.Linear`s, the cells are also what int8 dynamic quantization turns into
    int8 products (`quantize_int8`)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.mode, self.hidden_size = mode, hidden_size
        if mode == "GRU":  # r and z sum both sides; n needs the hidden side apart
            self.x_side = nn.Linear(input_size, 3 * hidden_size)
            self.h_side = nn.Linear(hidden_size, 3 * hidden_size)
        else:
            gates = 4 if mode == "LSTM" else 1
            self.both = nn.Linear(input_size + hidden_size, gates * hidden_size)

    @classmethod
    def from_rnn(cls, rnn: nn.RNNBase, layer: int) -> StepCell:
        """A copy of layer `layer` of `rnn` (same device and dtype), weights re-laid out."""
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        H = rnn.hidden_size
        cell = cls(rnn.mode, w_ih.size(1), H).to(w_ih.device, w_ih.dtype)
        with torch.no_grad():
            if rnn.mode == "GRU":
                scale = torch.ones(3 * H, 1, device=w_ih.device, dtype=w_ih.dtype)
                scale[2 * H:] = 2  # n = tanh(...) -> sigmoid of twice the argument
                cell.x_side.weight.copy_(w_ih * scale)
                cell.x_side.bias.copy_(b_ih * scale[:, 0])
                cell.h_side.weight.copy_(w_hh * scale)
                cell.h_side.bias.copy_(b_hh * scale[:, 0])
                return cell.train(rnn.training)
            w, b = torch.cat([w_ih, w_hh], 1), b_ih + b_hh
            if rnn.mode == "LSTM":  # PyTorch order i, f, g, o -> i, f, o, g; g doubled
                i, f, g, o = w.chunk(4, 0)
                w = torch.cat([i, f, o, 2 * g])
                i, f, g, o = b.chunk(4)
                b = torch.cat([i, f, o, 2 * g])
            else:  # RNN_TANH
                w, b = 2 * w, 2 * b
            cell.both.weight.copy_(w)
            cell.both.bias.copy_(b)
        return cell.train(rnn.training)

    def forward(self, x: torch.Tensor, hx):
        """x (N, In), hx (N, H) or an LSTM (h, c) pair -> h (N, H) or (h, c)."""
        H = self.hidden_size
        if self.mode == "LSTM":
            h, c = hx
            s = torch.sigmoid(self.both(torch.cat([x, h], 1)))
            g = _tanh_from_sigmoid_(s[:, 3 * H:])
            c = torch.addcmul(s[:, H:2 * H] * c, s[:, :H], g)
            return s[:, 2 * H:3 * H] * _tanh_from_sigmoid_(torch.sigmoid(c * 2)), c
        if self.mode == "GRU":
            gi, gh = self.x_side(x), self.h_side(hx)
            rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
            n = _tanh_from_sigmoid_(torch.sigmoid(torch.addcmul(gi[:, 2 * H:], rz[:, :H],
                                                                gh[:, 2 * H:])))
            return torch.addcmul(n, rz[:, H:], hx - n)
        return _tanh_from_sigmoid_(torch.sigmoid(self.both(torch.cat([x, hx], 1))))


def step_cells(rnn: nn.RNNBase) -> nn.ModuleList:
    """A `StepCell` per layer of a unidirectional RNN, copies of its weights."""
    return nn.ModuleList(StepCell.from_rnn(rnn, i) for i in range(rnn.num_layers))


def add_step_cells(decoder: Decoder) -> None:
    """Give a decoder its own per-layer step cells (copies of its RNN's weights) as the
    submodule `step_cells`, for inference only: int8 quantization turns their Linears into
    int8 products."""
    decoder.step_cells = step_cells(decoder.rnn)


# --- int8 -----------------------------------------------------------------------------------
# A Linear with fewer outputs than this stays float32: for narrow outputs (a small output
# vocabulary) the int8 kernel's quantize/dequantize overhead outweighs the product.
INT8_MIN_OUTPUTS = 128


def quantize_int8(model: nn.Module, enabled: bool = True) -> nn.Module:
    """A quantized copy of `model` for CPU inference, its kernels prepared for int8: dynamic
    int8 quantization (PyTorch's own `quantize_dynamic`) of the LSTM and GRU layers and of
    every Linear with at least INT8_MIN_OUTPUTS outputs: weights stored as int8, activations
    quantized on the fly, outputs float. Decoders first get per-layer step cells, whose
    Linears become int8 products for every search step (`enabled=False`: the quantized RNN
    modules run the steps themselves)."""
    from torch.ao.quantization import quantize_dynamic

    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if enabled and isinstance(m, Decoder) and getattr(m, "step_cells", None) is None:
            add_step_cells(m)
    names = {name for name, m in model.named_modules()
             if isinstance(m, (nn.LSTM, nn.GRU))
             or (isinstance(m, nn.Linear) and m.out_features >= INT8_MIN_OUTPUTS)}
    with warnings.catch_warnings():  # torch.ao's notices that it will move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model = quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)
    prepare(model, "cpu", "infer", "int8", enabled)
    return model

