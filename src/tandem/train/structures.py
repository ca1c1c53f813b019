"""What training does differently for each model structure (`model.structure`), behind one
interface, so that the Trainer's loop, checkpoints, signals, NaN handling, scalars and early
stopping stay one implementation for all of them.

A structure object holds the run's data and says: how the data is loaded (`load`), how the
model is built (`build_model`), one epoch's batch plan and the batch of one plan item
(`epoch`, `batch`), the loss of a batch (`loss`), the validation metrics (`validate`), the
fields a checkpoint stores (`fields.state()`), and any state a resume needs besides the
weights, the optimizer and the random generators (`resume_state` / `restore`: the language
model's hidden state carried across batches).

    structure = structure_for(cfg)(cfg, structure_for(cfg).load(cfg), device)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tandem.config import Config, DataConfig
from tandem.cpu import autocast
from tandem.data.batching import Batch, Example, collate, token_batches
from tandem.data.corpora import read_split
from tandem.data.dataset import Fields, build_fields, encode_pairs, load_splits
from tandem.data.streaming import PairStream, StreamPosition, streamed_batches
from tandem.data.structured import (
    TAG_PAD,
    LMBatch,
    StructData,
    collate_struct,
    lm_stream_batches,
    load_structured,
    struct_batches,
)
from tandem.decode.translator import Translator
from tandem.errors import ConfigError
from tandem.evaluate import (
    evaluate_classifier,
    evaluate_generator,
    evaluate_lm,
    evaluate_outputs,
    evaluate_tagger,
    group_references,
)
from tandem.metrics import STRUCTURE_METRICS, default_valid_metric
from tandem.model import fast
from tandem.model.build import build_model
from tandem.model.lm import detach_hidden
from tandem.train.distributed import SINGLE, Ranks
from tandem.train.loss import token_nll
from tandem.train.optim import teacher_forcing_ratio

log = logging.getLogger("tandem")


@dataclass
class Filler:
    """A rank's stand-in batch when its share of a global batch is empty (a global batch of
    fewer examples than ranks): `batch` is trained with weight 0, so the rank still joins the
    step's gradient all-reduce."""

    batch: Any


def valid_metric(cfg: Config) -> str:
    """The metric that picks best.pt, early stopping and plateau: `train.valid_metric` (which
    `from_dict` sets to the structure's default when the user did not set it), or for a
    Config built in Python whose valid_metric is not one of its structure's, that default."""
    if cfg.train.valid_metric in STRUCTURE_METRICS[cfg.model.structure]:
        return cfg.train.valid_metric
    return default_valid_metric(cfg.model.structure)


def training_kernels(model: torch.nn.Module, cfg: Config, device: torch.device) -> fast.Plan:
    """Put the model's kernels for training on this device and precision (a validation that
    decodes switches them to inference ones; this switches back)."""
    precision = "bf16" if cfg.train.bf16 else "fp32"
    return fast.prepare(model, device, "train", precision, cfg.model.fast_kernels)


class Structure:
    """The interface the Trainer drives; one subclass per `model.structure`.

    Built from the config, the loaded data (`load(cfg)`) and the training device; holds
    `fields` (an object with `state()`, stored in checkpoints as `fields`) and `has_dev`
    (whether there is a dev set to validate on). Building touches no files and draws no
    random numbers (the initial weights come from torch's global generator in
    `build_model`)."""

    name: ClassVar[str]

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.fields: Any = None
        self.has_dev = False

    @staticmethod
    def load(cfg: Config) -> Any:
        """Read and encode the data `data.*` names (the `data` argument of the constructor)."""
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised model for this data (on the CPU)."""
        raise NotImplementedError

    def epoch(self, rng: random.Random) -> list:
        """The plan of one training epoch: a list of items, one per batch, in order, drawn
        from `rng` (the Trainer keeps `rng`'s state before the draw, so a resume inside an
        epoch redraws the same plan)."""
        raise NotImplementedError

    def epoch_items(self, rng: random.Random, skip: int) -> tuple[int | None, Iterator[Any]]:
        """(the epoch's number of batches, or None when not known in advance; its plan items
        after the first `skip`), the plan drawn from `rng` as `epoch` says. A streamed
        corpus yields its items as it reads them, and resumes from its saved position."""
        order = self.epoch(rng)
        return len(order), iter(order[skip:])

    def batch(self, item: Any) -> Any:
        """The batch of one plan item (on the CPU; `loss` moves it)."""
        raise NotImplementedError

    def share(self, item: Any, rank: int, world: int) -> tuple[Any, bool]:
        """Rank `rank`'s part of one plan item (a global batch) under torchrun, as a plan
        item `batch` takes, and whether the part is empty (then it is a stand-in that the
        trainer weights 0). Plan items here are index lists: every world-th example from the
        rank-th on, which balances lengths across ranks."""
        part = item[rank::world]
        return (part, False) if part else (item[:1], True)

    def check_ranks(self, world: int) -> None:
        """Refuse (ConfigError) a number of ranks this structure's batches cannot be shared
        by."""

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """(summed loss, number of scored targets) of `batch` under `model` (in train mode),
        at update `step` (0-based; scheduled sampling depends on it). `train.label_smoothing`
        applies."""
        raise NotImplementedError

    def step_done(self, ok: bool) -> None:
        """Called after each `loss`: `ok` is False when the update was skipped (the loss or
        its gradient was not finite)."""

    def batch_tokens(self, batch: Any, n: int) -> int:
        """Tokens the model read and predicted in `batch` (`n` scored targets), for tok/s."""
        return n

    def dev_loss(self, model: torch.nn.Module) -> float:
        """Mean loss per scored target on the dev set (no label smoothing)."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """The dev metrics (empty without a dev set); includes `loss`."""
        raise NotImplementedError

    def resume_state(self, ranks: Ranks = SINGLE) -> dict[str, Any]:
        """Checkpoint entries (plain values and tensors) a resume needs besides weights,
        optimizer and random states; stored only in resumable checkpoints. Under torchrun a
        collective (every rank calls it), whose result holds all ranks' state."""
        return {}

    def restore(self, ckpt: dict[str, Any], ranks: Ranks = SINGLE) -> None:
        """Take back what `resume_state` stored, from a checkpoint being resumed (this rank's
        part of it, whatever the number of ranks that wrote it)."""

    def describe(self) -> str:
        """The sizes logged when training starts (vocabularies, labels)."""
        return ""


