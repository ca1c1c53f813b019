"""The data of the structures beyond seq2seq (`model.structure`: classify, tag, lm, generate):
from the config to encoded examples (`load_structured`), the fields that turn text into ids
and back (`StructFields`, saved in checkpoints), and batches.

Examples, per structure (plain Python lists of ids):
- classify: `ClassifyExample = (token ids, label id)`;
- tag: `TagExample = (word ids, char ids of each word, tag ids)`;
- lm: one long list of token ids per split (a newline is the token NEWLINE);
- generate: `GenerateExample = (condition, target ids with bos and eos)`, the condition a label
  id, or with data.features the row of the split's feature matrix.

Batches: `struct_batches` groups classify / tag / generate examples by token count as
token_batches does for seq2seq (similar lengths together, the order drawn from an rng), and
`collate_struct` pads them into tensors with lengths; `lm_stream_batches` cuts an lm split into
parallel contiguous streams, in order, so the hidden state can be carried from batch to batch
(truncated backpropagation through time).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tandem.config import CORPUS_STRUCTURES, Config, DataConfig
from tandem.data import readers, tokenizers
from tandem.data.batching import length_batches, pad
from tandem.data.readers import Labelled, Tagged
from tandem.data.tokenizers import CharTokenizer, Tokenizer
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab
from tandem.errors import ConfigError, DataError

log = logging.getLogger("tandem")

STRUCTURES = ("classify", "tag", "lm", "generate")
"""The structures this module reads data for (seq2seq's is tandem.data.dataset)."""
ClassifyExample = tuple[list[int], int]
TagExample = tuple[list[int], list[list[int]], list[int]]
GenerateExample = tuple[int, list[int]]
NEWLINE = "\n"
"""The token of a line break in lm streams (word and sentencepiece tokenizers read line by
line; the char tokenizer keeps every character, '\\n' included)."""
TAG_PAD = -100
"""The tag id of padding positions in TagBatch.tags (cross_entropy's default ignore_index)."""
SHARED_DATA = "../shared/data"
CORPUS_FOLDERS = {"cmudict": "cmudict_split", "sst2": "sst2", "names": "names",
                  "ud_ewt": "ud_english_ewt", "tinyshakespeare": "tinyshakespeare"}
"""Each built-in corpus' folder under ../shared/data/ (when data.corpus_dir is null)."""


def corpus_dir(d: DataConfig) -> Path:
    """The folder of the built-in corpus data.corpus: data.corpus_dir, or its folder under
    ../shared/data/."""
    if d.corpus_dir is not None:
        return Path(d.corpus_dir)
    return Path(SHARED_DATA) / CORPUS_FOLDERS.get(d.corpus or "", "")


def stream_tokens(tok: Tokenizer, text: str) -> list[str]:
    """The tokens of a running text for a language model, line breaks kept as NEWLINE. The
    char tokenizer keeps every character as it is (NFC, optionally lowercased; runs of spaces
    are not collapsed, so the stream has exactly one token per character); the others tokenize
    each line."""
    if isinstance(tok, CharTokenizer):
        text = unicodedata.normalize("NFC", text)
        text = text.lower() if tok.lowercase else text
        table = {" ": tok.SPACE, tok.SPACE: tok.LITERAL_SPACE_MARK}
        return [table.get(c, c) for c in text]
    out: list[str] = []
    for k, line in enumerate(text.split("\n")):
        if k:
            out.append(NEWLINE)
        out.extend(tok.tokenize(line))
    return out


def stream_text(tok: Tokenizer, tokens: list[str]) -> str:
    """stream_tokens' inverse: tokens -> text, each NEWLINE a line break."""
    lines: list[str] = []
    cur: list[str] = []
    for t in tokens:
        if t == NEWLINE:
            lines.append(tok.detokenize(cur))
            cur = []
        else:
            cur.append(t)
    lines.append(tok.detokenize(cur))
    return "\n".join(lines)


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

    def __post_init__(self) -> None:
        self.label_ids: dict[str, int] = {lab: i for i, lab in enumerate(self.labels)}

    def tokens(self, text: str) -> list[str]:
        """Text -> tokens: stream_tokens for lm, else the tokenizer."""
        if self.tok is None:
            raise DataError(f"{self.structure} fields have no tokenizer (tag reads words)")
        return stream_tokens(self.tok, text) if self.structure == "lm" else \
            self.tok.tokenize(text)

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
        toks = self.vocab.decode(ids)
        return stream_text(self.tok, toks) if self.structure == "lm" else \
            self.tok.detokenize(toks)

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
                "seen_words": sorted(self.seen_words), "num_features": self.num_features}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StructFields:
        """The fields a checkpoint's `state()` describes."""
        return cls(str(state["structure"]), Vocab(state["vocab"][4:]),
                   tokenizers.from_state(state["tok"]) if state.get("tok") else None,
                   list(state.get("labels") or []),
                   Vocab(state["chars"][4:]) if state.get("chars") else None,
                   bool(state.get("lowercase_words", False)),
                   frozenset(state.get("seen_words") or ()), int(state.get("num_features", 0)))


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


