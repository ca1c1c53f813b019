"""classify: many-to-one (one-to-one over a one-step input). A text -> one label: the encoder
reads the tokens, the bridge makes c, a softmax over the labels reads c (`Classifier`).

Data: `text<TAB>label` lines, a folder of `<Label>.txt` files (hash-split when it is the only
data), or the built-in corpora sst2 and names. Examples are (token ids, label id). Loss:
cross-entropy per item; metrics: loss, accuracy, macro-F1 (percent), F1 per label and the
confusion matrix. Prediction: the top-k labels of each text with their probabilities.
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
from tandem.data.frames import frame_splits, frame_stats, read_series
from tandem.data.vocab import UNK_ID, Vocab
from tandem.errors import ConfigError, DataError
from tandem.model.classifier import Classifier
from tandem.model.loss import token_nll
from tandem.structures.base import floats
from tandem.structures.common import (
    TAG_PAD,
    ExampleStructure,
    FieldsModel,
    StructData,
    StructFields,
    Tensors,
    ce_sum,
    labelled_splits,
    log,
    log_dropped,
    unknown,
)
from tandem.verbs import ClassifierVerbs

NAME = "classify"
Example = tuple[list[int], int]


@dataclass
class ClassifyBatch(Tensors):
    """src (B, S) long token ids padded with PAD_ID, src_len (B,) long, labels (B,) long, and
    the examples' indices."""

    src: torch.Tensor
    src_len: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    @property
    def n_tokens(self) -> int:
        """Real (unpadded) input tokens."""
        return int(self.src_len.sum())


def collate(examples: list[Example], indices: list[int],
            features: np.ndarray | None = None) -> ClassifyBatch:
    """Examples -> a ClassifyBatch padded to the longest text (or series of frames: src
    (B, T, C) float32, zero-padded)."""
    srcs = [e[0] for e in examples]
    lens = torch.tensor([len(s) for s in srcs], dtype=torch.long)
    labels = torch.tensor([e[1] for e in examples], dtype=torch.long)
    return ClassifyBatch(pad(srcs), lens, labels, indices)


def forward(model: torch.nn.Module, b: ClassifyBatch) -> torch.Tensor:
    """The model on a batch: logits (B, labels)."""
    return model(b.src, b.src_len)


def load_frames(cfg: Config) -> StructData:
    """data.src_kind = frames: the series of data.train (a .ts file; data.dev, or a
    data.frame_dev_fraction share of it drawn with data.split_seed, as dev; data.test), the
    labels and per-channel statistics of the training series, every series normalised."""
    d = cfg.data
    train, dev, test = frame_splits(d)
    width = train[0][0].shape[1]
    mean, std = frame_stats([x for x, _, _ in train], d.frame_norm)
    fields = StructFields(NAME, Vocab([]), None, sorted({lab for _, lab, _ in train}),
                          num_features=width, frame_mean=mean, frame_std=std)
    splits = {}
    for name, items in (("train", train), ("dev", dev), ("test", test)):
        unknown(fields.label_ids, [(lab, w) for _, lab, w in items], name, "label")
        splits[name] = [(fields.frames(x), fields.label_ids[lab]) for x, lab, _ in items]
    log.info("data: classify frames, %d / %d / %d series of %d channels, %d labels",
             len(train), len(dev), len(test), width, len(fields.labels))
    return StructData(NAME, fields, splits["train"], splits["dev"], splits["test"],
                      {"train": train, "dev": dev, "test": test})


def load(cfg: Config) -> StructData:
    """Read the splits, build the fields on the training texts and encode every split
    (training items empty after tokenization or over data.max_src_len tokens are dropped and
    counted; dev and test items only when empty). Frames: `load_frames`."""
    if cfg.data.src_kind == "frames":
        return load_frames(cfg)
    d = cfg.data
    splits = labelled_splits(d, label_first=False)
    train = splits[0]
    texts = [t for t, _, _ in train]
    tok = tokenizers.build(d.src_tokenizer, texts, d.lowercase, d.sp_vocab_size,
                           d.sp_model_type)
    vocab = Vocab.build((tok.tokenize(t) for t in texts), d.src_min_freq, d.src_max_vocab)
    fields = StructFields(NAME, vocab, tok, sorted({lab for _, lab, _ in train}))
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        unknown(fields.label_ids, [(lab, w) for _, lab, w in items], name, "label")
        limit = d.max_src_len if name == "train" else 10**9
        exs, kept_items = [], []
        for it in items:
            ids = fields.encode_text(it[0])
            if 0 < len(ids) <= limit:
                exs.append((ids, fields.label_ids[it[1]]))
                kept_items.append(it)
        log_dropped(name, len(exs), len(items),
                f" or longer than data.max_src_len={limit}" if name == "train" else "")
        out[name] = (exs, kept_items)
    if not out["train"][0]:
        raise ConfigError("data.max_src_len: every training item was filtered out")
    log.info("data: classify, %d / %d / %d items, %d labels, %d tokens", len(out["train"][0]),
             len(out["dev"][0]), len(out["test"][0]), len(fields.labels), len(vocab))
    return StructData(NAME, fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()})


