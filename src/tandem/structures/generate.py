"""generate: one-to-many. A sequence written from one input, a label or a feature vector: c
made from the input starts the decoder (`ConditionalGenerator`), which the searches drive
through `init_state` / `decode_step`.

Data: `label<TAB>text` lines, a folder of `<Label>.txt` files, the built-in corpus names, or
text lines with a .npy matrix whose row i conditions line i (data.features). Examples are
(condition, target ids with bos and eos), the condition a label id or a row number. Loss:
token cross-entropy of the targets (eos included); metrics: loss and perplexity. Prediction:
n outputs for each label (or feature row): sampling by default, greedy or beam when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tandem import metrics
from tandem.config import Config
from tandem.cpu import autocast
from tandem.data import readers, tokenizers
from tandem.data.batching import pad
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab
from tandem.errors import ConfigError, DataError
from tandem.model.generator import ConditionalGenerator
from tandem.model.loss import token_nll
from tandem.structures.base import floats
from tandem.structures.common import (
    ExampleStructure,
    StructData,
    StructFields,
    Tensors,
    ce_sum,
    labelled_splits,
    log,
    log_dropped,
    unknown,
)
from tandem.structures.generating import Generating
from tandem.verbs import GeneratorVerbs

NAME = "generate"
Example = tuple[int, list[int]]


def feature_splits(cfg: Config) -> tuple[list[list], dict[str, np.ndarray]]:
    """generate from feature vectors: per split the items (row, text, where) and matrices."""
    d = cfg.data
    items: list[list] = []
    feats: dict[str, np.ndarray] = {}
    for name, text, npy in (("train", d.train, d.features), ("dev", d.dev, d.dev_features),
                            ("test", d.test, d.test_features)):
        if text is None:
            items.append([])
            continue
        if npy is None:
            raise ConfigError(f"data.{name}_features: a .npy matrix of data.{name}'s lines is "
                              "needed when data.features is set")
        its, n_lines, _ = readers.read_lines(text, d.on_bad_line)
        feats[name] = readers.load_features(npy, n_lines, text)
        if feats[name].shape[1] != feats["train"].shape[1]:
            raise DataError(f"{npy} has {feats[name].shape[1]} features per row but "
                            f"{d.features} has {feats['train'].shape[1]}")
        items.append(its)
    return items, feats


def load(cfg: Config) -> StructData:
    """Read the splits (label<TAB>text lines, or text lines and their .npy feature matrices),
    build the target tokenizer and vocabulary on the training texts and encode every split
    (training items empty after tokenization or over data.max_tgt_len tokens are dropped and
    counted)."""
    d = cfg.data
    declared = int(getattr(cfg.model, "num_features", 0) or 0)
    feats: dict[str, np.ndarray] = {}
    if d.features is not None:
        if d.corpus is not None or d.train is None:
            raise ConfigError(f"data.features = {d.features!r} needs data.train (the text "
                              "file of its rows) and no data.corpus")
        splits, feats = feature_splits(cfg)
        labels: list[str] = []
        width = feats["train"].shape[1]
        if declared not in (0, width):
            raise DataError(f"{d.features} has {width} features per row but "
                            f"model.num_features = {declared}")
    else:
        if declared:
            raise ConfigError(f"model.num_features = {declared} needs data.features (a .npy "
                              "matrix of feature vectors); without it the condition is a label")
        # (label, text, where) -> (text, label, where) order of the readers' Labelled
        splits = [[(lab, text, w) for text, lab, w in its]
                  for its in labelled_splits(d, label_first=True)]
        labels, width = sorted({lab for lab, _, _ in splits[0]}), 0
    texts = [t for _, t, _ in splits[0]]
    tok = tokenizers.build(d.tgt_tokenizer, texts, d.lowercase, d.sp_vocab_size,
                           d.sp_model_type)
    vocab = Vocab.build((tok.tokenize(t) for t in texts), d.tgt_min_freq, d.tgt_max_vocab)
    fields = StructFields(NAME, vocab, tok, labels, num_features=width)
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        if not feats:
            unknown(fields.label_ids, [(c, w) for c, _, w in items], name, "label")
        limit = d.max_tgt_len if name == "train" else 10**9
        exs, kept = [], []
        for it in items:
            ids = fields.encode_text(it[1])
            if 0 < len(ids) <= limit:
                cond = int(it[0]) if feats else fields.label_ids[it[0]]
                exs.append((cond, [BOS_ID, *ids, EOS_ID]))
                kept.append(it)
        log_dropped(name, len(exs), len(items),
                f" or longer than data.max_tgt_len={limit}" if name == "train" else "")
        out[name] = (exs, kept)
    if not out["train"][0]:
        raise ConfigError("data.max_tgt_len: every training item was filtered out")
    log.info("data: generate, %d / %d / %d items, condition %s, %d tokens",
             len(out["train"][0]), len(out["dev"][0]), len(out["test"][0]),
             f"{width} features" if feats else f"{len(labels)} labels", len(vocab))
    return StructData(NAME, fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()}, feats)


@dataclass
class GenerateBatch(Tensors):
    """cond: (B, 1) long label ids, or (B, F) float32 feature vectors; cond_len (B,) long
    ones; tgt_in (B, T) long = bos y1 .. yn and tgt_out (B, T) long = y1 .. yn eos, padded
    with PAD_ID; and the indices."""

    cond: torch.Tensor
    cond_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    indices: list[int]

    @property
    def n_tokens(self) -> int:
        """Real target tokens (eos included)."""
        return int((self.tgt_out != PAD_ID).sum())


def collate(examples: list[Example], indices: list[int],
                     features: np.ndarray | None = None) -> GenerateBatch:
    """Examples -> a GenerateBatch: with `features` (the split's (N, F) matrix) cond
    holds the rows the examples name, else their label ids as (B, 1)."""
    conds = [e[0] for e in examples]
    if features is not None:
        cond = torch.from_numpy(np.ascontiguousarray(features[conds], dtype=np.float32))
    else:
        cond = torch.tensor(conds, dtype=torch.long).unsqueeze(1)
    tgts = [e[1] for e in examples]
    return GenerateBatch(cond, torch.ones(len(examples), dtype=torch.long),
                         pad([t[:-1] for t in tgts]), pad([t[1:] for t in tgts]), indices)


def forward(model: torch.nn.Module, b: GenerateBatch) -> torch.Tensor:
    """The model on a batch, teacher forced: logits (B, T, V)."""
    return model(b.cond, b.tgt_in)


def evaluation_data(cfg: Config, fields: StructFields, path: str | Path | None,
                    features: str | Path | None, split: str
                    ) -> tuple[list[Example], np.ndarray | None, str]:
    """The examples of `path` (label<TAB>text lines or a folder of <Label>.txt; with a model
    conditioned on feature vectors, text lines and their .npy matrix `features`) or of
    `split` of the model's config; the feature matrix (or None) and what was read."""
    d = cfg.data
    which = ("train", "dev", "test").index(split)
    what = str(path) if path is not None else f"the {split} split of the model's config"
    matrix = None
    if fields.num_features:
        text_path = path if path is not None else (d.train, d.dev, d.test)[which]
        npy = features if path is not None else \
            (d.features, d.dev_features, d.test_features)[which]
        if text_path is None or npy is None:
            raise DataError(f"{what}: a generator conditioned on feature vectors is "
                            "evaluated on a text file and its .npy matrix (--features)")
        if path is not None and not Path(npy).is_file():  # named as the user gave it
            raise DataError(f"--features {npy}: file not found; give the .npy matrix of "
                            f"{path} (numpy.save), row i for its line i")
        items, n_lines, _ = readers.read_lines(text_path, d.on_bad_line)
        matrix = readers.load_features(npy, n_lines, text_path)
        if matrix.shape[1] != fields.num_features:
            raise DataError(f"{npy} has {matrix.shape[1]} features per row but the model "
                            f"reads {fields.num_features}")
        exs = [(row, fields.encode_target(t)) for row, t, _ in items]
    else:
        if features is not None:
            raise DataError(f"{features}: this generator is conditioned on labels, not on "
                            "feature vectors; give label<TAB>text lines")
        if path is None:
            raw = labelled_splits(d, label_first=True)[which]
        elif Path(path).is_dir():
            raw = readers.read_label_folder(path, d.on_bad_line)[0]
        else:
            raw = readers.read_labelled(path, d.on_bad_line, label_first=True)[0]
        items = [(lab, text, w) for text, lab, w in raw]
        unknown(fields.label_ids, [(c, w) for c, _, w in items], what, "label")
        exs = [(fields.label_ids[c], fields.encode_target(t)) for c, t, _ in items]
    if not exs:
        raise DataError(f"{what}: nothing to evaluate")
    return exs, matrix, what


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: list, features: np.ndarray | None = None,
             batch_tokens: int = 4000, device: torch.device | None = None, bf16: bool = False
             ) -> dict[str, float]:
    """A conditional generator on (condition, target ids) examples (`features`: the split's
    feature matrix when conditions are rows of one): `loss` (cross-entropy per target token,
    eos included), `ppl` and `tokens`."""
    device = device or torch.device("cpu")
    model.eval()
    nll, count = 0.0, 0
    for idx in Generate.batches(examples, batch_tokens, None):
        b = collate([examples[i] for i in idx], idx, features).to(device)
        with autocast(bf16, device.type):
            logits = forward(model, b)
        nll += float(ce_sum(logits.reshape(-1, logits.size(-1)), b.tgt_out.reshape(-1),
                            PAD_ID))
        count += b.n_tokens
    return {**metrics.lm_scores(nll, count), "tokens": float(count)}


