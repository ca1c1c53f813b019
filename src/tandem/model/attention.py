"""Attention: a fresh context vector at every decoder step from all encoder states.

For a query q (the decoder state) and keys k_j (the encoder states), a score e_j says how well
position j matches; a softmax over the real (unpadded) positions turns the scores into weights
a_j, and the context is sum_j a_j k_j. The scores:

- additive (Bahdanau et al. 2015): e_j = v . tanh(W_q q + W_k k_j)
- general (Luong et al. 2015):     e_j = q . W k_j
- dot (Luong et al. 2015):         e_j = q . k_j

Keys are projected once per batch (`project_keys`), not once per decoder step.
"""

from __future__ import annotations

import torch
from torch import nn


class TanhScores:
    """Additive attention's scores as written: v . tanh(q + k). The textbook kernel; faster
    equivalents with the same interface live in `tandem.model.fast`."""

    def keys(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected keys W_k k (B, S, A) -> (what `__call__` takes as keys, a per-batch
        cache or None), computed once per batch."""
        return k, None

    def __call__(self, q: torch.Tensor, keys: torch.Tensor, cache: torch.Tensor | None,
                 v: torch.Tensor) -> torch.Tensor:
        """q = W_q query (B, T, A), keys (B, S, A) and cache from `keys`, v (A,)
        -> scores (B, T, S)."""
        return torch.matmul(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1)), v)


class ProjectedQuery:
    """General attention's scores as written: (W q) . k_j, the query projected at every
    step. The textbook kernel; `tandem.model.fast.ProjectedKeys` projects the keys instead."""

    def keys(self, k: torch.Tensor, proj: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder states (B, S, He) -> (what `__call__` takes as keys, a per-batch cache or
        None), computed once per batch."""
        return k, None

    def __call__(self, query: torch.Tensor, keys: torch.Tensor, cache: torch.Tensor | None,
                 proj: nn.Linear) -> torch.Tensor:
        """query (B, T, Hq), keys (B, S, He) and cache from `keys`, proj = W (Hq -> He)
        -> scores (B, T, S)."""
        return torch.bmm(proj(query), keys.transpose(1, 2))


class Attention(nn.Module):
    """Masked attention of one kind: additive, general or dot (see the module docstring).
    `query_size` Hq is the decoder's hidden size, `key_size` He the encoder's output size.
    Additive attention's scores go through the kernel `self.additive` (`TanhScores`), general
    attention's through `self.general` (`ProjectedQuery`)."""

    def __init__(self, kind: str, query_size: int, key_size: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)
            self.query_proj = nn.Linear(query_size, query_size, bias=False)
            self.v = nn.Linear(query_size, 1, bias=False)
        elif kind == "general":
            self.query_proj = nn.Linear(query_size, key_size, bias=False)
        elif kind != "dot":
            raise ValueError(f"unknown attention {kind!r}")
        self.additive = TanhScores()
        self.general = ProjectedQuery()

    def project_keys(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder states (B, S, He) -> (the keys `forward` compares queries with, a
        kernel's per-batch cache or None); once per batch. Additive: W_k k, as the kernel
        wants it; general and dot: the states themselves (and whatever the general kernel
        caches)."""
        if self.kind == "additive":
            return self.additive.keys(self.key_proj(keys))
        if self.kind == "general":
            return self.general.keys(keys, self.query_proj)
        return keys, None

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor, group: int = 1, cache: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B*g, T, Hq), keys and cache from `project_keys`, values (B, S, He),
        mask (B, S) -> context (B*g, T, He), weights (B*g, T, S) summing to 1 over real
        positions.

        `group` g consecutive query rows (beams of one sentence) share one encoder row: they
        are folded into the time axis, so every beam uses the same keys without copies.
        """
        if group > 1:
            N, T = query.shape[:2]
            ctx, w = self.forward(query.reshape(N // group, group * T, -1), keys, values,
                                  mask, cache=cache)
            return ctx.reshape(N, T, -1), w.reshape(N, T, -1)
        if self.kind == "additive":
            scores = self.additive(self.query_proj(query), keys, cache, self.v.weight.view(-1))
        elif self.kind == "general":
            scores = self.general(query, keys, cache, self.query_proj)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, values), weights
