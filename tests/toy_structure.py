"""A sixth structure defined outside src/: `vowels`, synchronous many-to-many over characters
(each character of a word tagged v or c), built from tandem's own parts. It is the worked
example of docs/architecture.md ("Adding a structure"): one module with a Structure (data,
fields, model, batches, loss, validation) and a LoadedModel (prediction, evaluation, its
server request), registered with `tandem.structures.register`. tests/test_adding_a_structure.py
trains, evaluates, predicts and serves it through tandem's own trainer, CLI and server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from tandem.config import Config
from tandem.data.batching import pad
from tandem.data.readers import read_lines
from tandem.data.vocab import Vocab
from tandem.errors import DataError
from tandem.model.encoder import Encoder
from tandem.model.loss import token_nll
from tandem.requests import request, text_inputs
from tandem.structures import register
from tandem.structures.base import LoadedModel
from tandem.structures.common import TAG_PAD, ExampleStructure, StructData, Tensors

NAME = "vowels"
LABELS = ["c", "v"]


def label_of(ch: str) -> int:
    """The gold tag of a character: 1 (v) for a vowel, else 0 (c)."""
    return int(ch in "aeiou")


@dataclass
class VowelFields:
    """The character vocabulary (the checkpoint's `fields`)."""

    vocab: Vocab

    def encode(self, word: str) -> list[int]:
        """A word's character ids."""
        return self.vocab.encode(list(word))

    def state(self) -> dict[str, Any]:
        """Plain types for the checkpoint."""
        return {"chars": list(self.vocab.itos)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VowelFields:
        """The fields `state()` wrote."""
        return cls(Vocab(state["chars"][4:]))


@dataclass
class VowelBatch(Tensors):
    """chars (B, S) padded, lengths (B,), tags (B, S) padded with TAG_PAD."""

    chars: torch.Tensor
    lengths: torch.Tensor
    tags: torch.Tensor
    indices: list[int]

    @property
    def n_tokens(self) -> int:
        """Real characters."""
        return int(self.lengths.sum())


def collate(examples: list, indices: list[int], features: Any = None) -> VowelBatch:
    """(char ids, tags) examples padded."""
    return VowelBatch(pad([e[0] for e in examples]),
                      torch.tensor([len(e[0]) for e in examples]),
                      pad([e[1] for e in examples], TAG_PAD), indices)


class VowelTagger(nn.Module):
    """tandem's Encoder over the characters, a linear layer at every position."""

    def __init__(self, cfg: Config, vocab: int) -> None:
        super().__init__()
        m = cfg.model
        self.encoder = Encoder(m.cell, vocab, m.emb_size, m.hidden_size, m.enc_layers,
                               m.bidirectional, m.dropout)
        self.out = nn.Linear(m.hidden_size, len(LABELS))

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, S, 2) logits."""
        return self.out(self.encoder(chars, lengths).states)


def read_words(path: str | Path) -> list[str]:
    """One word per line."""
    return [text for _, text, _ in read_lines(path, "error")[0]]


def load(cfg: Config) -> StructData:
    """Words of data.train / data.dev, their characters tagged."""
    splits = [read_words(p) if p else [] for p in (cfg.data.train, cfg.data.dev, cfg.data.test)]
    fields = VowelFields(Vocab.build(list(w) for w in splits[0]))
    exs = [[(fields.encode(w), [label_of(c) for c in w]) for w in s] for s in splits]
    return StructData(NAME, fields, *exs, {"train": splits[0]})


@torch.no_grad()
def evaluate(model: nn.Module, examples: list, device: torch.device) -> dict[str, float]:
    """loss per character and accuracy (percent)."""
    model.eval()
    nll, right, total = 0.0, 0, 0
    for idx in Vowels.batches(examples, 400, None):
        b = collate([examples[i] for i in idx], idx).to(device)
        logits = model(b.chars, b.lengths)
        loss, n = token_nll(logits, b.tags, ignore_index=TAG_PAD)
        keep = b.tags != TAG_PAD
        right += int((logits.argmax(-1) == b.tags)[keep].sum())
        nll, total = nll + float(loss), total + n
    return {"loss": nll / max(total, 1), "accuracy": 100.0 * right / max(total, 1)}


class Vowels(ExampleStructure):
    """Training: cross-entropy per character; validation: dev loss and accuracy."""

    name = NAME
    collate = staticmethod(collate)
    load = staticmethod(load)

    @classmethod
    def fields_from_state(cls, state: dict[str, Any]) -> VowelFields:
        """VowelFields.from_state."""
        return VowelFields.from_state(state)

    @classmethod
    def build(cls, cfg: Config, fields: VowelFields) -> nn.Module:
        """A VowelTagger over the characters."""
        return VowelTagger(cfg, len(fields.vocab))

    def describe(self) -> str:
        """The vocabulary size."""
        return f"chars {len(self.fields.vocab)}"

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy of the tags."""
        batch = batch.to(self.device)
        return token_nll(model(batch.chars, batch.lengths), batch.tags,
                         self.cfg.train.label_smoothing, ignore_index=TAG_PAD)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Dev loss and accuracy."""
        return evaluate(model, self.data.dev, self.device) if self.data.dev else {}


class VowelModel(LoadedModel):
    """A trained vowel tagger: `tag(words)` -> the v/c string of each word."""

    structure = NAME
    verbs = ("predict",)
    endpoint = "/v1/predict"
    item = "word"

    @torch.no_grad()
    def tag(self, words: list[str]) -> list[str]:
        """The v/c tags of each word's characters, as a string."""
        exs = [(self.fields.encode(w), [0] * len(w)) for w in words]
        out = [""] * len(words)
        for idx in Vowels.batches(exs, 400, None):
            b = collate([exs[i] for i in idx], idx).to(self.device)
            best = self.model(b.chars, b.lengths).argmax(-1).tolist()
            for row, i in enumerate(idx):
                out[i] = "".join(LABELS[t] for t in best[row][: len(words[i])])
        return out

    def check_line(self, line: str) -> str | None:
        """A line is one word."""
        return "more than one word" if len(line.split()) > 1 else None

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """Records the CLI prints: the characters and their tags."""
        return [{"input": w, "words": list(w), "tags": list(t)}
                for w, t in zip(lines, self.tag(lines), strict=True)]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """Accuracy and loss on a file of words (or the config's split)."""
        d = self.config.data
        path = path or {"train": d.train, "dev": d.dev, "test": d.test}[split]
        if path is None:
            raise DataError(f"no {split} file")
        words = read_words(path)
        exs = [(self.fields.encode(w), [label_of(c) for c in w]) for w in words]
        return {"data": str(path), "words": len(words), **evaluate(self.model, exs, self.device)}

    def request_model(self, limits: Any) -> type:
        """{"inputs": words, "upper": bool}."""
        return request("VowelRequest", inputs=text_inputs(limits, "words", 1),
                       upper=(bool, Field(False, description="V/C instead of v/c")))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Every word an item; all requests batch together."""
        return list(req.inputs), None

    def run(self, items: list[str], key: Any) -> list[str]:
        """One batch of words, from any number of requests."""
        self.runs = getattr(self, "runs", []) + [len(items)]
        return self.tag(items)

    def answer(self, req: Any, key: Any, outputs: list[str], ms: float) -> dict[str, Any]:
        """{"tags": [...]}"""
        return {"tags": [t.upper() if req.upper else t for t in outputs], "ms": ms}


register(Vowels, VowelModel, defaults={"bidirectional": True, "enc_layers": 1},
         parts="an encoder with an output at every character", metrics=("accuracy", "loss"))