# --- reading the splits -------------------------------------------------------------------------


def _labelled_splits(d: DataConfig, label_first: bool
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


def _tagged_splits(d: DataConfig) -> tuple[list[Tagged], list[Tagged], list[Tagged]]:
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


def _unknown(known: dict[str, int] | set[str], found: list[tuple[str, str]], split: str,
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


def _kept(what: str, kept: int, total: int, limit: str) -> None:
    if kept < total:
        log.info("%s: dropped %d of %d items that are empty after tokenization%s", what,
                 total - kept, total, limit)


def _load_classify(cfg: Config) -> StructData:
    d = cfg.data
    splits = _labelled_splits(d, label_first=False)
    train = splits[0]
    texts = [t for t, _, _ in train]
    tok = tokenizers.build(d.src_tokenizer, texts, d.lowercase, d.sp_vocab_size,
                           d.sp_model_type)
    vocab = Vocab.build((tok.tokenize(t) for t in texts), d.src_min_freq, d.src_max_vocab)
    fields = StructFields("classify", vocab, tok, sorted({lab for _, lab, _ in train}))
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        _unknown(fields.label_ids, [(lab, w) for _, lab, w in items], name, "label")
        limit = d.max_src_len if name == "train" else 10**9
        exs, kept = [], []
        for it in items:
            ids = fields.encode_text(it[0])
            if 0 < len(ids) <= limit:
                exs.append((ids, fields.label_ids[it[1]]))
                kept.append(it)
        _kept(name, len(exs), len(items),
              f" or longer than data.max_src_len={limit}" if name == "train" else "")
        out[name] = (exs, kept)
    if not out["train"][0]:
        raise ConfigError("data.max_src_len: every training item was filtered out")
    log.info("data: classify, %d / %d / %d items, %d labels, %d tokens", len(out["train"][0]),
             len(out["dev"][0]), len(out["test"][0]), len(fields.labels), len(vocab))
    return StructData("classify", fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()})


def _load_tag(cfg: Config) -> StructData:
    d = cfg.data
    splits = _tagged_splits(d)
    train = splits[0]

    def key(w: str) -> str:
        return w.lower() if d.lowercase else w

    vocab = Vocab.build(([key(w) for w in ws] for ws, _, _ in train), d.src_min_freq,
                        d.src_max_vocab)
    chars = Vocab.build([c for w in ws for c in w] for ws, _, _ in train)
    fields = StructFields("tag", vocab, None, sorted({t for _, ts, _ in train for t in ts}),
                          chars, d.lowercase, frozenset(w for ws, _, _ in train for w in ws))
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        _unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], name, "tag")
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
    return StructData("tag", fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()})


def _lm_texts(d: DataConfig) -> tuple[str, str, str]:
    """lm: the train / dev / test texts (test "" when there is none)."""
    if d.corpus == "tinyshakespeare":
        path = corpus_dir(d) / "input.txt"
        if not path.is_file():
            raise DataError(f"{path}: tiny Shakespeare not found; set data.corpus_dir to the "
                            "folder holding input.txt")
        train_text, dev_text = readers.split_text(readers.read_text(path, d.on_bad_line)[0],
                                                  d.lm_dev_fraction)
        return train_text, dev_text, ""
    assert d.train is not None
    text = readers.read_text(d.train, d.on_bad_line)[0]
    if d.dev is not None:
        train_text, dev_text = text, readers.read_text(d.dev, d.on_bad_line)[0]
    else:
        train_text, dev_text = readers.split_text(text, d.lm_dev_fraction)
    return train_text, dev_text, readers.read_text(d.test, d.on_bad_line)[0] if d.test else ""


