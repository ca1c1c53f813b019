"""The tagger (`model.structure: tag`), synchronous many-to-many: one tag per input word.

Each word is seen twice: its word embedding, and a character view, the final states of a
bidirectional RNN over its characters (Plank et al. 2016; Lample et al. 2016), so that words
unseen in training still get a representation from their spelling. The two are joined and
read by the (usually bidirectional) encoder over the sentence; a linear layer at every
position gives the tag logits, P(tag_j | x) = softmax(W h_j + b).
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.config import ModelConfig
from tandem.data.vocab import PAD_ID
from tandem.model.classifier import encoder_size
from tandem.model.encoder import Dropout, Encoder


class CharView(nn.Module):
    """A word's character view: a bidirectional Encoder over its characters, its final states
    (top layer, both directions joined) as one vector of `size` per word.

    Only real words go through the RNN (padding positions, which have no characters, get
    zeros), as one batch of words, so the encoder's kernels (`tandem.model.fast`) apply."""

    def __init__(self, cell: str, n_chars: int, emb_size: int, size: int, dropout: float
                 ) -> None:
        super().__init__()
        self.size = size
        self.encoder = Encoder(cell, n_chars, emb_size, size, 1, True, dropout)

    def forward(self, chars: torch.Tensor, char_len: torch.Tensor | None = None
                ) -> torch.Tensor:
        """chars (B, S, W) char ids padded with PAD_ID, char_len (B, S) characters per word
        (0 at padding positions; counted from `chars` when None) -> (B, S, size)."""
        B, S, W = chars.shape
        if char_len is None:
            char_len = (chars != PAD_ID).sum(-1)
        flat_len = char_len.reshape(-1)
        real = (flat_len > 0).nonzero().squeeze(1)
        out = chars.new_zeros((B * S, self.size), dtype=torch.float32)
        if real.numel():
            words = chars.reshape(B * S, W).index_select(0, real)
            lens = flat_len.index_select(0, real)
            if not torch.jit.is_tracing():  # a traced graph would keep this width for good
                words = words[:, : int(lens.max())]
            summary = self.encoder(words, lens).final_h[-1]  # (N, size)
            out = out.to(summary.dtype).index_copy(0, real, summary)
        return out.view(B, S, self.size)


class Tagger(nn.Module):
    """[word embedding; CharView] -> Encoder over the sentence -> Dropout -> Linear at every
    position -> logits (B, S, n_tags).

    With model.char_emb_size or model.char_hidden_size 0 there is no character view (the
    words alone). Logits at padding positions are computed but mean nothing (the loss and
    the metrics mask them)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_chars: int, n_tags: int,
                 frames: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        # frames > 0: each position is a frame of that many numbers (no words, no characters)
        char_size = cfg.char_hidden_size if cfg.char_emb_size and n_chars and not frames else 0
        self.chars = (CharView(cfg.cell, n_chars, cfg.char_emb_size, char_size, cfg.dropout)
                      if char_size else None)
        enc_size = encoder_size(cfg)
        self.encoder = Encoder(cfg.cell, vocab_size, cfg.emb_size, enc_size, cfg.enc_layers,
                               cfg.bidirectional, cfg.dropout, extra_size=char_size,
                               frames=frames)
        self.dropout = Dropout(cfg.dropout)
        self.out = nn.Linear(enc_size, n_tags)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor,
                chars: torch.Tensor | None = None, char_len: torch.Tensor | None = None
                ) -> torch.Tensor:
        """words (B, S) ids padded with PAD_ID (or frames (B, S, C), zero-padded), lengths
        (B,), chars (B, S, W) char ids of each word padded with PAD_ID (needed when the
        tagger has a character view), char_len (B, S) or None -> logits (B, S, n_tags)."""
        extra = None
        if self.chars is not None:
            if chars is None:
                raise ValueError("this tagger has a character view: pass chars (B, S, W)")
            extra = self.chars(chars, char_len)
        states = self.encoder(words, lengths, extra).states
        return self.out(self.dropout(states))
