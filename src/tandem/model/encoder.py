"""The encoder: an RNN reads the source and returns every hidden state and the final state.

h_j = RNN(e(x_j), h_{j-1}) for each source position j; bidirectional encoders run a second RNN
right to left and join both directions' states side by side. The bridge (`bridge.py`) turns
the final state (or all states) into the semantic vector c; attention reads all states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tandem.data.vocab import PAD_ID

RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:
    """A batch-first `nn.RNN` / `nn.GRU` / `nn.LSTM` (`cell`: rnn | gru | lstm); dropout
    between layers only when there are several."""
    return RNNS[cell](input_size, hidden_size, num_layers=layers, batch_first=True,
                      dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn by uniform_ instead of bernoulli_: the same
    distribution, drawn faster on a CPU, where dropout masks are a visible share of a
    small model's training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (any shape) -> x with elements zeroed with probability p, survivors / (1 - p)."""
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        keep = torch.empty_like(x).uniform_().ge_(self.p)
        return x * keep.mul_(1.0 / (1.0 - self.p))


@dataclass
class EncoderOutput:
    """What the encoder hands to the bridge and to attention."""

    states: torch.Tensor  # (B, S, He) every position, zeros at padding
    mask: torch.Tensor  # (B, S) bool, True = real token
    final_h: torch.Tensor  # (L, B, He) last state of each layer, both directions joined
    final_c: torch.Tensor | None  # (L, B, He) LSTM cell state, else None


def packed_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor):
    """The RNN over a padded batch x (B, S, E) with `lengths` (B,) on the CPU, as a packed
    sequence, so padding never enters the recurrence -> states (B, S, H) with zeros at
    padding, final hidden (L*dirs, B, H) or an LSTM (h, c) pair at each row's last token."""
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, hidden = rnn(packed)
    states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return states, hidden


RunRNN = Callable[[nn.RNNBase, torch.Tensor, torch.Tensor], tuple]


class Encoder(nn.Module):
    """Embedding -> (bi)RNN over the source. `hidden_size` is the output size He; each
    direction of a bidirectional encoder gets half of it.

    `extra_size` > 0: `forward` takes an extra input of that size per position, joined to
    the embeddings (the tagger's character view of each word); the RNN's input grows by it.

    `run_rnn(rnn, x, lengths)` is how the RNN runs over the padded batch: `packed_rnn` here;
    `tandem.model.fast.prepare` may swap in a faster equivalent."""

    def __init__(self, cell: str, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 bidirectional: bool, dropout: float, extra_size: int = 0,
                 frames: int = 0) -> None:
        super().__init__()
        self.dirs = 2 if bidirectional else 1
        self.layers = layers
        self.output_size = hidden_size
        self.frames = frames
        # frames > 0: each input step is a vector of that many numbers, projected instead of
        # looked up (vocab_size is not used)
        self.embed = (nn.Linear(frames, emb_size) if frames
                      else nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID))
        self.dropout = Dropout(dropout)
        self.extra_size = extra_size
        self.rnn = make_rnn(cell, emb_size + extra_size, hidden_size // self.dirs, layers,
                            dropout, bidirectional)
        self.run_rnn: RunRNN = packed_rnn

    def _join(self, h: torch.Tensor) -> torch.Tensor:
        """(L*dirs, B, H) -> (L, B, dirs*H), forward and backward side by side."""
        L, B = self.layers, h.size(1)
        return h.view(L, self.dirs, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor,
                extra: torch.Tensor | None = None) -> EncoderOutput:
        """src (B, S) ids (or (B, S, frames) numbers, zero-padded), src_len (B,), extra
        (B, S, extra_size) or None -> EncoderOutput. Dropout applies to the embeddings and the
        extra input alike."""
        if self.frames:
            steps = torch.arange(src.size(1), device=src.device)
            mask = steps.unsqueeze(0) < src_len.to(src.device).unsqueeze(1)
        else:
            mask = src != PAD_ID
        x = self.embed(src)
        if extra is not None:
            x = torch.cat([x, extra.to(x.dtype)], -1)
        x = self.dropout(x)
        states, hidden = self.run_rnn(self.rnn, x, src_len.cpu())
        if isinstance(hidden, tuple):
            return EncoderOutput(states, mask, self._join(hidden[0]), self._join(hidden[1]))
        return EncoderOutput(states, mask, self._join(hidden), None)
