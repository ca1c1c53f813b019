"""The encoder: an RNN over the source that returns every state and the final state."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tandem.cpu import native_bf16
from tandem.data.vocab import PAD_ID
from tandem.model.cells import StepCache

RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:
    return RNNS[cell](input_size, hidden_size, num_layers=layers, batch_first=True,
                      dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn by uniform_ instead of bernoulli_: the same
    distribution, about twice as fast on a CPU (bernoulli_ took ~15 ms per million elements
    here, uniform_ ~7), where dropout masks were ~7% of a G2P training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        keep = torch.empty_like(x).uniform_().ge_(self.p)
        return x * keep.mul_(1.0 / (1.0 - self.p))


_CELLS = {nn.LSTM: torch.lstm_cell, nn.GRU: torch.gru_cell, nn.RNN: torch.rnn_tanh_cell}


def _steppable(rnn: nn.Module) -> bool:
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


def _one_step(rnn: nn.RNNBase, x: torch.Tensor, hidden):
    """One time step of a unidirectional multi-layer RNN with its own weights, through the
    cell kernels: the same arithmetic as `rnn(x, h)` without the per-call setup of the fused
    sequence kernel, which dominates a single step."""
    fn = _CELLS[type(rnn)]
    w = rnn._flat_weights
    layers = [lambda inp, hx, i=i: fn(inp, hx, *w[4 * i: 4 * i + 4])
              for i in range(rnn.num_layers)]
    return step_layers(x, hidden, layers, isinstance(rnn, nn.LSTM), rnn.hidden_size,
                       rnn.dropout, rnn.training)


def run_rnn(rnn: nn.Module, x, hidden=None, cells: nn.ModuleList | None = None,
            cache: StepCache | None = None):
    """rnn(x, hidden), with CPU refinements:
    - a single time step of a plain unidirectional RNN goes through step cells: `cells` when
      given (int8 inference), else, on a CPU without autograd, `cache`'s fused float cells,
      else the cell kernels (training with input feeding needs gradients through the
      weights; on a GPU the kernels' fused elementwise step launches fewer kernels, and
      the fused cells measured slower there);
    - under bfloat16 autocast on a CPU without native bf16, oneDNN has no bf16 recurrent
      kernel, so the recurrence runs in float32 and only the matrix products around it
      (attention, output layer) run in bf16."""
    if cells is not None and x.size(1) == 1:  # per-layer step cells (int8 inference)
        return step_layers(x, hidden, list(cells), rnn.mode == "LSTM", rnn.hidden_size)
    step = isinstance(x, torch.Tensor) and x.size(1) == 1 and _steppable(rnn)
    if torch.is_autocast_enabled("cpu") and not native_bf16():
        with torch.autocast("cpu", enabled=False):
            if isinstance(hidden, tuple):
                hidden = tuple(h.float() for h in hidden)
            elif hidden is not None:
                hidden = hidden.float()
            x = x.float()
            return _one_step(rnn, x, hidden) if step else rnn(x, hidden)
    if (step and cache is not None and x.device.type == "cpu" and not torch.is_grad_enabled()
            and not rnn.training):
        return step_layers(x, hidden, list(cache.cells(rnn)), rnn.mode == "LSTM",
                           rnn.hidden_size)
    return _one_step(rnn, x, hidden) if step else rnn(x, hidden)


@dataclass
class EncoderOutput:
    states: torch.Tensor  # (B, S, He) every position, zeros at padding
    mask: torch.Tensor  # (B, S) bool, True = real token
    final_h: torch.Tensor  # (L, B, He) last state of each layer, both directions joined
    final_c: torch.Tensor | None  # (L, B, He) LSTM cell state, else None


# In CPU training, a batch with at most this many distinct source lengths runs one RNN call
# per length instead of one call over a packed sequence: see `Encoder._by_length`.
MAX_LENGTH_GROUPS = 8


class Encoder(nn.Module):
    """Embedding -> (bi)RNN. `hidden_size` is the output size; each direction gets half."""

    def __init__(self, cell: str, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.dirs = 2 if bidirectional else 1
        self.layers = layers
        self.output_size = hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = Dropout(dropout)
        self.rnn = make_rnn(cell, emb_size, hidden_size // self.dirs, layers, dropout,
                            bidirectional)

    def _join(self, h: torch.Tensor) -> torch.Tensor:
        """(L*dirs, B, H) -> (L, B, dirs*H), forward and backward side by side."""
        L, B = self.layers, h.size(1)
        return h.view(L, self.dirs, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1)

    def _by_length(self, x: torch.Tensor, lengths: list[int], which: torch.Tensor):
        """The RNN over x (B, S, E) on a CPU as one unpadded call per distinct length (`which[b]`
        indexes `lengths`): the same states and final states as over the packed sequence.
        On a CPU, PyTorch runs a packed sequence step by step with a shrinking batch, and
        its backward pass slices and re-joins the state at every step; unpacked calls go to
        the fused oneDNN kernel. Batches sorted by length have few distinct lengths.
        Training only: oneDNN keeps a compiled kernel per (rows, length) shape, so without
        gradients (translating a stream of batches) the packed call keeps memory flat."""
        B, S = x.shape[:2]
        if len(lengths) == 1:
            out, hidden = run_rnn(self.rnn, x[:, : lengths[0]])
            return nn.functional.pad(out, (0, 0, 0, S - lengths[0])), hidden
        outs, hs, cs, order = [], [], [], []
        for g, n in enumerate(lengths):
            idx = (which == g).nonzero().squeeze(1)
            out, hidden = run_rnn(self.rnn, x[idx, :n])
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

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> EncoderOutput:
        """src (B, S) ids, src_len (B,) -> EncoderOutput."""
        mask = src != PAD_ID
        x = self.dropout(self.embed(src))
        lens = src_len.cpu()
        groups = None  # (distinct lengths, each row's group) when the encoder runs by length
        if x.device.type == "cpu" and torch.is_grad_enabled():  # CPU training
            lengths, which = torch.unique(lens, return_inverse=True)
            if len(lengths) <= MAX_LENGTH_GROUPS:
                groups = (lengths.tolist(), which)
        if groups is not None:
            states, hidden = self._by_length(x, *groups)
        else:
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            out, hidden = run_rnn(self.rnn, packed)
            states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if isinstance(hidden, tuple):
            return EncoderOutput(states, mask, self._join(hidden[0]), self._join(hidden[1]))
        return EncoderOutput(states, mask, self._join(hidden), None)
