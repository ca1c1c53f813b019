"""Token cross-entropy with padding masked and optional label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tandem.data.vocab import PAD_ID


def token_nll(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
              ignore_index: int = PAD_ID) -> tuple[torch.Tensor, int]:
    """logits (..., V), target (...) -> (summed loss over the targets that are not
    `ignore_index`, their number). Token ids pad with PAD_ID; label and tag ids, where 0 is
    a real class, pad with TAG_PAD (-100)."""
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=ignore_index, label_smoothing=label_smoothing,
                           reduction="sum")
    return loss, int((target != ignore_index).sum())
