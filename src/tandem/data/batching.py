"""Batches by token count with length bucketing, so padding stays low.

An example is (src_ids, tgt_ids) with tgt_ids = [bos] + target + [eos]. A batch holds padded
tensors, batch first: src (B, S), src_len (B,), tgt_in (B, T), tgt_out (B, T).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from tandem.data.order import length_batches
from tandem.data.vocab import PAD_ID

Example = tuple[list[int], list[int]]


@dataclass
class Batch:
    """Padded id tensors of one batch: src (B, S), src_len (B,), tgt_in (B, T) = bos y1..y(T-1),
    tgt_out (B, T) = y1..eos, and the examples' indices."""
    src: torch.Tensor  # (B, S) long
    src_len: torch.Tensor  # (B,) long
    tgt_in: torch.Tensor  # (B, T) long: bos y1 .. yn
    tgt_out: torch.Tensor  # (B, T) long: y1 .. yn eos
    indices: list[int]  # positions of the examples in the dataset

    @property
    def n_tokens(self) -> int:
        """Source plus target tokens (what batch_tokens counts)."""
        return int((self.tgt_out != PAD_ID).sum())

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device) -> Batch:
        """The batch's tensors on `device` (the same batch on the CPU)."""
        if device.type == "cpu":
            return self
        move = {"device": device, "non_blocking": True}
        return Batch(self.src.to(**move), self.src_len.to(**move), self.tgt_in.to(**move),
                     self.tgt_out.to(**move), self.indices)


def pad(seqs: list[list[int]], value: int = PAD_ID) -> torch.Tensor:
    """(B, longest) long tensor, padded at the end; one tensor construction for the batch.
    Series of frames ((T, C) float32 arrays) give a (B, longest, C) float32 tensor padded
    with zero frames (the model masks by length)."""
    width = max(len(s) for s in seqs)
    if isinstance(seqs[0], np.ndarray):
        out = np.zeros((len(seqs), width, seqs[0].shape[1]), np.float32)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return torch.from_numpy(out)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate(examples: list[Example], indices: list[int]) -> Batch:
    """Examples -> a Batch, padded to the longest source and target."""
    srcs = [e[0] for e in examples]
    tgts = [e[1] for e in examples]
    return Batch(
        src=pad(srcs),
        src_len=torch.tensor([len(s) for s in srcs], dtype=torch.long),
        tgt_in=pad([t[:-1] for t in tgts]),
        tgt_out=pad([t[1:] for t in tgts]),
        indices=indices,
    )


def _cost(ex: Example) -> int:
    return max(len(ex[0]), len(ex[1]))


def token_batches(examples: list[Example], batch_tokens: int, rng: random.Random | None,
                  bucket_factor: int = 100) -> list[list[int]]:
    """Index lists whose (size x longest side) stays within `batch_tokens` (x 2 for both sides).

    With `rng`, examples are shuffled, sorted by length inside buckets of about
    `bucket_factor` batches, and the batch order is shuffled; without it, the order is by
    length (for evaluation). A single over-long example still gets a batch of its own.
    """
    return length_batches([_cost(e) for e in examples], max(1, batch_tokens // 2), rng,
                          bucket_factor)
