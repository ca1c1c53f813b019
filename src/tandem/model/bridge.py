"""The bridge: from the encoder's output to the semantic vector c and the decoder's first state.

- last:   c is the encoder's last hidden state (both directions joined when bidirectional)
- linear: a learned tanh transform of the last state (any sizes, any layer counts)
- pooled: a tanh transform of ALL encoder states (mean over real positions)
- max:    a tanh transform of ALL encoder states (maximum over real positions, per feature;
          the BiLSTM-max sentence encoder of Conneau et al. 2017)
- zero:   no initial state (the decoder relies on attention)

c is the top layer of the decoder's initial hidden state, shape (B, Hd).
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.model.encoder import EncoderOutput

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class Bridge(nn.Module):
    """The semantic vector c and the decoder's initial state from the encoder's output, one of
    `last | linear | pooled | max | zero` (the module docstring). Sizes: encoder output He
    (`enc_size`), decoder hidden Hd (`dec_size`); layer counts may differ (a decoder layer
    without its own encoder layer takes the top one)."""

    def __init__(self, kind: str, cell: str, enc_size: int, dec_size: int, enc_layers: int,
                 dec_layers: int) -> None:
        super().__init__()
        self.kind, self.lstm = kind, cell == "lstm"
        self.dec_size, self.dec_layers, self.enc_layers = dec_size, dec_layers, enc_layers
        n_states = 2 if self.lstm else 1
        if kind == "linear":
            self.proj = nn.ModuleList(nn.Linear(enc_size, dec_size)
                                      for _ in range(dec_layers * n_states))
        elif kind in ("pooled", "max"):
            self.proj = nn.ModuleList(nn.Linear(enc_size, dec_size * dec_layers)
                                      for _ in range(n_states))

    def _layer(self, i: int) -> int:
        """The encoder layer that feeds decoder layer i: the same one, or the top one."""
        return i if self.enc_layers == self.dec_layers else self.enc_layers - 1

    def forward(self, enc: EncoderOutput) -> tuple[Hidden | None, torch.Tensor | None]:
        """-> (decoder initial state, (L, B, Hd) or an (h, c) pair or None; c (B, Hd) or None)."""
        B = enc.states.size(0)
        if self.kind == "zero":
            return None, None
        finals = [enc.final_h] + ([enc.final_c] if self.lstm else [])
        if self.kind == "last":
            states = finals
        elif self.kind == "linear":
            n = self.dec_layers
            states = [torch.stack([torch.tanh(self.proj[k * n + i](f[self._layer(i)]))
                                   for i in range(n)])
                      for k, f in enumerate(finals)]
        else:  # pooled or max: over the real positions of all encoder states
            if self.kind == "max":
                real = enc.mask.unsqueeze(-1)
                summary = enc.states.masked_fill(~real, float("-inf")).amax(1)  # (B, He)
            else:
                m = enc.mask.unsqueeze(-1).to(enc.states.dtype)
                summary = (enc.states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, He)
            states = [torch.tanh(p(summary)).view(B, self.dec_layers, self.dec_size).transpose(0, 1)
                      .contiguous() for p in self.proj]
        hidden: Hidden = (states[0], states[1]) if self.lstm else states[0]
        return hidden, states[0][-1]
