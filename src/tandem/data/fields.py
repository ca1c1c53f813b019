"""What turns text (or series of frames) into what a model reads, and its outputs back: the
seq2seq `Fields` (source and target tokenizers and vocabularies) and the other structures'
`StructFields` (a vocabulary, labels or tags, a tagger's characters). Both are saved in
checkpoints and exports as plain data (`state()`), and need neither torch nor a model, so the
PyTorch path and the lean runtime (`tandem.runtime`) read inputs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tandem.data import tokenizers
from tandem.data.frames import normalise
from tandem.data.tokenizers import Tokenizer
from tandem.data.vocab import BOS_ID, EOS_ID, Vocab
from tandem.errors import DataError


@dataclass
class Fields:
    """Everything needed to turn text into ids and back, for both sides."""

    src_tok: Tokenizer
    tgt_tok: Tokenizer
    src_vocab: Vocab
    tgt_vocab: Vocab
    reverse_source: bool = False  # the model reads source tokens last to first
    reverse_target: bool = False  # the model writes target tokens last to first
    # data.src_kind: frames: a source is a series of frames of this many numbers (src_tok and
    # src_vocab are then unused), normalised by the training frames' mean and std when kept
    frame_width: int = 0
    frame_mean: list[float] = field(default_factory=list)
    frame_std: list[float] = field(default_factory=list)

    def src_ids(self, tokens: list[str]) -> list[int]:
        """Source tokens (in reading order) -> the ids the model reads."""
        ids = self.src_vocab.encode(tokens)
        return ids[::-1] if self.reverse_source else ids

    def src_frames(self, series) -> np.ndarray:
        """A source series of frames (T, C) -> the normalised frames the model reads."""
        arr = normalise(series, self.frame_width, self.frame_mean, self.frame_std)
        return arr[::-1].copy() if self.reverse_source else arr

    def encode_src(self, text) -> list[int] | np.ndarray:
        """Source text (a series of frames, for a model over frames) -> what the model
        reads."""
        if self.frame_width:
            return self.src_frames(text)
        return self.src_ids(self.src_tok.tokenize(text))

    def tgt_ids(self, tokens: list[str]) -> list[int]:
        """Target tokens (in reading order) -> the ids the model writes, without bos/eos."""
        return self.tgt_vocab.encode(tokens[::-1] if self.reverse_target else tokens)

    def encode_pair(self, src: str, tgt: str) -> tuple[Any, list[int]]:
        """(source, target) text -> (source ids, target ids with bos and eos)."""
        return (self.encode_src(src),
                [BOS_ID] + self.tgt_ids(self.tgt_tok.tokenize(tgt)) + [EOS_ID])

    def tgt_tokens(self, ids: list[int]) -> list[str]:
        """Ids the model wrote -> target tokens in reading order."""
        toks = self.tgt_vocab.decode(ids)
        return toks[::-1] if self.reverse_target else toks

    def state(self) -> dict:
        """What a checkpoint stores to rebuild the fields (plain types only)."""
        return {"src_tok": self.src_tok.state(), "tgt_tok": self.tgt_tok.state(),
                "src_vocab": list(self.src_vocab.itos), "tgt_vocab": list(self.tgt_vocab.itos),
                "reverse_source": self.reverse_source, "reverse_target": self.reverse_target,
                "frame_width": self.frame_width, "frame_mean": list(self.frame_mean),
                "frame_std": list(self.frame_std)}

    @classmethod
    def from_state(cls, state: dict) -> Fields:
        """The fields a checkpoint's `state()` describes."""
        return cls(tokenizers.from_state(state["src_tok"]), tokenizers.from_state(state["tgt_tok"]),
                   Vocab(state["src_vocab"][4:]), Vocab(state["tgt_vocab"][4:]),
                   bool(state.get("reverse_source", False)),
                   bool(state.get("reverse_target", False)),
                   int(state.get("frame_width", 0)),
                   [float(x) for x in state.get("frame_mean") or ()],
                   [float(x) for x in state.get("frame_std") or ()])



