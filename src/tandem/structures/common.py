"""What the structures that read labelled, tagged or running text share: their fields
(`StructFields`, saved in checkpoints), the encoded data (`StructData`), the labelled splits
classify and generate read, the refusal of labels training never had, batch dataclasses'
`to(device)`, and the training of examples batched by token count (`ExampleStructure`)."""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tandem.config import Config, DataConfig
from tandem.data import readers
from tandem.data.corpora import corpus_dir
from tandem.data.fields import StructFields
from tandem.data.order import length_batches
from tandem.data.readers import Labelled
from tandem.errors import DataError
from tandem.structures.base import LoadedModel, Structure

log = logging.getLogger("tandem")

TAG_PAD = -100
"""The target id of padding positions (cross_entropy's default ignore_index)."""


@dataclass
class StructData:
    """A structure's data, encoded: `fields`, and the train / dev / test examples (lm: one id
    list per split; dev and test may be empty). `items`: per split, what was read, aligned
    with the examples (classify (text, label, where); tag (words, tags, where); generate
    (label or feature row, text, where); lm the split's text), for evaluation and messages.
    `features`: generate with data.features: per split the (N, F) float32 matrix whose row
    is a GenerateExample's condition."""

    structure: str
    fields: StructFields
    train: list
    dev: list
    test: list
    items: dict[str, Any] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)


def labelled_splits(d: DataConfig, label_first: bool
                     ) -> tuple[list[Labelled], list[Labelled], list[Labelled]]:
    """train / dev / test items of classify (text, label) or generate (label, text)."""
    if d.corpus == "sst2":
        root = corpus_dir(d)
        if not (root / "stsa.binary.train").is_file():
            raise DataError(f"{root / 'stsa.binary.train'}: SST-2 not found; set "
                            "data.corpus_dir to the folder holding stsa.binary.{train,dev,test}")
        return tuple(readers.read_sst2(root / f"stsa.binary.{s}", d.on_bad_line)[0]
                     for s in ("train", "dev", "test"))
    if d.corpus == "names":
        root = corpus_dir(d)
        if not root.is_dir():
            raise DataError(f"{root}: the names corpus not found; set data.corpus_dir to the "
                            "folder holding one <Language>.txt of surnames per label")
        return readers.hash_split(readers.read_label_folder(root, d.on_bad_line)[0],
                                  d.split_seed)
    assert d.train is not None
    if Path(d.train).is_dir() and d.dev is None and d.test is None:
        return readers.hash_split(readers.read_label_folder(d.train, d.on_bad_line)[0],
                                  d.split_seed)

    def read(path: str | None) -> list[Labelled]:
        if path is None:
            return []
        if Path(path).is_dir():
            return readers.read_label_folder(path, d.on_bad_line)[0]
        return readers.read_labelled(path, d.on_bad_line, label_first)[0]

    return read(d.train), read(d.dev), read(d.test)


def unknown(known: dict[str, int] | set[str], found: list[tuple[str, str]], split: str,
             what: str) -> None:
    """DataError naming the labels (or tags) of dev/test that training never had."""
    unseen: dict[str, str] = {}
    for lab, where in found:
        if lab not in known and lab not in unseen:
            unseen[lab] = where
    if unseen:
        first = next(iter(unseen))
        listed = ", ".join(f"{lab!r} ({w})" for lab, w in list(unseen.items())[:10])
        raise DataError(f"{unseen[first]}: {split} has {what}s that never appear in the training "
                        f"data: {listed}{' ...' if len(unseen) > 10 else ''}; a model can only "
                        f"predict the {len(known)} {what}s it was trained on: "
                        f"{', '.join(sorted(known)[:20])}{' ...' if len(known) > 20 else ''}")


class Tensors:
    """`to(device)` for a batch dataclass: every tensor field moved, the rest kept; its length
    is its first field's first dimension (the batch size)."""

    def __len__(self) -> int:
        return getattr(self, dataclasses.fields(self)[0].name).size(0)

    def to(self, device: torch.device):
        """The batch with its tensors on `device` (the same batch on the CPU)."""
        if device.type == "cpu":
            return self
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=True)
                 for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)


def log_dropped(what: str, kept: int, total: int, limit: str) -> None:
    """Log how many items of a split were dropped (empty after tokenization, or too long)."""
    if kept < total:
        log.info("%s: dropped %d of %d items that are empty after tokenization%s", what,
                 total - kept, total, limit)


def ce_sum(logits: torch.Tensor, target: torch.Tensor, ignore: int) -> torch.Tensor:
    """Summed cross-entropy of logits (N, C) against target (N,), skipping `ignore`."""
    return F.cross_entropy(logits.float(), target, ignore_index=ignore, reduction="sum")


class ExampleStructure(Structure):
    """Training over encoded examples (`StructData`) batched by token count: similar lengths
    together, the order drawn from the Trainer's rng (`length_batches` over `length`), padded
    by `collate`. The checkpoint's `fields` is `StructFields.state()`; the model is built
    from `fields.sizes()`."""

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.data = data
        self.fields = data.fields
        self.has_dev = bool(data.dev)

    @classmethod
    def fields_from_state(cls, state: dict[str, Any]) -> StructFields:
        """`StructFields.from_state`."""
        return StructFields.from_state(state)

    @staticmethod
    def length(example: Any) -> int:
        """What a batch's token budget counts for one example."""
        return len(example[0])

    @classmethod
    def batches(cls, examples: list, batch_tokens: int, rng: random.Random | None,
                bucket_factor: int = 100) -> list[list[int]]:
        """Index lists of examples whose (size x longest) stays within `batch_tokens`,
        padding included. With `rng` the items are bucketed by length and the batch order
        drawn from it (deterministic given its state); without, the order is by length (for
        evaluation and prediction)."""
        return length_batches([cls.length(e) for e in examples], batch_tokens, rng,
                              bucket_factor)

    @staticmethod
    def collate(examples: list, indices: list[int], features: np.ndarray | None = None) -> Any:
        """The padded batch of `examples` (the examples at `indices`)."""
        raise NotImplementedError

    def epoch(self, rng: random.Random) -> list[list[int]]:
        """Index lists of the training examples by token count."""
        return self.batches(self.data.train, self.cfg.train.batch_tokens, rng)

    def batch(self, item: list[int]) -> Any:
        """The padded batch of those training examples."""
        return self.collate([self.data.train[i] for i in item], item,
                            self.data.features.get("train"))

    def batch_tokens(self, batch: Any, n: int) -> int:
        """The batch's real input (classify, tag) or target (generate) tokens."""
        return batch.n_tokens

    def _eval_args(self) -> dict[str, Any]:
        return {"batch_tokens": self.cfg.train.batch_tokens, "device": self.device,
                "bf16": self.cfg.train.bf16}

    def describe(self) -> str:
        """Vocabulary and label sizes."""
        sizes = self.fields.sizes()
        return ", ".join(f"{k} {v}" for k, v in sizes.items() if v)


class FieldsModel(LoadedModel):
    """A loaded model over `StructFields` (classify, tag, lm, generate): /v1/model also names
    its labels, vocabulary size and feature width."""

    def info(self) -> dict[str, Any]:
        """The common model info, the labels (or tags), vocabulary size and feature width
        (of a condition vector for generate, of a frame for a model over frames)."""
        return {**super().info(), "labels": self.labels, "vocab": len(self.fields.vocab),
                "num_features": self.fields.num_features}
