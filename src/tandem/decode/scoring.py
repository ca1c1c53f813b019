"""How the searches rank and restrict hypotheses, in one object built once from the decoding
options and handed to every search (compare OpenNMT-py's GNMTGlobalScorer and its decode
strategy's shared n-gram blocking):

- length normalisation: a hypothesis is ranked by score / length**alpha (`length_norm: power`)
  or score / ((5 + length) / 6)**alpha (`gnmt`, Wu et al. 2016); alpha = 0 keeps the raw score;
- GNMT's coverage penalty: beta * sum over source tokens j of log(min(attention j received, 1)),
  added to the ranking score of a finished hypothesis;
- bans: <unk> (unless allowed) and any token that would repeat an n-gram already output get
  log-probability -inf before the search chooses.

The fields are named as the options they come from (decode.length_penalty, ...). The scorer
works on torch tensors and numpy arrays alike (the PyTorch searches and the lean runtime's),
and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tandem.config import DecodeConfig
from tandem.data.vocab import UNK_ID


@dataclass(frozen=True)
class Scorer:
    """Length normalisation, coverage penalty and bans of one decoding run. The defaults
    change nothing: raw scores, no coverage term, nothing banned."""

    length_penalty: float = 0.0
    length_norm: str = "power"
    coverage_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    allow_unk: bool = True

    @classmethod
    def from_options(cls, opts: DecodeConfig) -> Scorer:
        """The scorer the options ask for."""
        return cls(opts.length_penalty, opts.length_norm, opts.coverage_penalty,
                   opts.no_repeat_ngram_size, opts.allow_unk)

    # --- ranking ------------------------------------------------------------------------

    def normalise(self, score: float, length: int) -> float:
        """`score` (a sum of log-probabilities over `length` tokens, eos included) divided
        by the length term."""
        alpha = self.length_penalty
        if not alpha:
            return score
        if self.length_norm == "gnmt":
            return score / (((5 + length) / 6) ** alpha)
        return score / (max(length, 1) ** alpha)

    @property
    def uses_coverage(self) -> bool:
        """Whether the search must add up the attention each source token receives."""
        return bool(self.coverage_penalty)

    def coverage(self, att: Any) -> float:
        """GNMT's coverage penalty of attention `att` (steps, S), a tensor or an array: beta *
        sum over source tokens of log(min(total attention received, 1)); 0 when nothing was
        under-attended."""
        total = att.sum(0)
        if isinstance(total, np.ndarray):
            return self.coverage_penalty * float(np.log(np.clip(total, 1e-6, 1.0)).sum())
        return self.coverage_penalty * float(total.clamp(min=1e-6, max=1.0).log().sum())

    # --- bans ---------------------------------------------------------------------------

    @property
    def bans(self) -> bool:
        """Whether `ban` does anything (the searches skip it otherwise)."""
        return self.no_repeat_ngram_size > 0 or not self.allow_unk

    def ban(self, logp: Any, history: list[list[int]]) -> None:
        """In place on `logp` (rows, V): -inf for <unk> (unless allowed) and, per row, for
        every token that would repeat an n-gram already in that row's `history` (its output
        ids so far, one list per row)."""
        if not self.allow_unk:
            logp[:, UNK_ID] = float("-inf")
        n = self.no_repeat_ngram_size
        if n <= 0 or not history or len(history[0]) < n - 1:
            return
        for row, h in enumerate(history):
            if n == 1:
                banned = set(h)
            else:
                tail = h[len(h) - n + 1:]
                banned = {h[i + n - 1] for i in range(len(h) - n + 1) if h[i:i + n - 1] == tail}
            if banned:
                logp[row, list(banned)] = float("-inf")