# --- seq2seq -------------------------------------------------------------------------------


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

    name = "seq2seq"

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

    def build_model(self) -> torch.nn.Module:
        """Seq2Seq over the source and target vocabularies."""
        return build_model(self.cfg.model, {"src_vocab": len(self.fields.src_vocab),
                                            "tgt_vocab": len(self.fields.tgt_vocab)})

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

    def resume_state(self, ranks: Ranks = SINGLE) -> dict[str, Any]:
        """`stream_position`: where the stream stands after the last batch trained on (the
        same on every rank)."""
        return {"stream_position": self.position.state()}

    def restore(self, ckpt: dict[str, Any], ranks: Ranks = SINGLE) -> None:
        """Resume the stream where the checkpoint's position says."""
        pos = ckpt.get("stream_position")
        self._resume_at = None if pos is None else StreamPosition(**pos)


# --- classify, tag, generate: examples batched by token count ------------------------------


class _Structured(Structure):
    """The common part of the structures read by `load_structured` (all but seq2seq): the
    data, its `StructFields` (the checkpoint's `fields`) and the model `build_model` makes
    from their sizes."""

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.data = data
        self.fields = data.fields
        self.has_dev = bool(data.dev)

    @staticmethod
    def load(cfg: Config) -> StructData:
        """`load_structured(cfg)`."""
        return load_structured(cfg)

    def build_model(self) -> torch.nn.Module:
        """`build_model(model config, fields.sizes())`."""
        return build_model(self.cfg.model, self.fields.sizes())


class _ExampleStructure(_Structured):
    """The common part of classify, tag and generate: StructData examples batched by token
    count (`struct_batches`, similar lengths together, the order drawn from the Trainer's
    rng) and padded (`collate_struct`)."""

    def epoch(self, rng: random.Random) -> list[list[int]]:
        """Index lists of the training examples by token count."""
        return struct_batches(self.name, self.data.train, self.cfg.train.batch_tokens, rng)

    def batch(self, item: list[int]) -> Any:
        """The padded batch of those training examples."""
        return collate_struct(self.name, [self.data.train[i] for i in item], item,
                              self.data.features.get("train"))

    def batch_tokens(self, batch: Any, n: int) -> int:
        """The batch's real input (classify, tag) or target (generate) tokens."""
        return batch.n_tokens

    def dev_loss(self, model: torch.nn.Module) -> float:
        """Mean dev loss per scored target."""
        return self.validate(model).get("loss", 0.0)

    def _eval_args(self) -> dict[str, Any]:
        return {"batch_tokens": self.cfg.train.batch_tokens, "device": self.device,
                "bf16": self.cfg.train.bf16}

    def describe(self) -> str:
        """Vocabulary and label sizes."""
        sizes = self.fields.sizes()
        return ", ".join(f"{k} {v}" for k, v in sizes.items() if v)


