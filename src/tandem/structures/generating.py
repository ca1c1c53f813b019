"""What the structures that write text share on the PyTorch path (a language model continuing
a prompt, a generator writing from a label): the search (seq2seq's searches through `encode` /
`init_state` / `decode_step`) over the conditions `tandem.verbs.GeneratingVerbs` makes; the
decoding options, `write` and /v1/generate are there, shared with the lean runtime."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tandem.config import DecodeConfig
from tandem.decode import search
from tandem.structures.common import FieldsModel
from tandem.verbs import GeneratingVerbs


class Generating(GeneratingVerbs, FieldsModel):
    """A loaded model that writes text: `GeneratingVerbs` over the PyTorch searches."""

    @torch.no_grad()
    def _search(self, cond: np.ndarray, cond_len: np.ndarray, opts: DecodeConfig,
                seed: int | None) -> list[search.Hyp]:
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None \
            else None
        hyps = search.run(self.model, torch.from_numpy(cond).to(self.device),
                          torch.from_numpy(cond_len).to(self.device), opts, generator=gen)
        return [h[0] for h in hyps]

    def info(self) -> dict[str, Any]:
        """The common model info and the decoding options requests start from."""
        return {**super().info(), "decode_defaults": dataclasses.asdict(self.generation_defaults)}
