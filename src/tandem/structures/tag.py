"""tag: synchronous many-to-many. A tag for every word: each word read as a word embedding
joined with a character RNN's view of its letters, a bidirectional encoder, a softmax at
every position (`Tagger`).

Data: CoNLL-U files (column data.tag_column) or `word<TAB>tag` lines with a blank line between
sentences, or the built-in corpus ud_ewt. Examples are (word ids, char ids of each word, tag
ids). Loss: cross-entropy per word; metrics: loss, per-token accuracy and the accuracy on words
never seen (as written) in training. Prediction: (word, tag) pairs of each sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tandem import metrics
from tandem.config import Config, DataConfig
from tandem.cpu import autocast
from tandem.data import readers
from tandem.data.batching import pad
from tandem.data.corpora import corpus_dir
from tandem.data.frames import frame_splits, frame_stats, read_series
from tandem.data.readers import Tagged
from tandem.data.vocab import PAD_ID, Vocab
from tandem.errors import ConfigError, DataError
from tandem.model.loss import token_nll
from tandem.model.tagger import Tagger
from tandem.structures.base import floats
from tandem.structures.common import (
    TAG_PAD,
    ExampleStructure,
    FieldsModel,
    StructData,
    StructFields,
    Tensors,
    ce_sum,
    log,
    unknown,
)
from tandem.verbs import TaggerVerbs

NAME = "tag"
Example = tuple[list[int], list[list[int]], list[int]]


def tagged_splits(d: DataConfig) -> tuple[list[Tagged], list[Tagged], list[Tagged]]:
    if d.corpus == "ud_ewt":
        root = corpus_dir(d)
        paths = []
        for s in ("train", "dev", "test"):
            gz, plain = root / f"en_ewt-ud-{s}.conllu.gz", root / f"en_ewt-ud-{s}.conllu"
            paths.append(plain if plain.is_file() and not gz.is_file() else gz)
        if not paths[0].is_file():
            raise DataError(f"{paths[0]}: UD English EWT not found; set data.corpus_dir to the "
                            "folder holding en_ewt-ud-{train,dev,test}.conllu.gz")
        return tuple(readers.read_conllu(p, d.tag_column, d.on_bad_line)[0]
                     for p in paths)
    assert d.train is not None
    return tuple(readers.read_tagged(p, d.tag_column, d.on_bad_line)[0] if p else []
                 for p in (d.train, d.dev, d.test))



def frame_example(fields: StructFields, x: np.ndarray, tags: list[str]) -> Example:
    """A series of frames with a tag per frame -> (normalised frames, [], tag ids)."""
    return fields.frames(x), [], [fields.label_ids[t] for t in tags]


def load_frames(cfg: Config) -> StructData:
    """data.src_kind = frames: series with a tag per frame (.npz, y (N, T)) of data.train /
    data.dev (or a data.frame_dev_fraction share of train) / data.test, the tags and
    per-channel statistics of the training series, every series normalised."""
    d = cfg.data
    splits = frame_splits(d, per_frame=True)
    train = splits[0]
    width = train[0][0].shape[1]
    mean, std = frame_stats([x for x, _, _ in train], d.frame_norm)
    fields = StructFields(NAME, Vocab([]), None, sorted({t for _, ts, _ in train for t in ts}),
                          num_features=width, frame_mean=mean, frame_std=std)
    out = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], name, "tag")
        out[name] = [frame_example(fields, x, ts) for x, ts, _ in items]
    log.info("data: tag frames, %d / %d / %d series of %d channels, %d tags",
             len(out["train"]), len(out["dev"]), len(out["test"]), width, len(fields.labels))
    return StructData(NAME, fields, out["train"], out["dev"], out["test"],
                      dict(zip(("train", "dev", "test"), splits, strict=True)))


def load(cfg: Config) -> StructData:
    """Read the splits, build the word, character and tag vocabularies on the training
    sentences and encode every split (training sentences over data.max_src_len words are
    dropped and counted). Frames: `load_frames`."""
    if cfg.data.src_kind == "frames":
        return load_frames(cfg)
    d = cfg.data
    splits = tagged_splits(d)
    train = splits[0]

    def key(w: str) -> str:
        return w.lower() if d.lowercase else w

    vocab = Vocab.build(([key(w) for w in ws] for ws, _, _ in train), d.src_min_freq,
                        d.src_max_vocab)
    chars = Vocab.build([c for w in ws for c in w] for ws, _, _ in train)
    fields = StructFields(NAME, vocab, None, sorted({t for _, ts, _ in train for t in ts}),
                          chars, d.lowercase, frozenset(w for ws, _, _ in train for w in ws))
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], name, "tag")
        limit = d.max_src_len if name == "train" else 10**9
        kept = [it for it in items if len(it[0]) <= limit]
        if len(kept) < len(items):
            log.info("%s: dropped %d of %d sentences longer than data.max_src_len=%d words",
                     name, len(items) - len(kept), len(items), limit)
        exs = [(*fields.encode_words(ws), [fields.label_ids[t] for t in ts])
               for ws, ts, _ in kept]
        out[name] = (exs, kept)
    if not out["train"][0]:
        raise ConfigError("data.max_src_len: every training sentence was filtered out")
    log.info("data: tag, %d / %d / %d sentences, %d tags, %d words, %d chars",
             len(out["train"][0]), len(out["dev"][0]), len(out["test"][0]), len(fields.labels),
             len(vocab), len(chars))
    return StructData(NAME, fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()})


@dataclass
class TagBatch(Tensors):
    """words (B, S) long word ids padded with PAD_ID, lengths (B,) long, chars (B, S, W) long
    char ids of each word padded with PAD_ID (W = the batch's longest word), char_len (B, S)
    long (0 at padding positions), tags (B, S) long padded with TAG_PAD, and the indices."""

    words: torch.Tensor
    lengths: torch.Tensor
    chars: torch.Tensor
    char_len: torch.Tensor
    tags: torch.Tensor
    indices: list[int]

    @property
    def n_tokens(self) -> int:
        """Real (unpadded) words."""
        return int(self.lengths.sum())


def collate(examples: list[Example], indices: list[int],
            features: np.ndarray | None = None) -> TagBatch:
    """Examples -> a TagBatch padded to the longest sentence and the longest word (series of
    frames: words (B, S, C) float32 frames, no characters)."""
    if isinstance(examples[0][0], np.ndarray):
        lengths = torch.tensor([len(e[0]) for e in examples], dtype=torch.long)
        B, S = len(examples), int(lengths.max())
        return TagBatch(pad([e[0] for e in examples]), lengths,
                        torch.zeros((B, S, 0), dtype=torch.long),
                        torch.zeros((B, S), dtype=torch.long),
                        pad([e[2] for e in examples], TAG_PAD), indices)
    width = max(len(e[0]) for e in examples)
    longest = max(len(c) for e in examples for c in e[1])
    chars, char_len = [], []
    for _, cs, _ in examples:
        rows = [c + [PAD_ID] * (longest - len(c)) for c in cs]
        chars.append(rows + [[PAD_ID] * longest] * (width - len(cs)))
        char_len.append([len(c) for c in cs] + [0] * (width - len(cs)))
    return TagBatch(pad([e[0] for e in examples]),
                    torch.tensor([len(e[0]) for e in examples], dtype=torch.long),
                    torch.tensor(chars, dtype=torch.long),
                    torch.tensor(char_len, dtype=torch.long),
                    pad([e[2] for e in examples], TAG_PAD), indices)


def forward(model: torch.nn.Module, b: TagBatch) -> torch.Tensor:
    """The model on a batch: logits (B, S, tags)."""
    return model(b.words, b.lengths, b.chars, b.char_len)


def evaluation_data(cfg: Config, fields: StructFields, path: str | Path | None,
                    split: str) -> tuple[list[Example], list, str]:
    """The examples and items (words, tags, where) of `path` (CoNLL-U or word<TAB>tag) or of
    `split` of the model's config, and what was read."""
    d = cfg.data
    what = str(path) if path is not None else f"the {split} split of the model's config"
    if fields.num_features:  # a series of frames with a tag per frame
        items = (load_frames(cfg).items[split] if path is None
                 else read_series(path, per_frame=True))
        unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], what, "tag")
        if not items:
            raise DataError(f"{what}: nothing to evaluate")
        return [frame_example(fields, x, ts) for x, ts, _ in items], items, what
    items = (tagged_splits(d)[("train", "dev", "test").index(split)] if path is None
             else readers.read_tagged(path, d.tag_column, d.on_bad_line)[0])
    unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], what, "tag")
    exs = [(*fields.encode_words(ws), [fields.label_ids[t] for t in ts]) for ws, ts, _ in items]
    if not exs:
        raise DataError(f"{what}: nothing to evaluate")
    return exs, items, what


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: list, unseen: list[list[bool]] | None = None,
             batch_tokens: int = 4000, device: torch.device | None = None, bf16: bool = False
             ) -> dict[str, Any]:
    """A tagger on (word ids, char ids, tag ids) examples: `loss` (mean cross-entropy per
    word), `token_acc` and, with `unseen` (per sentence, True for a word not seen in
    training), `unseen_acc` and `unseen_tokens`; `predictions` (tag ids per sentence)."""
    device = device or torch.device("cpu")
    model.eval()
    pred: list[list[int]] = [[] for _ in examples]
    nll, words = 0.0, 0
    for idx in Tag.batches(examples, batch_tokens, None):
        b = collate([examples[i] for i in idx], idx).to(device)
        with autocast(bf16, device.type):
            logits = forward(model, b)
        nll += float(ce_sum(logits.reshape(-1, logits.size(-1)), b.tags.reshape(-1), TAG_PAD))
        words += int(b.lengths.sum())
        best = logits.argmax(-1).tolist()
        for row, i in enumerate(idx):
            pred[i] = best[row][: len(examples[i][0])]
    scores = metrics.tagging_scores([e[2] for e in examples], pred, unseen)
    return {"loss": nll / max(words, 1), **scores, "predictions": pred}