def _floats(result: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    """The scalar metrics of an evaluate_* result (validation logs numbers only)."""
    return {k: float(result[k]) for k in keys if k in result}


class ClassifyStructure(_ExampleStructure):
    """Many-to-one: a text -> one label (Classifier: encoder, c, a softmax over labels).
    Loss: cross-entropy per item (n = items). Validation: dev loss, accuracy and macro-F1."""

    name = "classify"

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy of the labels; n = items in the batch."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = model(batch.src, batch.src_len)
        return token_nll(logits, batch.labels, t.label_smoothing, ignore_index=TAG_PAD)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per item), accuracy and macro-F1 (percent)."""
        if not self.data.dev:
            return {}
        res = evaluate_classifier(model, self.data.dev, len(self.fields.labels),
                                  **self._eval_args())
        return _floats(res, ("loss", "accuracy", "macro_f1"))


class TagStructure(_ExampleStructure):
    """Synchronous many-to-many: a tag for every word (Tagger: word embeddings joined with a
    character view of each word, a bidirectional encoder, a softmax at every position).
    Loss: cross-entropy per word. Validation: dev loss, per-token accuracy and the accuracy
    on dev words never seen (as written) in training."""

    name = "tag"

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.dev_unseen = [self.fields.unseen(words) for words, _, _ in data.items.get("dev", [])]

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy of the tags; n = real words."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = model(batch.words, batch.lengths, batch.chars, batch.char_len)
        return token_nll(logits, batch.tags, t.label_smoothing, ignore_index=TAG_PAD)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per word), token_acc and unseen_acc (percent)."""
        if not self.data.dev:
            return {}
        res = evaluate_tagger(model, self.data.dev, self.dev_unseen or None,
                              **self._eval_args())
        return _floats(res, ("loss", "token_acc", "unseen_acc"))


class GenerateStructure(_ExampleStructure):
    """One-to-many: one label (or feature vector) -> a sequence (ConditionalGenerator: c from
    the condition starts the decoder). Loss: token cross-entropy of the targets (eos
    included). Validation: dev loss and perplexity."""

    name = "generate"

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed token cross-entropy; n = target tokens."""
        t = self.cfg.train
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = model(batch.cond, batch.tgt_in)
        return token_nll(logits, batch.tgt_out, t.label_smoothing)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (per token) and perplexity."""
        if not self.data.dev:
            return {}
        res = evaluate_generator(model, self.data.dev, self.data.features.get("dev"),
                                 **self._eval_args())
        return _floats(res, ("loss", "ppl"))


# --- lm: truncated backpropagation through time ------------------------------------------------


def _to_device(state: Any, device: torch.device) -> Any:
    """A hidden state from a checkpoint (None, a tensor or an LSTM's (h, c)) on `device`."""
    if isinstance(state, (list, tuple)):
        return tuple(s.to(device) for s in state)
    return None if state is None else state.to(device)


