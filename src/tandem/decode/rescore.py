"""Scoring given outputs, and reranking n-best lists with other models.

`force_score` gives log P(y | x) of given target sequences under a model or an ensemble,
computed in one teacher-forced pass (the same per-step distributions the searches use).
`rerank` reorders a model's n-best candidates by the average of its scores and those of
rescoring models, e.g. right-to-left models over a left-to-right model's n-best list
(Sennrich et al. 2016), which cannot be ensembled step by step.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from tandem.data.batching import pad
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID
from tandem.decode.scoring import Scorer


@torch.no_grad()
def force_score(model, src: torch.Tensor, src_len: torch.Tensor,
                targets: list[list[int]]) -> torch.Tensor:
    """Sum over tokens and eos of log P(token | previous tokens, source), one per sentence.
    `targets` are output ids without bos/eos; `model` is a Seq2Seq or an Ensemble."""
    dev = src.device
    tgt_in = pad([[BOS_ID] + t for t in targets]).to(dev)
    gold = pad([t + [EOS_ID] for t in targets]).to(dev)
    logp = model.forced_log_probs(src, src_len, tgt_in)
    picked = logp.gather(2, gold.unsqueeze(2)).squeeze(2)
    return picked.masked_fill(gold == PAD_ID, 0.0).sum(1)


def rerank(cands: list, extra: list[tuple[float, ...]], scorer: Scorer) -> list:
    """One input's candidates (Results) as new Results, ordered by the mean of the searching
    model's score and the rescoring models' scores (extra[j]: candidate j's), length-normalised
    by the search's `scorer` (tokens + eos)."""
    out = []
    for r, more in zip(cands, extra, strict=True):
        s = (r.score + sum(more)) / (1 + len(more))
        out.append(replace(r, score=s, norm_score=scorer.normalise(s, len(r.tokens) + 1)))
    return sorted(out, key=lambda r: -r.norm_score)
