"""The decoder, in three ways of using the semantic vector c (`model.conditioning`):

- init:       c only initialises the RNN state (Sutskever et al. 2014); o_t = h_t
- every_step: c joins the input at every step and the output layer (Cho et al. 2014);
              o_t = tanh(W [h_t; c; e_t])
- attention:  a fresh context a_t from all encoder states at every step (Luong et al. 2015);
              o_t = tanh(W [h_t; a_t]); with input feeding, o_{t-1} joins the next input

Then P(y_t | y_<t, x) = softmax(W_out o_t). Without input feeding the RNN runs over the whole
target in one call and attention is computed for all steps at once (teacher forcing); `step`
runs one position for search and scheduled sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from tandem.data.vocab import PAD_ID
from tandem.model.attention import Attention
from tandem.model.bridge import Hidden
from tandem.model.encoder import make_rnn


def _select_hidden(h: Hidden | None, idx: torch.Tensor) -> Hidden | None:
    if h is None:
        return None
    if isinstance(h, tuple):
        return (h[0].index_select(1, idx), h[1].index_select(1, idx))
    return h.index_select(1, idx)


@dataclass
class DecoderState:
    """What the decoder carries between steps. Beam search only calls `select`/`reorder`."""

    hidden: Hidden | None  # (L, B, Hd) or an LSTM (h, c) pair; None = zeros
    feed: torch.Tensor | None  # (B, O) previous attentional vector (input feeding)
    c: torch.Tensor | None  # (B, Hd) semantic vector (every_step)
    values: torch.Tensor | None  # (B, S, He) encoder states (attention)
    keys: torch.Tensor | None  # (B, S, *) projected keys (attention)
    mask: torch.Tensor | None  # (B, S) bool

    def reorder(self, idx: torch.Tensor) -> DecoderState:
        """Reorder the per-hypothesis parts only (hypotheses of the same sentence)."""
        feed = None if self.feed is None else self.feed.index_select(0, idx)
        return replace(self, hidden=_select_hidden(self.hidden, idx), feed=feed)

    def select(self, idx: torch.Tensor) -> DecoderState:
        """Select rows of everything, encoder side included (expand or shrink the batch)."""
        def sel(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, idx)
        return replace(self.reorder(idx), c=sel(self.c), values=sel(self.values),
                       keys=sel(self.keys), mask=sel(self.mask))


class Decoder(nn.Module):
    def __init__(self, cell: str, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 dropout: float, conditioning: str, attention: str, input_feeding: bool,
                 enc_size: int, tie_embeddings: bool) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.input_feeding = input_feeding and conditioning == "attention"
        self.hidden_size, self.layers, self.lstm = hidden_size, layers, cell == "lstm"
        self.out_size = emb_size if tie_embeddings else hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        rnn_in = emb_size
        if conditioning == "every_step":
            rnn_in += hidden_size
        if self.input_feeding:
            rnn_in += self.out_size
        self.rnn = make_rnn(cell, rnn_in, hidden_size, layers, dropout)
        self.attention = None
        if conditioning == "attention":
            self.attention = Attention(attention, hidden_size, enc_size)
            self.pre_output = nn.Linear(hidden_size + enc_size, self.out_size)
        elif conditioning == "every_step":
            self.pre_output = nn.Linear(2 * hidden_size + emb_size, self.out_size)
        elif self.out_size != hidden_size:
            self.pre_output = nn.Linear(hidden_size, self.out_size)
        else:
            self.pre_output = None
        self.generator = nn.Linear(self.out_size, vocab_size)
        if tie_embeddings:
            self.generator.weight = self.embed.weight

    @property
    def parallel(self) -> bool:
        """True when teacher forcing can run all target positions in one call."""
        return not self.input_feeding

    def _outputs(self, h: torch.Tensor, emb: torch.Tensor, state: DecoderState
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h (B, T, Hd), emb (B, T, E) -> o (B, T, O), attention (B, T, S) or None."""
        att = None
        if self.attention is not None:
            ctx, att = self.attention(h, state.keys, state.values, state.mask)
            o = torch.tanh(self.pre_output(torch.cat([h, ctx], -1)))
        elif self.conditioning == "every_step":
            c = state.c.unsqueeze(1).expand(-1, h.size(1), -1)
            o = torch.tanh(self.pre_output(torch.cat([h, c, emb], -1)))
        elif self.pre_output is not None:
            o = self.pre_output(h)
        else:
            o = h
        return o, att

    def _rnn_input(self, emb: torch.Tensor, state: DecoderState) -> torch.Tensor:
        parts = [emb]
        if self.conditioning == "every_step":
            parts.append(state.c.unsqueeze(1).expand(-1, emb.size(1), -1))
        if self.input_feeding:
            feed = state.feed
            if feed is None:
                feed = emb.new_zeros(emb.size(0), self.out_size)
            parts.append(feed.unsqueeze(1))
        return torch.cat(parts, -1) if len(parts) > 1 else emb

    def forward(self, tokens: torch.Tensor, state: DecoderState
                ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """tokens (B, T) -> logits (B, T, V), new state, attention (B, T, S) or None.

        With input feeding T must be 1 (the caller loops); otherwise any T.
        """
        emb = self.dropout(self.embed(tokens))
        h, hidden = self.rnn(self._rnn_input(emb, state), state.hidden)
        o, att = self._outputs(h, emb, state)
        o = self.dropout(o)
        new = replace(state, hidden=hidden, feed=o[:, -1] if self.input_feeding else None)
        return self.generator(o), new, att