def _load_lm(cfg: Config) -> StructData:
    d = cfg.data
    train_text, dev_text, test_text = _lm_texts(d)
    tok = tokenizers.build(d.src_tokenizer, train_text.split("\n"), d.lowercase,
                           d.sp_vocab_size, d.sp_model_type)
    train_tokens = stream_tokens(tok, train_text)
    vocab = Vocab.build([train_tokens], d.src_min_freq, d.src_max_vocab)
    fields = StructFields("lm", vocab, tok)
    train = vocab.encode(train_tokens)
    if len(train) < 2:
        raise DataError(f"{d.train or d.corpus}: the training text has {len(train)} tokens; a "
                        "language model needs at least 2")
    dev, test = fields.encode_text(dev_text) if dev_text else [], \
        fields.encode_text(test_text) if test_text else []
    log.info("data: lm, %d / %d / %d tokens, vocabulary %d", len(train), len(dev), len(test),
             len(vocab))
    return StructData("lm", fields, train, dev, test,
                      {"train": train_text, "dev": dev_text, "test": test_text})


def _feature_splits(cfg: Config) -> tuple[list[list], dict[str, np.ndarray]]:
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


def _load_generate(cfg: Config) -> StructData:
    d = cfg.data
    declared = int(getattr(cfg.model, "num_features", 0) or 0)
    feats: dict[str, np.ndarray] = {}
    if d.features is not None:
        if d.corpus is not None or d.train is None:
            raise ConfigError(f"data.features = {d.features!r} needs data.train (the text "
                              "file of its rows) and no data.corpus")
        splits, feats = _feature_splits(cfg)
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
                  for its in _labelled_splits(d, label_first=True)]
        labels, width = sorted({lab for lab, _, _ in splits[0]}), 0
    texts = [t for _, t, _ in splits[0]]
    tok = tokenizers.build(d.tgt_tokenizer, texts, d.lowercase, d.sp_vocab_size,
                           d.sp_model_type)
    vocab = Vocab.build((tok.tokenize(t) for t in texts), d.tgt_min_freq, d.tgt_max_vocab)
    fields = StructFields("generate", vocab, tok, labels, num_features=width)
    out: dict[str, tuple[list, list]] = {}
    for name, items in zip(("train", "dev", "test"), splits, strict=True):
        if not feats:
            _unknown(fields.label_ids, [(c, w) for c, _, w in items], name, "label")
        limit = d.max_tgt_len if name == "train" else 10**9
        exs, kept = [], []
        for it in items:
            ids = fields.encode_text(it[1])
            if 0 < len(ids) <= limit:
                cond = int(it[0]) if feats else fields.label_ids[it[0]]
                exs.append((cond, [BOS_ID, *ids, EOS_ID]))
                kept.append(it)
        _kept(name, len(exs), len(items),
              f" or longer than data.max_tgt_len={limit}" if name == "train" else "")
        out[name] = (exs, kept)
    if not out["train"][0]:
        raise ConfigError("data.max_tgt_len: every training item was filtered out")
    log.info("data: generate, %d / %d / %d items, condition %s, %d tokens",
             len(out["train"][0]), len(out["dev"][0]), len(out["test"][0]),
             f"{width} features" if feats else f"{len(labels)} labels", len(vocab))
    return StructData("generate", fields, out["train"][0], out["dev"][0], out["test"][0],
                      {k: v[1] for k, v in out.items()}, feats)


def load_structured(cfg: Config) -> StructData:
    """Read the splits `data.*` names for `model.structure` (classify, tag, lm or generate),
    build the fields on the training split and encode every split. Training items over
    data.max_src_len (classify, tag: words) or data.max_tgt_len (generate) are dropped and
    counted; dev and test items never are. Labels or tags of dev / test that training never
    had are a DataError naming them and where they are."""
    structure = getattr(cfg.model, "structure", "seq2seq")
    d = cfg.data
    if structure not in STRUCTURES:
        raise ConfigError(f"model.structure = {structure!r}: load_structured reads the data of "
                          f"{', '.join(STRUCTURES)} (seq2seq's is tandem.data.dataset)")
    if d.corpus is not None and structure not in CORPUS_STRUCTURES[d.corpus]:
        raise ConfigError(f"data.corpus = {d.corpus!r} is not allowed with model.structure = "
                          f"{structure}; it is for {' or '.join(CORPUS_STRUCTURES[d.corpus])}")
    if d.corpus is None and d.train is None:
        raise ConfigError(f"data.train: no training data for model.structure = {structure} "
                          "(the built-in data.task pairs are for seq2seq); set data.train or "
                          "data.corpus")
    loaders = {"classify": _load_classify, "tag": _load_tag, "lm": _load_lm,
               "generate": _load_generate}
    return loaders[structure](cfg)


