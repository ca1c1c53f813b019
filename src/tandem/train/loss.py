"""Token cross-entropy with padding masked and optional label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tandem.data.vocab import PAD_ID


def token_nll(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
              ) -> tuple[torch.Tensor, int]:
    """logits (B, T, V), target (B, T) -> (summed loss over real tokens, number of tokens)."""
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=PAD_ID, label_smoothing=label_smoothing,
                           reduction="sum")
    return loss, int((target != PAD_ID).sum())
