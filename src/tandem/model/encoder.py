"""The encoder: an RNN over the source that returns every state and the final state."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tandem.data.vocab import PAD_ID

RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:
    return RNNS[cell](input_size, hidden_size, num_layers=layers, batch_first=True,
                      dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)


@dataclass
class EncoderOutput:
    states: torch.Tensor  # (B, S, He) every position, zeros at padding
    mask: torch.Tensor  # (B, S) bool, True = real token
    final_h: torch.Tensor  # (L, B, He) last state of each layer, both directions joined
    final_c: torch.Tensor | None  # (L, B, He) LSTM cell state, else None


class Encoder(nn.Module):
    """Embedding -> (bi)RNN. `hidden_size` is the output size; each direction gets half."""

    def __init__(self, cell: str, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.dirs = 2 if bidirectional else 1
        self.layers = layers
        self.output_size = hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(cell, emb_size, hidden_size // self.dirs, layers, dropout,
                            bidirectional)

    def _join(self, h: torch.Tensor) -> torch.Tensor:
        """(L*dirs, B, H) -> (L, B, dirs*H), forward and backward side by side."""
        L, B = self.layers, h.size(1)
        return h.view(L, self.dirs, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> EncoderOutput:
        """src (B, S) ids, src_len (B,) -> EncoderOutput."""
        mask = src != PAD_ID
        x = self.dropout(self.embed(src))
        packed = pack_padded_sequence(x, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if isinstance(hidden, tuple):
            return EncoderOutput(states, mask, self._join(hidden[0]), self._join(hidden[1]))
        return EncoderOutput(states, mask, self._join(hidden), None)