def evaluation_data(cfg: Config, fields: StructFields, path: str | Path | None = None,
                    features: str | Path | None = None, split: str = "test"
                    ) -> tuple[list, list, np.ndarray | None, str]:
    """The examples of a file in the structure's format (`path`: classify `text<TAB>label` or
    a folder of `<Label>.txt`, tag CoNLL-U or `word<TAB>tag`, lm plain text, generate
    `label<TAB>text`, or with `features` a text file and its .npy matrix) or, when `path` is
    None, of `split` of the model's own config, encoded with a trained model's `fields`.

    Returns (examples, items, feature matrix or None, what was read). Nothing is dropped for
    length (evaluation scores everything); a label or tag the model never saw is a DataError
    naming it and its file:line; an lm config without a test text gives its dev text (the
    customary split of tiny Shakespeare has only train and val), which `what` says."""
    d, s = cfg.data, fields.structure
    which = ("train", "dev", "test").index(split)
    what = str(path) if path is not None else f"the {split} split of the model's config"
    if s == "lm":
        if path is not None:
            text = readers.read_text(path, d.on_bad_line)[0]
        else:
            texts = _lm_texts(d)
            text = texts[which]
            if not text and split == "test":
                text, what = texts[1], "the dev split of the model's config (it has no test text)"
        if not text:
            raise DataError(f"{what}: no text to evaluate")
        return fields.encode_text(text), [text], None, what
    matrix = None
    if s == "classify":
        if path is None:
            items = _labelled_splits(d, label_first=False)[which]
        elif Path(path).is_dir():
            items = readers.read_label_folder(path, d.on_bad_line)[0]
        else:
            items = readers.read_labelled(path, d.on_bad_line)[0]
        _unknown(fields.label_ids, [(lab, w) for _, lab, w in items], what, "label")
        exs = [(fields.encode_text(t) or [UNK_ID], fields.label_ids[lab]) for t, lab, _ in items]
    elif s == "tag":
        items = (_tagged_splits(d)[which] if path is None
                 else readers.read_tagged(path, d.tag_column, d.on_bad_line)[0])
        _unknown(fields.label_ids, [(t, w) for _, ts, w in items for t in ts], what, "tag")
        exs = [(*fields.encode_words(ws), [fields.label_ids[t] for t in ts])
               for ws, ts, _ in items]
    else:
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
                raw = _labelled_splits(d, label_first=True)[which]
            elif Path(path).is_dir():
                raw = readers.read_label_folder(path, d.on_bad_line)[0]
            else:
                raw = readers.read_labelled(path, d.on_bad_line, label_first=True)[0]
            items = [(lab, text, w) for text, lab, w in raw]
            _unknown(fields.label_ids, [(c, w) for c, _, w in items], what, "label")
            exs = [(fields.label_ids[c], fields.encode_target(t)) for c, t, _ in items]
    if not exs:
        raise DataError(f"{what}: nothing to evaluate")
    return exs, items, matrix, what


# --- batches ------------------------------------------------------------------------------------


class _Tensors:
    """`to(device)` for a batch dataclass: every tensor field moved, the rest kept."""

    def to(self, device: torch.device):
        """The batch with its tensors on `device` (the same batch on the CPU)."""
        if device.type == "cpu":
            return self
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=True)
                 for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)


@dataclass
class ClassifyBatch(_Tensors):
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

    def __len__(self) -> int:
        return self.src.size(0)


@dataclass
class TagBatch(_Tensors):
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

    def __len__(self) -> int:
        return self.words.size(0)


@dataclass
class GenerateBatch(_Tensors):
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

    def __len__(self) -> int:
        return self.tgt_in.size(0)


@dataclass
class LMBatch(_Tensors):
    """inputs (B, T) and targets (B, T) long, targets[b, t] the token after inputs[b, t];
    row b continues row b of the batch before (`index` - 1) without a gap, so the hidden state
    carries over. T = bptt except maybe in the last batch."""

    inputs: torch.Tensor
    targets: torch.Tensor
    index: int

    @property
    def n_tokens(self) -> int:
        """Predicted tokens (B x T)."""
        return self.targets.numel()

    def __len__(self) -> int:
        return self.inputs.size(0)


