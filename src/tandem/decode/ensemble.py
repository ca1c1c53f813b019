"""Ensembles: several models decoded together, their log-probabilities averaged at every step.

An `Ensemble` has the same `encode` / `init_state` / `decode_step` interface as `Seq2Seq`, so
every search drives it unchanged. The models must share the vocabularies and tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tandem.model.decoder import DecoderState
from tandem.model.encoder import EncoderOutput
from tandem.model.seq2seq import Seq2Seq


@dataclass
class EnsembleState:
    """The members' decoder states, moved together by the search."""

    states: list[DecoderState]

    def expand(self, k: int) -> EnsembleState:
        """Each member's state repeated k times per sentence (the beams after step one)."""
        return EnsembleState([s.expand(k) for s in self.states])

    def reorder(self, idx: torch.Tensor) -> EnsembleState:
        """Each member's rows picked by `idx` (the surviving beams' parents)."""
        return EnsembleState([s.reorder(idx) for s in self.states])

    def keep(self, sentences: torch.Tensor) -> EnsembleState:
        """Each member's state for the given sentences only (the others are done)."""
        return EnsembleState([s.keep(sentences) for s in self.states])


class Ensemble(nn.Module):
    """Several Seq2Seq models decoded as one: the same encode / init_state / decode_step
    contract, the members' log-probabilities averaged at every step."""

    def __init__(self, models: list[Seq2Seq]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> list[EncoderOutput]:
        """Each member's encoding of `src` (B, S) with lengths `src_len` (B,)."""
        return [m.encode(src, src_len) for m in self.models]

    def init_state(self, encs: list[EncoderOutput]) -> EnsembleState:
        """Each member's initial decoder state from its encoding."""
        return EnsembleState([m.init_state(e) for m, e in zip(self.models, encs, strict=True)])

    def decode_step(self, prev: torch.Tensor, state: EnsembleState
                    ) -> tuple[torch.Tensor, EnsembleState, torch.Tensor | None]:
        """Mean of the members' log-probabilities, renormalised so it is a distribution."""
        outs = [m.decode_step(prev, s) for m, s in zip(self.models, state.states, strict=True)]
        logp = _mean_distribution([o[0] for o in outs])
        atts = [o[2] for o in outs if o[2] is not None]
        att = torch.stack(atts).mean(0) if atts else None
        return logp, EnsembleState([o[1] for o in outs]), att

    def forced_log_probs(self, src: torch.Tensor, src_len: torch.Tensor,
                         tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced (B, T, V): the members' mean, as decode_step gives it step by step."""
        return _mean_distribution([m.forced_log_probs(src, src_len, tgt_in)
                                   for m in self.models])

    def n_params(self) -> int:
        """Parameters of all members together."""
        return sum(m.n_params() for m in self.models)


def _mean_distribution(logps: list[torch.Tensor]) -> torch.Tensor:
    """Mean of log-probabilities over models, renormalised so it is a distribution."""
    logp = torch.stack(logps).mean(0)
    return logp - torch.logsumexp(logp, -1, keepdim=True)
