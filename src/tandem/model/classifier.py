"""The classifier (`model.structure: classify`), many-to-one: a sequence in, one label out.

Encoder -> the bridge's semantic vector c (`model.bridge`: last, linear, pooled or max) -> dropout
-> a linear layer -> logits over the labels; P(label | x) = softmax(W c + b). One-to-one is
the same model over a one-step input.
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.config import ModelConfig
from tandem.model.bridge import Bridge
from tandem.model.encoder import Dropout, Encoder


def encoder_size(cfg: ModelConfig) -> int:
    """The encoder's output size He: model.enc_hidden_size, or model.hidden_size when null."""
    return cfg.enc_hidden_size if cfg.enc_hidden_size is not None else cfg.hidden_size


class Classifier(nn.Module):
    """Encoder -> Bridge (c) -> Dropout -> Linear -> logits (B, n_labels).

    c is the top layer of what the bridge makes: with `last` the encoder's final state (size
    He), with `linear`, `pooled` or `max` a tanh transform to model.hidden_size. The bridge is built
    for the hidden state h alone: an LSTM's cell state has nowhere to go in a classifier, so
    no transform of it is made (and none would be trained)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_labels: int, frames: int = 0
                 ) -> None:
        super().__init__()
        if cfg.bridge not in ("last", "linear", "pooled", "max"):
            raise ValueError(f"a classifier's c comes from a last, linear, pooled or max "
                             f"bridge, not {cfg.bridge!r}")
        self.cfg = cfg
        enc_size = encoder_size(cfg)
        self.encoder = Encoder(cfg.cell, vocab_size, cfg.emb_size, enc_size, cfg.enc_layers,
                               cfg.bidirectional, cfg.dropout, frames=frames)
        # cell "gru": a bridge of h only (see the class docstring); one output layer
        self.bridge = Bridge(cfg.bridge, "gru", enc_size, cfg.hidden_size, cfg.enc_layers, 1)
        self.c_size = enc_size if cfg.bridge == "last" else cfg.hidden_size
        self.dropout = Dropout(cfg.dropout)
        self.out = nn.Linear(self.c_size, n_labels)

    def semantic_vector(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        """src (B, S) ids padded with PAD_ID (or (B, S, frames) numbers), src_len (B,) -> c
        (B, c_size)."""
        enc = self.encoder(src, src_len)
        _, c = self.bridge(enc)
        return c

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        """src (B, S) ids padded with PAD_ID, src_len (B,) -> logits (B, n_labels)."""
        return self.out(self.dropout(self.semantic_vector(src, src_len)))