class Tag(ExampleStructure):
    """Training: cross-entropy per word. Validation: dev loss, per-token accuracy and the
    accuracy on dev words never seen (as written) in training."""

    name = NAME
    collate = staticmethod(collate)
    load = staticmethod(load)

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.dev_unseen = ([] if self.fields.num_features else
                           [self.fields.unseen(words) for words, _, _ in data.items.get("dev", [])])

    @classmethod
    def build(cls, cfg: Config, fields: StructFields) -> torch.nn.Module:
        """A Tagger over the words, their characters and the tags (or over frames of
        fields.num_features numbers)."""
        chars = len(fields.chars) if fields.chars is not None else 0
        return Tagger(cfg.model, len(fields.vocab), chars, len(fields.labels),
                      frames=fields.num_features)

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: StructFields, cfg: Config,
                      folder: Path) -> dict[str, Any]:
        """One graph, `model`: the tag logits of every position (`tandem.model.onnx`)."""
        from tandem.model.onnx import tagger_graphs

        return tagger_graphs(model, fields.num_features, folder)

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy of the tags; n = real words."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = forward(model, batch)
        return token_nll(logits, batch.tags, t.label_smoothing, ignore_index=TAG_PAD)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per word), token_acc and unseen_acc (percent)."""
        if not self.data.dev:
            return {}
        res = evaluate(model, self.data.dev, self.dev_unseen or None, **self._eval_args())
        return floats(res, ("loss", "token_acc", "unseen_acc"))


class TaggerPredictor(TaggerVerbs, FieldsModel):
    """A trained tagger: a tag for every word.

        tandem.load("runs/ud_ewt/best.pt").tag(["The cat sat ."])  # [[('The', 'DET'), ...]]
    """


    @torch.no_grad()
    def tag_frames(self, series: list) -> list[list[str]]:
        """A tag for every frame of each series (a (T, C) array of numbers)."""
        examples = [(self.fields.frames(x), [], [0] * len(x)) for x in series]
        tags: list[list[int]] = [[] for _ in examples]
        for idx in Tag.batches(examples, self._batch_tokens(), None):
            b = collate([examples[i] for i in idx], idx).to(self.device)
            best = forward(self.model, b).argmax(-1).tolist()
            for row, i in enumerate(idx):
                tags[i] = best[row][: len(examples[i][0])]
        return [[self.fields.labels[t] for t in ts] for ts in tags]

    @torch.no_grad()
    def tag(self, sentences: list[str | list[str]]) -> list[list[tuple[str, str]]]:
        """(word, tag) pairs of each sentence; a sentence is a list of words or a string
        split on whitespace (give word lists for text tokenized another way). A tagger over
        frames: `tag_frames`."""
        words = self.sentence_words(sentences)
        examples = [(*self.fields.encode_words(ws), [0] * len(ws)) for ws in words]
        tags: list[list[int]] = [[] for _ in examples]
        for idx in Tag.batches(examples, self._batch_tokens(), None):
            b = collate([examples[i] for i in idx], idx).to(self.device)
            best = forward(self.model, b).argmax(-1).tolist()
            for row, i in enumerate(idx):
                tags[i] = best[row][: len(words[i])]
        return [[(w, self.fields.labels[t]) for w, t in zip(ws, ts, strict=True)]
                for ws, ts in zip(words, tags, strict=True)]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """token_acc, and unseen_acc / unseen_tokens (accuracy on words never seen in
        training), loss."""
        if features is not None:
            raise DataError("--features is for generators conditioned on feature vectors; "
                            "a tagger reads words")
        exs, items, what = evaluation_data(self.config, self.fields, path, split)
        unseen = (None if self.reads_frames else
                  [self.fields.unseen(ws) for ws, _, _ in items])
        res = evaluate(self.model, exs, unseen, self._batch_tokens(), self.device)
        res.pop("predictions")
        return {"data": what, ("series" if self.reads_frames else "sentences"): len(exs),
                ("frames" if self.reads_frames else "tokens"): sum(len(e[0]) for e in exs),
                **res}


STRUCTURE = Tag
LOADED = TaggerPredictor
