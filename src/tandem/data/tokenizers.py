"""Tokenizers: text <-> list of token strings. Each one saves itself into a plain dict
(strings and bytes only) so it travels inside a checkpoint."""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from typing import Any

from tandem.errors import ConfigError


def normalize(text: str, lowercase: bool = False) -> str:
    """NFC, whitespace collapsed, optionally lowercased: what every tokenizer sees."""
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return text.lower() if lowercase else text


class Tokenizer:
    """Text <-> tokens, and its own state for a checkpoint; subclasses are char, word and
    sentencepiece."""
    kind = "base"

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        """Text -> tokens (after normalisation)."""
        raise NotImplementedError

    def detokenize(self, tokens: list[str]) -> str:
        """Tokens -> text; detokenize(tokenize(x)) == normalize(x)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild this tokenizer (plain types only)."""
        return {"kind": self.kind, "lowercase": self.lowercase}


class CharTokenizer(Tokenizer):
    """One token per character; a space is the token '▁' so words survive the round trip."""

    kind = "char"
    SPACE = "▁"
    LITERAL_SPACE_MARK = "<▁>"  # a '▁' that was in the text itself

    def tokenize(self, text: str) -> list[str]:
        """Text -> its characters, spaces included."""
        table = {" ": self.SPACE, self.SPACE: self.LITERAL_SPACE_MARK}
        return [table.get(c, c) for c in normalize(text, self.lowercase)]

    def detokenize(self, tokens: list[str]) -> str:
        """Characters -> text."""
        table = {self.SPACE: " ", self.LITERAL_SPACE_MARK: self.SPACE}
        return "".join(table.get(t, t) for t in tokens)


class WordTokenizer(Tokenizer):
    """Whitespace-separated tokens."""

    kind = "word"

    def tokenize(self, text: str) -> list[str]:
        """Text -> whitespace-separated words."""
        return normalize(text, self.lowercase).split()

    def detokenize(self, tokens: list[str]) -> str:
        """Words -> text joined by single spaces."""
        return " ".join(tokens)


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece unigram/BPE model, trained on the training data, stored as bytes."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes, lowercase: bool = False) -> None:
        import sentencepiece as spm

        super().__init__(lowercase)
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram",
              lowercase: bool = False) -> SentencePieceTokenizer:
        """A sentencepiece model (unigram or bpe) trained in memory on `texts`."""
        import sentencepiece as spm

        lines = [normalize(t, lowercase) for t in texts]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(x for x in lines if x) + "\n")
            model = io.BytesIO()
            try:
                spm.SentencePieceTrainer.train(
                    input=path, model_writer=model, vocab_size=vocab_size,
                    model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
                    bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
                    num_threads=max(1, min(4, os.cpu_count() or 1)),
                )
            except RuntimeError as e:
                raise ConfigError(f"data.sp_vocab_size = {vocab_size}: sentencepiece training "
                                  f"failed: {e}") from None
        return cls(model.getvalue(), lowercase)

    def tokenize(self, text: str) -> list[str]:
        """Text -> sentencepiece pieces."""
        return self.sp.encode(normalize(text, self.lowercase), out_type=str)

    def detokenize(self, tokens: list[str]) -> str:
        """Pieces -> text."""
        return self.sp.decode_pieces(list(tokens))

    def state(self) -> dict[str, Any]:
        """The model as bytes, for the checkpoint."""
        return {**super().state(), "model": self.model_proto}


def from_state(state: dict[str, Any]) -> Tokenizer:
    """The tokenizer a checkpoint's `state()` describes."""
    kind = state.get("kind")
    lowercase = bool(state.get("lowercase", False))
    if kind == "char":
        return CharTokenizer(lowercase)
    if kind == "word":
        return WordTokenizer(lowercase)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(state["model"], lowercase)
    raise ConfigError(f"unknown tokenizer kind {kind!r}; allowed: char, word, sentencepiece")


def build(kind: str, texts: list[str], lowercase: bool, sp_vocab_size: int,
          sp_model_type: str) -> Tokenizer:
    """Make the tokenizer named by the config, training it on `texts` if it learns."""
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(texts, sp_vocab_size, sp_model_type, lowercase)
    return from_state({"kind": kind, "lowercase": lowercase})
