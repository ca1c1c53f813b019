"""Vocabulary: token strings <-> integer ids, with pad/unk/bos/eos at fixed ids 0..3."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocab:
    """Tokens <-> ids; ids 0-3 are the specials pad, unk, bos, eos."""
    def __init__(self, tokens: Iterable[str]) -> None:
        self.itos: list[str] = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences: Iterable[list[str]], min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        """Most frequent first (ties alphabetical, so the result is deterministic)."""
        counts = Counter(t for seq in sequences for t in seq)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq),
                        key=lambda t: (-counts[t], t))
        return cls(ranked[:max_size] if max_size is not None else ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Tokens -> ids (unknown tokens -> unk), optionally with bos/eos around them."""
        ids = [self.stoi.get(t, UNK_ID) for t in tokens]
        return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids to tokens, stopping at eos and dropping pad/bos."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def unknown(self, tokens: list[str]) -> list[str]:
        """The tokens of `tokens` this vocabulary does not hold."""
        return [t for t in tokens if t not in self.stoi]
