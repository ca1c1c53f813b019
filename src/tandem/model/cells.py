"""Single decoding steps for inference: one fused matrix product per layer.

A search calls the decoder one time step at a time. PyTorch's cell kernels (`torch.lstm_cell`)
do two matrix products per layer (input and hidden side) and then a chain of elementwise
calls; on a CPU that costs about 1.2-1.3x what it has to. A `StepCell` holds one layer's
weights laid out for a step:

- LSTM and plain RNN: one Linear over [x; h] (one product instead of two);
- LSTM gates reordered to i, f, o, g so one sigmoid covers all four (below);
- tanh computed as 2 * sigmoid(2z) - 1, with the 2 folded into the weights: on step-sized
  tensors PyTorch's CPU tanh is slower than its sigmoid, and the two agree to ~1e-7.

Being plain `nn.Linear`s, the cells are also what int8 dynamic quantization turns into
int8 products (`tandem.cpu.quantize_int8`). For float inference on a CPU, `StepCache`
builds them from the live RNN weights and rebuilds them whenever those change (a training
step, a loaded checkpoint, a move to another device), so validation during training is
always current. On a GPU, where a step is bound by kernel launches, PyTorch's cell kernels
(one fused elementwise kernel) measured faster, so they stay.
"""

from __future__ import annotations

import torch
from torch import nn


def _tanh_from_sigmoid_(s: torch.Tensor) -> torch.Tensor:
    """In place: sigmoid(2z) -> tanh(z)."""
    return s.mul_(2).sub_(1)


class StepCell(nn.Module):
    """One layer of a unidirectional RNN for one time step: x (N, In), hx -> h or (h, c)."""

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


class StepCache:
    """Float step cells built from an RNN's live weights, rebuilt when any of them changes
    (in-place updates bump a tensor's version; a move or a load gives new storage).
    Deliberately not an nn.Module: it is derived state, never saved in a checkpoint."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._cells: nn.ModuleList | None = None

    def cells(self, rnn: nn.RNNBase) -> nn.ModuleList:
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in rnn._flat_weights)
        if key != self._key or self._cells is None:
            self._cells, self._key = step_cells(rnn), key
        return self._cells

    def __deepcopy__(self, memo) -> StepCache:
        return StepCache()  # a copy of a model starts with an empty cache

