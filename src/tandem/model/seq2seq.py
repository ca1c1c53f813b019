"""Seq2Seq: encoder -> bridge (semantic vector c) -> decoder. One interface for every search:
`encode`, `init_state`, `decode_step`; `forward` is training with teacher forcing."""

from __future__ import annotations

import torch
from torch import nn

from tandem.config import ModelConfig
from tandem.data.vocab import BOS_ID, PAD_ID
from tandem.model.bridge import Bridge
from tandem.model.decoder import Decoder, DecoderState
from tandem.model.encoder import Encoder, EncoderOutput

NEVER_OUTPUT = [PAD_ID, BOS_ID]


def output_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the vocabulary (last dim) with pad and bos, never outputs, excluded.
    Writes -inf into `logits` in place (the caller's fresh output), saving a copy per step."""
    logits = logits.float()
    logits[..., NEVER_OUTPUT] = float("-inf")
    return torch.log_softmax(logits, -1)


class Seq2Seq(nn.Module):
    """The RNN encoder-decoder: Encoder -> Bridge (semantic vector c) -> Decoder (+ Attention)
    -> softmax over the target vocabulary, P(y_t | y_<t, x).

    The interface every search drives: `encode(src, src_len)`, `init_state(enc)`,
    `decode_step(prev, state)`; `forward` is training with teacher forcing (or scheduled
    sampling). Built from `ModelConfig` with the textbook kernels; `tandem.model.fast.prepare`
    chooses faster ones for a device, mode and precision."""

    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int,
                 frames: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        enc_size = cfg.enc_hidden_size if cfg.enc_hidden_size is not None else cfg.hidden_size
        # frames > 0: the source is a series of frames of that many numbers, not token ids
        self.encoder = Encoder(cfg.cell, src_vocab_size, cfg.emb_size, enc_size, cfg.enc_layers,
                               cfg.bidirectional, cfg.dropout, frames=frames)
        self.bridge = Bridge(cfg.bridge, cfg.cell, enc_size, cfg.hidden_size, cfg.enc_layers,
                             cfg.dec_layers)
        self.decoder = Decoder(cfg.cell, tgt_vocab_size, cfg.emb_size, cfg.hidden_size,
                               cfg.dec_layers, cfg.dropout, cfg.conditioning, cfg.attention,
                               cfg.input_feeding, enc_size, cfg.tie_embeddings)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> EncoderOutput:
        """src (B, S) ids (or (B, S, frames) numbers), src_len (B,) -> EncoderOutput."""
        return self.encoder(src, src_len)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """The bridge: the encoder's output -> the decoder's first state (initial hidden from
        c, c itself for every-step conditioning, and for attention the encoder states with
        their keys projected once for the whole search)."""
        hidden, c = self.bridge(enc)
        att = self.decoder.attention
        keys, cache = att.project_keys(enc.states) if att is not None else (None, None)
        return DecoderState(hidden=hidden, feed=None, c=c,
                            values=enc.states if att is not None else None, keys=keys,
                            mask=enc.mask, key_cache=cache)

    def decode_step(self, prev: torch.Tensor, state: DecoderState
                    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """prev (B,) token ids -> log-probs (B, V), new state, attention (B, S) or None.

        The distribution excludes pad and bos, which can never be outputs.
        """
        logits, state, att = self.decoder(prev.unsqueeze(1), state)
        return (output_log_probs(logits.squeeze(1)), state,
                None if att is None else att.squeeze(1))

    def forced_log_probs(self, src: torch.Tensor, src_len: torch.Tensor,
                         tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probs (B, T, V) of the next token after each of tgt_in's: the
        distributions decode_step gives, for a whole target in one pass."""
        return output_log_probs(self(src, src_len, tgt_in))

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor,
                teacher_forcing: float = 1.0) -> torch.Tensor:
        """Training: src (B, S), tgt_in (B, T) = bos y1..y(T-1) -> logits (B, T, V).

        teacher_forcing < 1 is scheduled sampling: at each step each sentence gets the gold
        previous token with that probability, else the model's own greedy prediction.
        """
        state = self.init_state(self.encode(src, src_len))
        if teacher_forcing >= 1.0 and self.decoder.parallel:
            return self.decoder(tgt_in, state)[0]
        outputs = []
        prev = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            logits, state, _ = self.decoder(prev.unsqueeze(1), state)
            outputs.append(logits)
            if t + 1 < tgt_in.size(1):
                gold = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    own = logits.squeeze(1).detach().clone()
                    own[:, NEVER_OUTPUT] = float("-inf")
                    own = own.argmax(-1)
                    use_gold = torch.rand(gold.shape, device=gold.device) < teacher_forcing
                    prev = torch.where(use_gold, gold, own)
                else:
                    prev = gold
        return torch.cat(outputs, 1)

    def n_params(self) -> int:
        """The number of parameters."""
        return sum(p.numel() for p in self.parameters())
