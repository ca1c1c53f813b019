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
from tandem.model.encoder import Dropout, make_rnn


def plain_rnn(rnn: nn.RNNBase, x: torch.Tensor, hidden: Hidden | None = None):
    """The decoder RNN as a module call: x (N, T, In), hidden -> outputs (N, T, Hd), new
    hidden. The textbook kernel of `Decoder.run_rnn`; `tandem.model.fast` has faster
    single-step equivalents."""
    return rnn(x, hidden)


@dataclass
class DecoderState:
    """What the decoder carries between steps. Searches only call `expand`, `reorder`, `keep`.

    Rows are hypotheses; `group` consecutive rows (the beams of one sentence) share one row of
    the encoder side (`values`, `keys`, `mask`), which is never copied per beam.
    """

    hidden: Hidden | None  # (L, N, Hd) or an LSTM (h, c) pair; None = zeros
    feed: torch.Tensor | None  # (N, O) previous attentional vector (input feeding)
    c: torch.Tensor | None  # (N, Hd) semantic vector (every_step)
    values: torch.Tensor | None  # (B, S, He) encoder states (attention)
    keys: torch.Tensor | None  # (B, S, *) projected keys (attention)
    mask: torch.Tensor | None  # (B, S) bool
    group: int = 1  # N = B * group
    key_cache: torch.Tensor | None = None  # (B, S, *) attention kernel's per-batch cache

    def _rows(self, fn) -> DecoderState:
        hidden = self.hidden
        if isinstance(hidden, tuple):
            hidden = (fn(hidden[0], 1), fn(hidden[1], 1))
        elif hidden is not None:
            hidden = fn(hidden, 1)
        feed = None if self.feed is None else fn(self.feed, 0)
        c = None if self.c is None else fn(self.c, 0)
        return replace(self, hidden=hidden, feed=feed, c=c)

    def expand(self, k: int) -> DecoderState:
        """k hypotheses per sentence (for beam search): rows b*k .. b*k+k-1 are sentence b."""
        return replace(self._rows(lambda t, d: t.repeat_interleave(k, dim=d)), group=k)

    def reorder(self, idx: torch.Tensor) -> DecoderState:
        """Reorder hypotheses; idx (N,) must keep each row within its sentence's group."""
        return self._rows(lambda t, d: t.index_select(d, idx))

    def keep(self, sentences: torch.Tensor) -> DecoderState:
        """Keep only these sentences (B',) with all their hypotheses: shrinks the batch."""
        rows = sentences
        if self.group > 1:
            k = self.group
            rows = (sentences.unsqueeze(1) * k + torch.arange(k, device=rows.device)).view(-1)
        state = self._rows(lambda t, d: t.index_select(d, rows))

        def sel(t: torch.Tensor | None) -> torch.Tensor | None:
            """The kept sentences' rows of an encoder-side tensor (B, ...)."""
            return None if t is None else t.index_select(0, sentences)
        return replace(state, values=sel(self.values), keys=sel(self.keys), mask=sel(self.mask),
                       key_cache=sel(self.key_cache))


class Decoder(nn.Module):
    """The decoder RNN with its output layer, conditioned on c one of three ways (the module
    docstring): embedding of the previous token (+ c, + the previous attentional vector) ->
    RNN -> o_t -> logits W_out o_t over the target vocabulary.

    `run_rnn(rnn, x, hidden)` is how the RNN runs (`plain_rnn`); `tandem.model.fast.prepare`
    may swap in a faster equivalent for single steps."""

    def __init__(self, cell: str, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 dropout: float, conditioning: str, attention: str, input_feeding: bool,
                 enc_size: int, tie_embeddings: bool) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.input_feeding = input_feeding and conditioning == "attention"
        self.hidden_size, self.layers, self.lstm = hidden_size, layers, cell == "lstm"
        self.out_size = emb_size if tie_embeddings else hidden_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = Dropout(dropout)
        rnn_in = emb_size
        if conditioning == "every_step":
            rnn_in += hidden_size
        if self.input_feeding:
            rnn_in += self.out_size
        self.rnn = make_rnn(cell, rnn_in, hidden_size, layers, dropout)
        self.run_rnn = plain_rnn
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
            ctx, att = self.attention(h, state.keys, state.values, state.mask, state.group,
                                      state.key_cache)
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
        """emb (B, T, E) -> the RNN's input: emb [; c] [; previous attentional vector]."""
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
        x = self._rnn_input(emb, state)
        h, hidden = self.run_rnn(self.rnn, x, state.hidden)
        o, att = self._outputs(h, emb, state)
        o = self.dropout(o)
        new = replace(state, hidden=hidden, feed=o[:, -1] if self.input_feeding else None)
        return self.generator(o), new, att