@dataclass
class StructFields:
    """What turns a structure's text into ids and back, saved in checkpoints (`state()`).

    `vocab`: tokens (classify, lm, generate) or words (tag), ids 0-3 the specials of Vocab.
    `tok`: the tokenizer of the text (None for tag, whose words are given). `labels`: class
    labels (classify, generate from labels) or tags (tag), id = position, no specials.
    `chars`: the tagger's character vocabulary (the characters of training words).
    `lowercase_words`: tag words are lowercased for `vocab` (data.lowercase; their characters
    keep their case). `seen_words`: the tag training words as written (for accuracy on words
    unseen in training). `num_features`: F of generate's feature vectors (0: labels)."""

    structure: str
    vocab: Vocab
    tok: Tokenizer | None = None
    labels: list[str] = field(default_factory=list)
    chars: Vocab | None = None
    lowercase_words: bool = False
    seen_words: frozenset[str] = frozenset()
    num_features: int = 0
    frame_mean: list[float] = field(default_factory=list)
    frame_std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.label_ids: dict[str, int] = {lab: i for i, lab in enumerate(self.labels)}

    def tokens(self, text: str) -> list[str]:
        """Text -> tokens (the tokenizer's; a language model's fields keep line breaks)."""
        if self.tok is None:
            raise DataError(f"{self.structure} fields have no tokenizer (tag reads words)")
        return self.tok.tokenize(text)

    def encode_text(self, text: str) -> list[int]:
        """Text -> token ids (no bos / eos): a classify input, an lm text or prompt, a generate
        target before bos/eos."""
        return self.vocab.encode(self.tokens(text))

    def encode_target(self, text: str) -> list[int]:
        """A generate target: [bos] + token ids + [eos]."""
        return [BOS_ID] + self.encode_text(text) + [EOS_ID]

    def encode_words(self, words: list[str]) -> tuple[list[int], list[list[int]]]:
        """Tag input: (word ids (S,), char ids of each word (S lists))."""
        if self.chars is None:
            raise DataError(f"{self.structure} fields have no character vocabulary")
        keys = [w.lower() for w in words] if self.lowercase_words else words
        return self.vocab.encode(keys), [self.chars.encode(list(w)) for w in words]

    def label_id(self, label: str) -> int:
        """A label's (or tag's) id; one never seen in training is a DataError naming it."""
        if label not in self.label_ids:
            raise DataError(f"label {label!r} is not one of the {len(self.labels)} the model "
                            f"knows: {', '.join(self.labels[:20])}"
                            f"{' ...' if len(self.labels) > 20 else ''}")
        return self.label_ids[label]

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text (stopping at eos, dropping pad / bos)."""
        if self.tok is None:
            return " ".join(self.vocab.decode(ids))
        return self.tok.detokenize(self.vocab.decode(ids))

    def unseen(self, words: list[str]) -> list[bool]:
        """Tag: for each word, whether it never appeared (as written) in the training data."""
        return [w not in self.seen_words for w in words]

    def sizes(self) -> dict[str, int]:
        """The sizes a model is built with: vocab (tokens or words, specials included),
        labels (classes or tags), chars (tag; 0 otherwise), features (generate from
        feature vectors; 0 otherwise)."""
        return {"vocab": len(self.vocab), "labels": len(self.labels),
                "chars": len(self.chars) if self.chars is not None else 0,
                "features": self.num_features}

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild the fields (plain types only)."""
        return {"structure": self.structure,
                "tok": self.tok.state() if self.tok is not None else None,
                "vocab": list(self.vocab.itos), "labels": list(self.labels),
                "chars": list(self.chars.itos) if self.chars is not None else None,
                "lowercase_words": self.lowercase_words,
                "seen_words": sorted(self.seen_words), "num_features": self.num_features,
                "frame_mean": list(self.frame_mean), "frame_std": list(self.frame_std)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StructFields:
        """The fields a checkpoint's `state()` describes."""
        return cls(str(state["structure"]), Vocab(state["vocab"][4:]),
                   tokenizers.from_state(state["tok"]) if state.get("tok") else None,
                   list(state.get("labels") or []),
                   Vocab(state["chars"][4:]) if state.get("chars") else None,
                   bool(state.get("lowercase_words", False)),
                   frozenset(state.get("seen_words") or ()), int(state.get("num_features", 0)),
                   [float(x) for x in state.get("frame_mean") or ()],
                   [float(x) for x in state.get("frame_std") or ()])

    def frames(self, series: np.ndarray) -> np.ndarray:
        """A series of frames (T, C) as the model reads it (`tandem.data.frames.normalise`
        with the training data's statistics)."""
        return normalise(series, self.num_features, self.frame_mean, self.frame_std)
