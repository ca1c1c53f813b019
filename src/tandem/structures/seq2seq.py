"""seq2seq: many-to-many of different lengths. The encoder reads the source, the bridge makes
c, the decoder (with attention, or c at its start or at every step) writes the target
(`Seq2Seq`); translation, G2P, dialogue, date normalisation.

Data: TSV pairs, paired files, a built-in task or corpus, or a streamed corpus larger than
memory (`data.streaming`). Loss: token cross-entropy with scheduled sampling; validation: dev
loss, perplexity and the decoded dev set scored. The loaded model is the `Translator`
(tandem.structures.translator): the searches, n-best, ensembles, right-to-left reranking,
int8 and its server requests.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tandem.config import Config, DataConfig
from tandem.cpu import autocast
from tandem.data.batching import Batch, Example, collate, token_batches
from tandem.data.corpora import read_split
from tandem.data.dataset import build_fields, encode_pairs, load_splits
from tandem.data.fields import Fields
from tandem.data.streaming import PairStream, StreamPosition, streamed_batches
from tandem.errors import ConfigError
from tandem.evaluate import evaluate_outputs, group_references
from tandem.model.loss import token_nll
from tandem.model.seq2seq import Seq2Seq
from tandem.structures.base import Structure, training_kernels, valid_metric
from tandem.structures.translator import STRUCTURE, Translator

log = logging.getLogger("tandem")

NAME = STRUCTURE


def teacher_forcing_ratio(cfg: Config, step: int) -> float:
    """The probability of feeding the gold previous token at `step` (scheduled sampling):
    `train.teacher_forcing` falling to `train.tf_min` by `train.tf_schedule`, with speed
    `train.tf_k` (steps)."""
    t = cfg.train
    hi, lo, k = t.teacher_forcing, min(t.tf_min, t.teacher_forcing), t.tf_k
    if t.tf_schedule == "constant":
        return hi
    if t.tf_schedule == "linear":
        return max(lo, hi - (hi - lo) * step / k)
    if t.tf_schedule == "exponential":
        return lo + (hi - lo) * 0.5 ** (step / k)
    return lo + (hi - lo) * k / (k + math.exp(min(step / k, 700.0)))  # inverse sigmoid



@dataclass
class TrainData:
    """What seq2seq training reads: the fields (tokenizers + vocabularies), the encoded
    training examples, and the dev pairs as text and encoded (empty without a dev set)."""

    fields: Fields
    train_examples: list[Example]
    dev_pairs: list[tuple[str, str]]
    dev_examples: list[Example]


def load_data(d: DataConfig) -> TrainData:
    """Read the splits `data.*` names, build the fields on the training pairs and encode
    (training pairs over `data.max_src_len` / `data.max_tgt_len` are dropped, dev pairs
    never are)."""
    splits = load_splits(d)
    fields = build_fields(d, splits.train)
    train_examples = encode_pairs(fields, splits.train, d.max_src_len, d.max_tgt_len)
    dev_examples = encode_pairs(fields, splits.dev, 10**9, 10**9, "dev") if splits.dev else []
    log.info("data: %d training pairs, %d dev pairs", len(train_examples), len(splits.dev))
    return TrainData(fields, train_examples, splits.dev, dev_examples)


class Seq2SeqStructure(Structure):
    """Many-to-many of different lengths: source pairs -> Seq2Seq, token cross-entropy with
    scheduled sampling (`train.teacher_forcing` / `train.tf_schedule`); validation: dev loss
    and perplexity, and unless `train.valid_metric` is one of them, the dev set decoded
    (`train.valid_beam`, at most `train.valid_max_sentences`) and scored. The checkpoint's
    `fields` is `Fields.state()`."""

    name = NAME

    def __init__(self, cfg: Config, data: TrainData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.fields = data.fields
        self.train_examples = data.train_examples
        self.dev_pairs = data.dev_pairs
        self.dev_examples = data.dev_examples
        self.has_dev = bool(self.dev_pairs)

    @staticmethod
    def load(cfg: Config) -> TrainData:
        """`load_data(cfg.data)`."""
        return load_data(cfg.data)

    @classmethod
    def for_config(cls, cfg: Config) -> type[Structure]:
        """The streamed variant with data.streaming."""
        return StreamedSeq2SeqStructure if cfg.data.streaming else cls

    @classmethod
    def fields_from_state(cls, state: dict[str, Any]) -> Fields:
        """`Fields.from_state`."""
        return Fields.from_state(state)

    @classmethod
    def build(cls, cfg: Config, fields: Fields) -> torch.nn.Module:
        """Seq2Seq over the source and target vocabularies (or source frames)."""
        return Seq2Seq(cfg.model, len(fields.src_vocab), len(fields.tgt_vocab),
                       frames=fields.frame_width)

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: Fields, cfg: Config, folder: Path
                      ) -> dict[str, Any]:
        """The `encoder` and `step` graphs (`tandem.model.onnx.seq2seq_graphs`)."""
        from tandem.model.onnx import seq2seq_graphs

        return seq2seq_graphs(model, fields.frame_width, folder)

    def epoch(self, rng: random.Random) -> list[list[int]]:
        """Index lists of the training examples by token count (`token_batches`)."""
        return token_batches(self.train_examples, self.cfg.train.batch_tokens, rng)

    def batch(self, item: list[int]) -> Batch:
        """The padded Batch of those examples."""
        return collate([self.train_examples[i] for i in item], item)

    def loss(self, model: torch.nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, int]:
        """Token cross-entropy of the targets; the teacher-forcing ratio of `step`."""
        t = self.cfg.train
        tf = teacher_forcing_ratio(self.cfg, step)
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = model(batch.src, batch.src_len, batch.tgt_in, teacher_forcing=tf)
        return token_nll(logits, batch.tgt_out, t.label_smoothing)

    def batch_tokens(self, batch: Batch, n: int) -> int:
        """Source plus target tokens."""
        return int(batch.src_len.sum()) + n

    @torch.no_grad()
    def dev_loss(self, model: torch.nn.Module) -> float:
        """Mean token cross-entropy on the dev set (teacher forcing, no label smoothing)."""
        model.eval()
        total, count = 0.0, 0
        for idx in token_batches(self.dev_examples, self.cfg.train.batch_tokens, None):
            b = collate([self.dev_examples[i] for i in idx], idx).to(self.device)
            with autocast(self.cfg.train.bf16, self.device.type):
                logits = model(b.src, b.src_len, b.tgt_in)
            loss, n = token_nll(logits, b.tgt_out)
            total, count = total + float(loss), count + n
        return total / max(count, 1)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss, perplexity and, unless the valid metric is one of them, exact match,
        token error rate and the valid metric of the decoded dev set."""
        t = self.cfg.train
        result: dict[str, float] = {}
        if not self.dev_pairs:
            return result
        loss = self.dev_loss(model)
        result.update(loss=loss, ppl=math.exp(min(loss, 100.0)))
        metric = valid_metric(self.cfg)
        if metric not in ("loss", "ppl"):
            srcs, refs = group_references(self.dev_pairs)
            if t.valid_max_sentences:
                srcs, refs = srcs[: t.valid_max_sentences], refs[: t.valid_max_sentences]
            hyps = Translator(model, self.fields, self.cfg).translate(
                srcs, beam=t.valid_beam, nbest=1, sample=False)
            which = ["exact_match", "token_error_rate", metric]
            result.update(evaluate_outputs(self.fields, hyps, refs, list(dict.fromkeys(which))))
            training_kernels(model, self.cfg, self.device)
        return result

    def describe(self) -> str:
        """Source and target vocabulary sizes."""
        return f"vocab src {len(self.fields.src_vocab)}, tgt {len(self.fields.tgt_vocab)}"