def example_length(structure: str, ex: Any) -> int:
    """What a batch's token budget counts for one example: classify its tokens, tag its
    words, generate its target steps (bos .. yn)."""
    if structure == "generate":
        return len(ex[1]) - 1
    return len(ex[0])


def struct_batches(structure: str, examples: list, batch_tokens: int,
                   rng: random.Random | None, bucket_factor: int = 100) -> list[list[int]]:
    """Index lists of classify / tag / generate examples whose (size x longest) stays within
    `batch_tokens`, padding included (length_batches). With `rng` the items are bucketed by
    length and the batch order drawn from it (deterministic given its state); without, the
    order is by length (for evaluation)."""
    return length_batches([example_length(structure, e) for e in examples], batch_tokens, rng,
                          bucket_factor)


def collate_classify(examples: list[ClassifyExample], indices: list[int]) -> ClassifyBatch:
    """ClassifyExamples -> a ClassifyBatch padded to the longest text."""
    srcs = [e[0] for e in examples]
    return ClassifyBatch(pad(srcs), torch.tensor([len(s) for s in srcs], dtype=torch.long),
                         torch.tensor([e[1] for e in examples], dtype=torch.long), indices)


def collate_tag(examples: list[TagExample], indices: list[int]) -> TagBatch:
    """TagExamples -> a TagBatch padded to the longest sentence and the longest word."""
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


def collate_generate(examples: list[GenerateExample], indices: list[int],
                     features: np.ndarray | None = None) -> GenerateBatch:
    """GenerateExamples -> a GenerateBatch: with `features` (the split's (N, F) matrix) cond
    holds the rows the examples name, else their label ids as (B, 1)."""
    conds = [e[0] for e in examples]
    if features is not None:
        cond = torch.from_numpy(np.ascontiguousarray(features[conds], dtype=np.float32))
    else:
        cond = torch.tensor(conds, dtype=torch.long).unsqueeze(1)
    tgts = [e[1] for e in examples]
    return GenerateBatch(cond, torch.ones(len(examples), dtype=torch.long),
                         pad([t[:-1] for t in tgts]), pad([t[1:] for t in tgts]), indices)


def collate_struct(structure: str, examples: list, indices: list[int],
                   features: np.ndarray | None = None
                   ) -> ClassifyBatch | TagBatch | GenerateBatch:
    """The batch of `examples` (the examples at `indices`) for `structure`; `features`:
    generate's feature matrix of their split."""
    if structure == "classify":
        return collate_classify(examples, indices)
    if structure == "tag":
        return collate_tag(examples, indices)
    if structure == "generate":
        return collate_generate(examples, indices, features)
    raise ConfigError(f"model.structure = {structure!r}: batches of examples are for classify, "
                      "tag and generate (lm: lm_stream_batches)")


def lm_stream_batches(ids: list[int], streams: int, bptt: int, offset: int = 0
                      ) -> list[LMBatch]:
    """An lm split cut into `streams` parallel contiguous streams, then into batches of `bptt`
    steps, in order: stream b is ids[offset + b*L : offset + (b+1)*L] with L = (len(ids) -
    offset - 1) // streams; batch k holds steps k*bptt .. of every stream, inputs (B, T) and
    targets (B, T) = the next tokens. So row b of batch k+1 continues row b of batch k (carry
    the hidden state), and the targets cover ids[offset+1 : offset+1 + streams*L] once each
    (fewer than `streams` tokens at the end go unused). `offset` (< len - streams) shifts
    where the cuts fall (e.g. a different one per epoch). Deterministic."""
    if streams < 1 or bptt < 1:
        raise ConfigError(f"lm batches need streams >= 1 and bptt >= 1 (got {streams}, {bptt}); "
                          "see train.batch_tokens and train.bptt")
    n = len(ids) - offset - 1
    length = n // streams
    if length < 1:
        raise DataError(f"an lm text of {len(ids)} tokens is too short for {streams} parallel "
                        f"streams (offset {offset}); lower train.batch_tokens // train.bptt")
    data = torch.tensor(ids[offset:offset + streams * length + 1], dtype=torch.long)
    x = data[:-1].view(streams, length)
    y = data[1:].view(streams, length)
    return [LMBatch(x[:, t:t + bptt].contiguous(), y[:, t:t + bptt].contiguous(), k)
            for k, t in enumerate(range(0, length, bptt))]