def evaluation_data(cfg: Config, fields: StructFields, path: str | Path | None,
                    split: str) -> tuple[list[Example], str]:
    """The examples of `path` (text<TAB>label lines or a folder of <Label>.txt) or of `split`
    of the model's config, and what was read; nothing is dropped."""
    d = cfg.data
    what = str(path) if path is not None else f"the {split} split of the model's config"
    if fields.num_features:  # a series of frames per item
        if path is None:
            series = load_frames(cfg).items[split]
        else:
            series = read_series(path)
        unknown(fields.label_ids, [(lab, w) for _, lab, w in series], what, "label")
        if not series:
            raise DataError(f"{what}: nothing to evaluate")
        return [(fields.frames(x), fields.label_ids[lab]) for x, lab, _ in series], what
    if path is None:
        items = labelled_splits(d, label_first=False)[("train", "dev", "test").index(split)]
    elif Path(path).is_dir():
        items = readers.read_label_folder(path, d.on_bad_line)[0]
    else:
        items = readers.read_labelled(path, d.on_bad_line)[0]
    unknown(fields.label_ids, [(lab, w) for _, lab, w in items], what, "label")
    exs = [(fields.encode_text(t) or [UNK_ID], fields.label_ids[lab]) for t, lab, _ in items]
    if not exs:
        raise DataError(f"{what}: nothing to evaluate")
    return exs, what


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: list, n_labels: int, batch_tokens: int = 4000,
             device: torch.device | None = None, bf16: bool = False) -> dict[str, Any]:
    """A classifier on (token ids, label id) examples: `loss` (mean cross-entropy per item,
    nats), `accuracy`, `macro_f1` (percent), `confusion` ([gold][predicted] counts), `f1`
    (per label) and `predictions` (label ids, in the examples' order)."""
    device = device or torch.device("cpu")
    model.eval()
    pred = [0] * len(examples)
    nll = 0.0
    for idx in Classify.batches(examples, batch_tokens, None):
        b = collate([examples[i] for i in idx], idx).to(device)
        with autocast(bf16, device.type):
            logits = forward(model, b)
        nll += float(ce_sum(logits, b.labels, -100))
        for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
            pred[i] = p
    scores = metrics.classification_scores([e[1] for e in examples], pred, n_labels)
    return {"loss": nll / len(examples), **scores, "predictions": pred}


class Classify(ExampleStructure):
    """Training: cross-entropy per item (n = items). Validation: dev loss, accuracy and
    macro-F1."""

    name = NAME
    collate = staticmethod(collate)
    load = staticmethod(load)

    @classmethod
    def build(cls, cfg: Config, fields: StructFields) -> torch.nn.Module:
        """A Classifier over the token vocabulary (or frames of fields.num_features numbers)
        and the labels."""
        return Classifier(cfg.model, len(fields.vocab), len(fields.labels),
                          frames=fields.num_features)

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: StructFields, cfg: Config,
                      folder: Path) -> dict[str, Any]:
        """One graph, `model`: the label probabilities (`tandem.model.onnx`)."""
        from tandem.model.onnx import classifier_graphs

        return classifier_graphs(model, fields.num_features, folder)

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy of the labels; n = items in the batch."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = forward(model, batch)
        return token_nll(logits, batch.labels, t.label_smoothing, ignore_index=TAG_PAD)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per item), accuracy and macro-F1 (percent)."""
        if not self.data.dev:
            return {}
        res = evaluate(model, self.data.dev, len(self.fields.labels), **self._eval_args())
        return floats(res, ("loss", "accuracy", "macro_f1"))


class ClassifierPredictor(ClassifierVerbs, FieldsModel):
    """A trained classifier: a label for each text, with its probability.

        clf = tandem.load("runs/sst2/best.pt")
        clf.predict(["a gorgeous , witty film"], topk=2)  # [[('positive', 0.93), ...]]
    """


    @torch.no_grad()
    def probabilities(self, inputs: list) -> torch.Tensor:
        """P(label | input) for each input: (N, n_labels), on the CPU. An input is a text, or
        for a model over frames a (T, C) array of numbers. A text that is empty after
        tokenization is a DataError naming its position."""
        ids = self.encode_inputs(inputs)
        out = torch.zeros(len(ids), len(self.fields.labels))
        examples = [(x, 0) for x in ids]
        for idx in Classify.batches(examples, self._batch_tokens(), None):
            b = collate([examples[i] for i in idx], idx).to(self.device)
            out[torch.tensor(idx)] = torch.softmax(forward(self.model, b).float(), -1).cpu()
        return out

    def predict(self, texts: list, topk: int = 1) -> list[list[tuple[str, float]]]:
        """The `topk` most likely labels of each text (or series of frames, a (T, C) array),
        most likely first, with their probabilities."""
        if topk < 1:
            raise DataError(f"topk = {topk}: give at least 1")
        probs = self.probabilities(texts)
        k = min(topk, probs.size(1))
        top = probs.topk(k, -1)
        return [[(self.fields.labels[j], float(p)) for p, j in zip(ps, js, strict=True)]
                for ps, js in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """accuracy, macro_f1 (percent), loss, f1 per label, the confusion matrix
        ([gold][predicted] counts, rows and columns in `labels` order)."""
        if features is not None:
            raise DataError("--features is for generators conditioned on feature vectors; "
                            "a classifier reads text")
        exs, what = evaluation_data(self.config, self.fields, path, split)
        res = evaluate(self.model, exs, len(self.fields.labels), self._batch_tokens(),
                       self.device)
        res.pop("predictions")
        return {"data": what, "items": len(exs), "labels": self.labels, **res}


STRUCTURE = Classify
LOADED = ClassifierPredictor