class Generate(ExampleStructure):
    """Training: token cross-entropy of the targets (eos included). Validation: dev loss and
    perplexity."""

    name = NAME
    collate = staticmethod(collate)
    load = staticmethod(load)

    @staticmethod
    def length(example: Any) -> int:
        """A target's steps (bos .. yn)."""
        return len(example[1]) - 1

    @classmethod
    def build(cls, cfg: Config, fields: StructFields) -> torch.nn.Module:
        """A ConditionalGenerator from the feature width (model.num_features, when not 0,
        must equal it) or the labels, over the vocabulary."""
        m = cfg.model
        width = fields.num_features
        if m.num_features and width and m.num_features != width:
            raise ConfigError(f"model.num_features = {m.num_features} is not allowed: the "
                              f"feature vectors have {width} values")
        width = width or m.num_features
        if width:
            return ConditionalGenerator(m, width, len(fields.vocab), features=True)
        return ConditionalGenerator(m, len(fields.labels), len(fields.vocab))

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: StructFields, cfg: Config,
                      folder: Path) -> dict[str, Any]:
        """The `encoder` (the condition -> the first state) and `step` graphs."""
        from tandem.model.onnx import generator_graphs

        return generator_graphs(model, fields.num_features, folder)

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed token cross-entropy; n = target tokens."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = forward(model, batch)
        return token_nll(logits, batch.tgt_out, t.label_smoothing)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per token) and perplexity."""
        if not self.data.dev:
            return {}
        res = evaluate(model, self.data.dev, self.data.features.get("dev"), **self._eval_args())
        return floats(res, ("loss", "ppl"))


class GeneratorPredictor(GeneratorVerbs, Generating):
    """one-to-many on the PyTorch path: `GeneratorVerbs` over `Generating`'s search."""

    structure = NAME

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """loss (cross-entropy per output token, eos included) and ppl of the references
        given their conditions (teacher forced)."""
        exs, matrix, what = evaluation_data(self.config, self.fields, path, features, split)
        res = evaluate(self.model, exs, matrix, self._batch_tokens(), self.device)
        return {"data": what, "items": len(exs), **res}


STRUCTURE = Generate
LOADED = GeneratorPredictor
