"""Batch plans: which items go together, by length, without touching tensors (the PyTorch path
and the lean runtime batch alike)."""

from __future__ import annotations

import random


def length_batches(lengths: list[int], budget: int, rng: random.Random | None,
                   bucket_factor: int = 100) -> list[list[int]]:
    """Index lists (into `lengths`) whose (size x longest length) stays within `budget`: the
    batching of token_batches for items of one length each (a classifier's text, a tagger's
    sentence, a generator's target).

    With `rng`, items are shuffled, sorted by length inside buckets of about `bucket_factor`
    batches, and the batch order is shuffled (the same rng state gives the same batches);
    without it, the order is by length (for evaluation). A single over-long item still gets a
    batch of its own.
    """
    order = list(range(len(lengths)))
    budget = max(1, budget)
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        chunks = [order]
    else:
        rng.shuffle(order)
        avg = max(1, sum(lengths[i] for i in order[:1000]) // max(1, len(order[:1000])))
        chunk = max(1, bucket_factor * budget // avg)
        chunks = [sorted(order[i:i + chunk], key=lambda j: lengths[j])
                  for i in range(0, len(order), chunk)]
    batches: list[list[int]] = []
    for ch in chunks:
        cur: list[int] = []
        longest = 0
        for i in ch:
            c = lengths[i]
            if cur and max(longest, c) * (len(cur) + 1) > budget:
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, c)
        if cur:
            batches.append(cur)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def size_batches(n: int, lengths: list[int], batch_size: int) -> list[list[int]]:
    """Fixed-size batches of similar length, for decoding (order restored by the caller)."""
    order = sorted(range(n), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