class LMStructure(_Structured):
    """Synchronous many-to-many predicting the next token (LanguageModel: one unidirectional
    RNN), trained with truncated backpropagation through time: the training text is cut into
    `train.batch_tokens // train.bptt` parallel contiguous streams (`lm_stream_batches`; each
    epoch starts the cuts at an offset below train.bptt drawn from the Trainer's rng), a
    batch is the next `train.bptt` tokens of every stream, and the hidden state is carried
    (detached) from one batch to the next, reset at each epoch's start and after a skipped
    (non-finite) step. Resumable checkpoints store that state (`lm_state`), so a resume is
    exact. Validation: dev cross-entropy, perplexity and bits per character over the dev text
    as streams with the state carried. The checkpoint's `fields` is `StructFields.state()`."""

    name = "lm"

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.has_dev = len(data.dev) > 1  # a next-token target needs two tokens
        self.bptt = cfg.train.bptt
        self.streams = max(1, cfg.train.batch_tokens // cfg.train.bptt)
        self._cut: tuple[int, list] | None = None  # (offset, its batches), the current epoch's
        self.carry: Any = None  # the hidden state after the last trained batch (detached)
        self._pending: Any = None

    def _batches(self, offset: int) -> list:
        if self._cut is None or self._cut[0] != offset:
            self._cut = (offset, lm_stream_batches(self.data.train, self.streams, self.bptt,
                                                   offset))
        return self._cut[1]

    def epoch(self, rng: random.Random) -> list[tuple[int, int]]:
        """(offset, batch number) of each batch of one pass over the training text."""
        room = len(self.data.train) - 1 - self.streams * self.bptt  # keep a full first batch
        offset = rng.randrange(min(self.bptt, room)) if room > 1 else 0
        return [(offset, k) for k in range(len(self._batches(offset)))]

    def batch(self, item: tuple) -> Any:
        """The LMBatch of that cut (inputs and targets (B, T)); an item from `share` also
        names the rows (streams) lo..hi of this rank."""
        offset, k, *rows = item
        b = self._batches(offset)[k]
        if not rows:
            return b
        lo, hi = rows
        return LMBatch(b.inputs[lo:hi], b.targets[lo:hi], b.index)

    def rows(self, rank: int, world: int) -> tuple[int, int]:
        """The streams rank `rank` of `world` trains: contiguous, as even as can be (so the
        gathered hidden states of the ranks, in rank order, are the global batch's)."""
        base, extra = divmod(self.streams, world)
        lo = rank * base + min(rank, extra)
        return lo, lo + base + (rank < extra)

    def share(self, item: Any, rank: int, world: int) -> tuple[Any, bool]:
        """This rank's streams of the batch."""
        return (*item, *self.rows(rank, world)), False

    def check_ranks(self, world: int) -> None:
        """Every rank needs a stream of its own."""
        if self.streams < world:
            raise ConfigError(f"train.batch_tokens // train.bptt = {self.streams} parallel "
                              f"streams cannot be shared by {world} ranks; raise "
                              f"train.batch_tokens to at least {world * self.bptt}")

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy, starting from the carried state (none at an
        epoch's first batch); n = B x T."""
        t = self.cfg.train
        batch = batch.to(self.device)
        start = None if batch.index == 0 else self.carry
        with autocast(t.bf16, self.device.type):
            logits, state = model(batch.inputs, start)
        self._pending = detach_hidden(state)
        return token_nll(logits, batch.targets, t.label_smoothing)

    def step_done(self, ok: bool) -> None:
        """Carry the new state, or after a skipped step none (it may hold NaNs)."""
        self.carry = self._pending if ok else None
        self._pending = None

    def dev_loss(self, model: torch.nn.Module) -> float:
        """Mean dev cross-entropy per token."""
        return self.validate(model).get("loss", 0.0)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (nats per token), perplexity and bits per character."""
        if not self.has_dev:
            return {}
        res = evaluate_lm(model, self.data.dev, self.streams, self.bptt,
                          self.chars_per_token(), self.device, self.cfg.train.bf16)
        return _floats(res, ("loss", "ppl", "bpc"))

    def chars_per_token(self) -> float:
        """Characters per dev token: 1 for character tokens, else the dev text's characters
        over its tokens (a line break counts one)."""
        tok = self.fields.tok
        if tok is not None and tok.kind == "char":
            return 1.0
        text = self.data.items.get("dev") or ""
        return len(text) / max(len(self.data.dev), 1)

    def resume_state(self, ranks: Ranks = SINGLE) -> dict[str, Any]:
        """`lm_state`: the carried hidden state of all streams (None at an epoch start; under
        torchrun the ranks' rows, gathered in rank order)."""
        if ranks.world == 1:
            return {"lm_state": self.carry}
        parts = ranks.gather(_to_device(self.carry, torch.device("cpu")))
        if any(p is None for p in parts):
            return {"lm_state": None}
        if isinstance(parts[0], tuple):  # an LSTM's (h, c), each (layers, rows, hidden)
            return {"lm_state": tuple(torch.cat([p[i] for p in parts], 1)
                                      for i in range(len(parts[0])))}
        return {"lm_state": torch.cat(parts, 1)}

    def restore(self, ckpt: dict[str, Any], ranks: Ranks = SINGLE) -> None:
        """Carry the checkpoint's `lm_state` on: this rank's rows of it."""
        state = ckpt.get("lm_state")
        if state is not None and ranks.world > 1:
            lo, hi = self.rows(ranks.rank, ranks.world)
            state = (tuple(s[:, lo:hi] for s in state) if isinstance(state, (list, tuple))
                     else state[:, lo:hi])
        self.carry = _to_device(state, self.device)

    def describe(self) -> str:
        """Vocabulary size, streams and bptt."""
        return (f"vocab {len(self.fields.vocab)}; {self.streams} streams x bptt {self.bptt}, "
                f"{len(self.data.train)} training tokens")


STRUCTURES: dict[str, type[Structure]] = {
    "seq2seq": Seq2SeqStructure, "classify": ClassifyStructure, "tag": TagStructure,
    "lm": LMStructure, "generate": GenerateStructure}
"""The structure class of each `model.structure`."""


def structure_for(cfg: Config) -> type[Structure]:
    """The Structure class of `cfg.model.structure` (seq2seq with `data.streaming`: the
    streamed one)."""
    name = cfg.model.structure
    if name not in STRUCTURES:
        raise ConfigError(f"model.structure = {name!r} is not allowed: one of "
                          f"{', '.join(STRUCTURES)}")
    if cfg.data.streaming:
        if name != "seq2seq":
            raise ConfigError(f"data.streaming: true is for seq2seq training files; "
                              f"model.structure = {name} reads its data in memory (set "
                              "data.streaming: false)")
        return StreamedSeq2SeqStructure
    return STRUCTURES[name]
