"""The conditional generator (`model.structure: generate`), one-to-many: one input in, a
sequence out, P(y_t | y_<t, condition).

The condition is a label (an embedding) or a feature vector the user supplies (a linear
layer), then tanh: u. The bridge turns u into the decoder's initial state, one tanh transform
per layer (and per LSTM state), as it does for an encoder's final state; its top layer is the
semantic vector c, which with `model.conditioning: every_step` also joins every step's input
and output layer. The decoder is seq2seq's, and so are the searches.
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.config import ModelConfig
from tandem.model.bridge import Bridge
from tandem.model.decoder import Decoder, DecoderState
from tandem.model.encoder import Dropout, EncoderOutput
from tandem.model.seq2seq import output_log_probs


class ConditionalGenerator(nn.Module):
    """Condition -> u (B, H) -> Bridge -> the Decoder's initial state (and c) -> softmax over
    the vocabulary at every step.

    `n_conditions`: the number of labels, or with `features=True` the size F of the feature
    vectors. The search interface is `Seq2Seq`'s: `encode(cond, cond_len)`,
    `init_state(u)`, `decode_step(prev, state)`; `forward(cond, tgt_in)` is training with
    teacher forcing."""

    def __init__(self, cfg: ModelConfig, n_conditions: int, vocab_size: int,
                 features: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = features
        H = cfg.hidden_size
        self.condition = nn.Linear(n_conditions, H) if features else nn.Embedding(n_conditions, H)
        self.dropout = Dropout(cfg.dropout)
        self.bridge = Bridge("linear", cfg.cell, H, H, 1, cfg.dec_layers)
        self.decoder = Decoder(cfg.cell, vocab_size, cfg.emb_size, H, cfg.dec_layers,
                               cfg.dropout, cfg.conditioning, "general", False, H,
                               cfg.tie_embeddings)

    def encode(self, cond: torch.Tensor, cond_len: torch.Tensor | None = None) -> torch.Tensor:
        """cond (B, 1) label ids, or (B, F) feature vectors; cond_len (B,) is not read (the
        searches pass it; ones) -> u (B, H)."""
        if self.features:
            x = self.condition(cond.to(self.condition.weight.dtype))
        else:
            x = self.condition(cond.reshape(-1))
        return self.dropout(torch.tanh(x))

    def init_state(self, u: torch.Tensor) -> DecoderState:
        """u (B, H) -> the decoder's first state: initial hidden per layer from the bridge and,
        for every-step conditioning, c."""
        u1 = u.unsqueeze(0)  # u as a one-layer encoder's final state
        enc = EncoderOutput(u.unsqueeze(1), torch.ones(u.size(0), 1, dtype=torch.bool,
                                                        device=u.device),
                            u1, u1 if self.decoder.lstm else None)
        hidden, c = self.bridge(enc)
        return DecoderState(hidden=hidden, feed=None, c=c, values=None, keys=None, mask=None)

    def decode_step(self, prev: torch.Tensor, state: DecoderState
                    ) -> tuple[torch.Tensor, DecoderState, None]:
        """prev (N,) token ids -> log-probs (N, V) (pad and bos excluded), new state, None (no
        attention)."""
        logits, state, _ = self.decoder(prev.unsqueeze(1), state)
        return output_log_probs(logits.squeeze(1)), state, None

    def forward(self, cond: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Training: cond as in `encode`, tgt_in (B, T) = bos y1 .. y(T-1) -> logits
        (B, T, V)."""
        return self.decoder(tgt_in, self.init_state(self.encode(cond)))[0]

    def forced_log_probs(self, cond: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probs (B, T, V): the distributions decode_step gives, in one
        pass."""
        return output_log_probs(self(cond, tgt_in))
