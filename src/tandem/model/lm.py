"""The language model (`model.structure: lm`), synchronous many-to-many: at every step the
distribution of the next token, P(x_{t+1} | x_<=t) = softmax(W_out h_t).

It is the decoder alone (model.dec_layers of a unidirectional RNN, no encoder, no c): trained
over long contiguous text with truncated backpropagation through time (`forward` takes and
returns the hidden state, which the caller detaches between batches), and searched with the
same greedy, beam and sampling searches as seq2seq through the same interface: `encode`
consumes a prompt, `init_state` gives the search its state, `decode_step` one token at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from tandem.config import ModelConfig
from tandem.data.vocab import PAD_ID
from tandem.model.bridge import Hidden
from tandem.model.decoder import Decoder, DecoderState
from tandem.model.seq2seq import output_log_probs


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """The hidden state cut from the graph (TBPTT: gradients stop at the batch boundary)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return (hidden[0].detach(), hidden[1].detach())
    return hidden.detach()


@dataclass
class Prompt:
    """A consumed prompt, what `LanguageModel.encode` hands to `init_state`."""

    hidden: Hidden | None  # (L, B, H) or an (h, c) pair after all but each prompt's last token
    pending: torch.Tensor  # (B,) each prompt's last token, PAD_ID for an empty prompt


@dataclass
class LMState(DecoderState):
    """The decoder state of a language model's search, plus `pending` (N,): the prompt's last
    token, which the first `decode_step` reads instead of the search's bos (PAD_ID: no
    prompt, read the bos); None once consumed. expand / reorder / keep carry it row by row."""

    pending: torch.Tensor | None = None

    def _rows(self, fn) -> LMState:
        """DecoderState's per-row selection, `pending` included."""
        state = super()._rows(fn)
        return replace(state, pending=None if self.pending is None else fn(self.pending, 0))


class LanguageModel(nn.Module):
    """The decoder RNN without an encoder: embedding -> unidirectional RNN -> (projection to
    model.emb_size when embeddings are tied) -> logits over the vocabulary.

    Training: `forward(tokens, hidden)`; searches: `encode(prompt, prompt_len)`,
    `init_state(prompt)`, `decode_step(prev, state)`, as `Seq2Seq`. The decoder is a
    `Decoder` with init conditioning and no initial state, so `tandem.model.fast.prepare`
    gives it its kernels."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.decoder = Decoder(cfg.cell, vocab_size, cfg.emb_size, cfg.hidden_size,
                               cfg.dec_layers, cfg.dropout, "init", "general", False,
                               cfg.hidden_size, cfg.tie_embeddings)

    @staticmethod
    def _state(hidden: Hidden | None) -> LMState:
        """A state of `hidden` alone (no encoder side, no c)."""
        return LMState(hidden=hidden, feed=None, c=None, values=None, keys=None, mask=None)

    def forward(self, tokens: torch.Tensor, hidden: Hidden | None = None
                ) -> tuple[torch.Tensor, Hidden]:
        """tokens (B, T) -> logits (B, T, V) of the token after each, and the hidden state
        after the last ((L, B, H) or an LSTM (h, c) pair); `hidden` None = zeros. Padding
        after a row's end does not change its earlier outputs (the RNN is causal)."""
        logits, state, _ = self.decoder(tokens, self._state(hidden))
        return logits, state.hidden

    def forced_log_probs(self, tokens: torch.Tensor, hidden: Hidden | None = None
                         ) -> torch.Tensor:
        """Teacher-forced log-probs (B, T, V) of the token after each of `tokens`: the
        distributions decode_step gives, in one pass (pad and bos excluded, as there)."""
        return output_log_probs(self(tokens, hidden)[0])

    def encode(self, prompt: torch.Tensor, prompt_len: torch.Tensor) -> Prompt:
        """prompt (B, P) ids padded with PAD_ID, prompt_len (B,) (0 = no prompt; P may be 0)
        -> Prompt: the RNN has read all but each prompt's last token, which waits in
        `pending`, so the search's first step (fed bos) gives the distribution of the token
        after the prompt. Prompts of one length run as one batch through the decoder's RNN
        kernel."""
        B, dev = prompt.size(0), prompt.device
        lens = prompt_len.to(dev)
        if prompt.size(1) == 0:
            return Prompt(None, torch.full((B,), PAD_ID, dtype=torch.long, device=dev))
        read = (lens - 1).clamp(min=0)  # tokens the RNN reads now; the last one waits
        pending = prompt.gather(1, read.unsqueeze(1)).squeeze(1)
        pending = torch.where(lens > 0, pending, torch.full_like(pending, PAD_ID))
        d = self.decoder
        H, L = d.hidden_size, d.layers
        dtype = d.embed.weight.dtype
        h = torch.zeros(L, B, H, device=dev, dtype=dtype)  # zeros = no token read yet
        cell = torch.zeros(L, B, H, device=dev, dtype=dtype) if d.lstm else None
        for n in sorted(set(read.tolist()) - {0}):
            rows = (read == n).nonzero().squeeze(1)
            hidden = d(prompt.index_select(0, rows)[:, :n], self._state(None))[1].hidden
            if d.lstm:
                h = h.index_copy(1, rows, hidden[0].to(dtype))
                cell = cell.index_copy(1, rows, hidden[1].to(dtype))
            else:
                h = h.index_copy(1, rows, hidden.to(dtype))
        return Prompt((h, cell) if d.lstm else h, pending)

    def init_state(self, prompt: Prompt) -> LMState:
        """The search's first state: the consumed prompt's hidden state and pending token."""
        return replace(self._state(prompt.hidden), pending=prompt.pending)

    def decode_step(self, prev: torch.Tensor, state: LMState
                    ) -> tuple[torch.Tensor, LMState, None]:
        """prev (N,) token ids -> log-probs (N, V) of the next token (pad and bos excluded),
        new state, None (no attention). A pending prompt token replaces `prev` once."""
        if state.pending is not None:
            prev = torch.where(state.pending != PAD_ID, state.pending, prev)
            state = replace(state, pending=None)
        logits, state, _ = self.decoder(prev.unsqueeze(1), state)
        return output_log_probs(logits.squeeze(1)), state, None
