"""Attention over encoder states, padding masked: additive (Bahdanau), dot and general (Luong).

Keys are projected once per batch (`project_keys`), not once per decoder step.
"""

from __future__ import annotations

import torch
from torch import nn

# exp(-x) of every |x| <= EXP_LIMIT, and the product of two of them, stays a normal float32
# or overflows/underflows to exactly what the sigmoid gives (0 or 1); see `exp_keys`.
EXP_LIMIT = 80.0

# Additive attention builds its (B, T, S, A) tensor in slices over the batch of at most this
# many bytes, and reduces each slice at once, while it is still in cache: in searches
# (`_cached_exp_scores`) and in CPU training, forward and backward (`_AdditiveScores`).
SLICE_BYTES = 4 << 20


def _slice_rows(B: int, T: int, S: int, A: int, dtype: torch.dtype) -> int:
    """How many batch rows of a (B, T, S, A) tensor make one slice of <= SLICE_BYTES."""
    return max(1, min(B, SLICE_BYTES // (T * S * A * dtype.itemsize)))


def _sliced_scores(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, fill) -> torch.Tensor:
    """sum_i v_i f(a, b)_i for a (B, T, 1, A), b (B, 1, S, A) -> (B, T, S), slice by slice:
    `fill(a_rows, b_rows, out)` writes f of a slice of batch rows into `out` and returns it."""
    B, T, _, A = a.shape
    S = b.size(2)
    dtype = torch.promote_types(a.dtype, b.dtype)
    rows = _slice_rows(B, T, S, A, dtype)
    buf = a.new_empty((rows, T, S, A), dtype=dtype)
    out = a.new_empty((B, T, S), dtype=dtype)
    v = v.to(dtype)
    for i in range(0, B, rows):
        n = min(rows, B - i)
        s = fill(a[i:i + n], b[i:i + n], buf[:n])
        torch.mv(s.view(-1, A), v, out=out[i:i + n].view(-1))
    return out


def _cached_exp_scores(eq: torch.Tensor, ek: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sum_a v_a / (1 + eq_a ek_a), i.e. v . sigmoid(q + k) from eq = exp(-q) (B, T, 1, A)
    and ek = exp(-k) (B, 1, S, A) -> (B, T, S). Built whole, the (B, T, S, A) tensor is a
    fresh allocation every step, written and read three times; in slices of SLICE_BYTES one
    reused buffer stays in cache."""
    one = eq.new_ones((), dtype=torch.promote_types(eq.dtype, ek.dtype))
    return _sliced_scores(eq, ek, v, lambda x, y, out: torch.addcmul(one, x, y, out=out)
                          .reciprocal_())


class _AdditiveScores(torch.autograd.Function):
    """scores (B, T, S) = sum_a v_a sigmoid(q + k)_a for q (B, T, 1, A), k (B, 1, S, A), for
    CPU training. Forward and a hand-written backward both work in slices over the batch
    (SLICE_BYTES), and the backward recomputes each slice's sigmoid instead of saving the
    (B, T, S, A) tensor: every pass over it stays in cache, and none is kept between forward
    and backward. A/Bs: `python benchmarks/encoder_ab.py --change additive|slices --variant
    additive` (against autograd's graph of add, sigmoid and Linear | the whole tensor)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        return _sliced_scores(q, k, v, lambda x, y, out: torch.add(x, y, out=out).sigmoid_())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        q, k, v = ctx.saved_tensors
        B, T, _, A = q.shape
        S = k.size(2)
        rows = _slice_rows(B, T, S, A, q.dtype)
        buf, dz = q.new_empty((rows, T, S, A)), q.new_empty((rows, T, S, A))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.zeros_like(v)
        for b in range(0, B, rows):
            n = min(rows, B - b)
            s = torch.add(q[b:b + n], k[b:b + n], out=buf[:n]).sigmoid_()
            gb = g[b:b + n]
            dv.addmv_(s.view(-1, A).t(), gb.reshape(-1))
            d = torch.addcmul(s, s, s, value=-1, out=dz[:n])  # sigmoid' = s - s^2
            d.mul_(gb.unsqueeze(-1)).mul_(v)
            torch.sum(d, 2, keepdim=True, out=dq[b:b + n])
            torch.sum(d, 1, keepdim=True, out=dk[b:b + n])
        return dq, dk, dv


class Attention(nn.Module):
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

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (B, S, He) -> what `forward` compares queries with (additive: 2 W_k k, see
        `forward`)."""
        return self.key_proj(keys) * 2 if self.kind == "additive" else keys

    def exp_keys(self, proj_keys: torch.Tensor) -> torch.Tensor | None:
        """For searches on a CPU (no gradients), additive attention: exp(-proj_keys), once
        per batch, so each step computes sigmoid(q + k) as 1 / (1 + exp(-q) exp(-k)): one
        product and one reciprocal per element of the (B, T, S, A) tensor instead of an add
        and an exponential. None (the plain path) otherwise: other kinds, gradients on, a
        GPU, or keys beyond EXP_LIMIT."""
        if (self.kind != "additive" or torch.is_grad_enabled()
                or proj_keys.device.type != "cpu"
                or float(proj_keys.abs().max()) > EXP_LIMIT):
            return None
        return torch.exp(-proj_keys)

    def forward(self, query: torch.Tensor, proj_keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor, group: int = 1, exp_keys: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B*g, T, Hq), proj_keys (B, S, *), values (B, S, He), mask (B, S)
        -> context (B*g, T, He), weights (B*g, T, S) summing to 1 over real positions.
        `exp_keys`: `exp_keys(proj_keys)`, used when there are no gradients to keep.

        `group` g consecutive query rows (beams of one sentence) share one encoder row: they
        are folded into the time axis, so every beam uses the same keys without copies.
        """
        if group > 1:
            N, T = query.shape[:2]
            ctx, w = self.forward(query.reshape(N // group, group * T, -1), proj_keys, values,
                                  mask, exp_keys=exp_keys)
            return ctx.reshape(N, T, -1), w.reshape(N, T, -1)
        if self.kind == "additive":
            # v . tanh(x) = 2 v . sigmoid(2x) - sum(v), and softmax ignores the constant: the
            # same weights, but a CPU computes sigmoid over this (B, T, S, A) tensor ~3.5x
            # faster than tanh. The keys come doubled from project_keys.
            q = self.query_proj(query).unsqueeze(2) * 2  # (B, T, 1, A)
            k = proj_keys.unsqueeze(1)  # (B, 1, S, A)
            v = self.v.weight.view(-1) * 2
            if (torch.is_grad_enabled() and q.device.type == "cpu"
                    and not torch.is_autocast_enabled("cpu")):  # CPU training
                scores = _AdditiveScores.apply(q, k, v)
            elif (exp_keys is not None and not torch.is_grad_enabled()
                    and float(q.abs().max()) <= EXP_LIMIT):
                # sigmoid(q + k) = 1 / (1 + exp(-q) exp(-k)), exp(-k) once per batch
                scores = _cached_exp_scores(torch.exp(-q), exp_keys.unsqueeze(1), v)
            else:
                scores = torch.matmul((q + k).sigmoid_(), v)  # (B, T, S)
        else:
            q = self.query_proj(query) if self.kind == "general" else query
            scores = torch.bmm(q, proj_keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, values), weights