@dataclass
class StreamData:
    """What streamed seq2seq training reads: the fields (built on the first
    `data.vocab_sample_lines` training pairs), the training stream, and the dev pairs as text
    and encoded (in memory: a dev set is small)."""

    fields: Fields
    stream: PairStream
    dev_pairs: list[tuple[str, str]]
    dev_examples: list[Example]


class StreamedSeq2SeqStructure(Seq2SeqStructure):
    """seq2seq with `data.streaming: true`: the training file is read lazily, a pool of
    `data.shuffle_buffer` pairs at a time (`tandem.data.streaming`), so memory does not grow
    with the corpus. Plan items are (examples, the stream position after them); resumable
    checkpoints store the position (`stream_position`), so a resume seeks to it."""

    def __init__(self, cfg: Config, data: StreamData, device: torch.device) -> None:
        Structure.__init__(self, cfg, data, device)
        self.fields = data.fields
        self.stream = data.stream
        self.train_examples: list[Example] = []
        self.dev_pairs = data.dev_pairs
        self.dev_examples = data.dev_examples
        self.has_dev = bool(self.dev_pairs)
        self.position = StreamPosition(offsets=[0] * len(self.stream.paths))
        self._resume_at: StreamPosition | None = None

    @staticmethod
    def load(cfg: Config) -> StreamData:
        """The fields from the first `data.vocab_sample_lines` training pairs, the stream,
        and the dev set in memory."""
        d = cfg.data
        if d.train is None or d.task is not None or d.corpus is not None:
            raise ConfigError("data.streaming: true reads a training file (data.train); "
                              "built-in tasks and corpora are read in memory (set "
                              "data.streaming: false)")
        stream = PairStream(d.train, d.src_suffix, d.tgt_suffix, d.on_bad_line)
        sample = stream.head(d.vocab_sample_lines)
        fields = build_fields(d, sample)
        dev = (read_split(d.dev, d.src_suffix, d.tgt_suffix, d.on_bad_line)
               if d.dev is not None else [])
        dev_examples = encode_pairs(fields, dev, 10**9, 10**9, "dev") if dev else []
        log.info("data: training pairs streamed from %s (vocabularies from its first %d "
                 "pairs), %d dev pairs", d.train, len(sample), len(dev))
        return StreamData(fields, stream, dev, dev_examples)

    def _encode(self, pairs: list[tuple[str, str]]) -> list[Example]:
        d = self.cfg.data
        out = []
        for src, tgt in pairs:
            ex = self.fields.encode_pair(src, tgt)
            if 0 < len(ex[0]) <= d.max_src_len and len(ex[1]) - 2 <= d.max_tgt_len:
                out.append(ex)
        return out

    def epoch_items(self, rng: random.Random, skip: int) -> tuple[None, Iterator[Any]]:
        """The epoch's batches as the stream is read; from the saved position when resuming
        inside an epoch."""
        start, self._resume_at = self._resume_at, None
        if skip and start is None:
            raise ConfigError("data.streaming: this checkpoint was written by a run that "
                              "read its corpus in memory, so it holds no stream position; "
                              "resume it with data.streaming: false")
        epoch_seed = rng.getrandbits(63)
        d = self.cfg.data
        return None, streamed_batches(self.stream, self._encode, d.shuffle_buffer,
                                      self.cfg.train.batch_tokens, epoch_seed,
                                      start if skip else None)

    def share(self, item: Any, rank: int, world: int) -> tuple[Any, bool]:
        """Every world-th example of the batch from the rank-th on."""
        examples, after = item
        part = examples[rank::world]
        return ((part, after), False) if part else ((examples[:1], after), True)

    def batch(self, item: Any) -> Batch:
        """The padded Batch of those examples (and the position after them is now ours)."""
        examples, self.position = item
        return collate(examples, list(range(len(examples))))

    def resume_state(self, ranks: Any = None) -> dict[str, Any]:
        """`stream_position`: where the stream stands after the last batch trained on (the
        same on every rank)."""
        return {"stream_position": self.position.state()}

    def restore(self, ckpt: dict[str, Any], ranks: Any = None) -> None:
        """Resume the stream where the checkpoint's position says."""
        pos = ckpt.get("stream_position")
        self._resume_at = None if pos is None else StreamPosition(**pos)


STRUCTURE = Seq2SeqStructure
LOADED = Translator
