"""Tests for tandem.config: defaults, YAML, --set overrides, and every refusal naming its key."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.config import (
    Config,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    Range,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
)
from tandem.errors import ConfigError, TandemError

REPO = Path(__file__).resolve().parents[1]
TASK = ["data.task=reverse"]  # the smallest valid config: everything else has a default


def load(*overrides: str) -> Config:
    return load_config(None, [*TASK, *overrides])


def refused(*overrides: str, path: str | Path | None = None) -> str:
    """The ConfigError message for a config that must be refused."""
    with pytest.raises(ConfigError) as info:
        load_config(path, [*TASK, *overrides] if path is None else list(overrides))
    return str(info.value)


# --- defaults and YAML ---------------------------------------------------------------------


def test_defaults_match_the_dataclasses():
    cfg = load()
    assert cfg.data == DataConfig(task="reverse")
    assert cfg.model == ModelConfig()
    assert cfg.train == TrainConfig()
    assert cfg.decode == DecodeConfig()
    assert cfg.name == "run" and cfg.run_dir is None
    assert cfg.out_dir == Path("runs/run")


def test_no_data_at_all_is_refused():
    with pytest.raises(ConfigError, match=r"^data: set data\.task .*data\.corpus .*data\.train"):
        load_config(None)


def test_the_task_names_config_checks_are_the_built_in_tasks():
    from tandem.config import TASK_NAMES
    from tandem.data.tasks import TASKS

    assert sorted(TASK_NAMES) == sorted(TASKS)


def test_config_error_is_a_tandem_error():
    assert issubclass(ConfigError, TandemError)


def test_shipped_reverse_config_loads():
    cfg = load_config(REPO / "configs" / "reverse.yaml")
    assert cfg.name == "reverse"
    assert cfg.data.task == "reverse"
    assert cfg.model.cell == "gru" and cfg.model.hidden_size == 128
    assert cfg.model.enc_hidden_size is None
    assert cfg.train.max_minutes == 3.0 and isinstance(cfg.train.max_minutes, float)
    assert cfg.decode.max_len_a == 1.5 and cfg.decode.max_len_b == 5


def test_yaml_file_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "name: tiny\n"
        "run_dir: somewhere\n"
        "data:\n  task: sort\n  task_sizes: [10, 2, 3]\n  lowercase: true\n"
        "model:\n  cell: rnn\n  hidden_size: 64\n  dropout: 0\n  enc_hidden_size: null\n"
        "train:\n  lr: 0.01\n  max_minutes: 2\n"
        "decode:\n  beam: 3\n  nbest: 2\n",
        encoding="utf-8",
    )
    cfg = load_config(p)
    assert cfg.name == "tiny" and cfg.out_dir == Path("somewhere")
    assert cfg.data.task == "sort" and cfg.data.task_sizes == [10, 2, 3] and cfg.data.lowercase
    assert cfg.model.cell == "rnn" and cfg.model.hidden_size == 64
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)  # ints widen
    assert cfg.train.lr == 0.01 and cfg.train.max_minutes == 2.0
    assert isinstance(cfg.train.max_minutes, float)
    assert cfg.decode.beam == 3 and cfg.decode.nbest == 2
    assert cfg.train.max_steps == TrainConfig().max_steps  # untouched keys keep defaults


def test_empty_yaml_file_and_empty_sections_mean_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing\n", encoding="utf-8")
    assert load_config(p, TASK).model == ModelConfig()
    p.write_text("data:\n  task: copy\nmodel:\ntrain: null\n", encoding="utf-8")
    cfg = load_config(p)
    assert cfg.model == ModelConfig() and cfg.train == TrainConfig()


def test_to_dict_round_trips():
    cfg = load("model.hidden_size=64", "model.enc_hidden_size=32", "train.max_minutes=1.5")
    assert from_dict(cfg.to_dict()) == cfg


# --- --set overrides -----------------------------------------------------------------------


def test_overrides_parse_yaml_scalars():
    cfg = load(
        "model.hidden_size=512",  # int
        "model.dropout=0.25",  # float
        "train.lr=1",  # int widened to float
        "model.bidirectional=false",  # bool
        "train.progress=true",
        "train.valid_max_sentences=null",  # null
        "train.max_minutes=~",  # YAML null
        "data.task_sizes=[30, 4, 5]",  # list
        "name=my run",  # a plain string with a space
        "run_dir=out/x=1",  # only the first '=' splits
    )
    assert cfg.model.hidden_size == 512
    assert cfg.model.dropout == 0.25
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.model.bidirectional is False
    assert cfg.train.progress is True
    assert cfg.train.valid_max_sentences is None
    assert cfg.train.max_minutes is None
    assert cfg.data.task_sizes == [30, 4, 5]
    assert cfg.name == "my run"
    assert cfg.run_dir == "out/x=1"


def test_overrides_win_over_the_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  task: copy\nmodel:\n  hidden_size: 64\n  cell: gru\n", encoding="utf-8")
    cfg = load_config(p, ["model.hidden_size=32", "decode.beam=2", "data.task=reverse"])
    assert cfg.model.hidden_size == 32 and cfg.model.cell == "gru"
    assert cfg.decode.beam == 2 and cfg.data.task == "reverse"


def test_apply_overrides_builds_nested_sections():
    raw = apply_overrides({"model": {"cell": "gru"}}, ["model.hidden_size=8", "train.lr=0.5"])
    assert raw == {"model": {"cell": "gru", "hidden_size": 8}, "train": {"lr": 0.5}}
    raw = apply_overrides({}, ["a.b.c=[1, 2]", "x=yes", "y=", "z=[unclosed"])
    assert raw == {"a": {"b": {"c": [1, 2]}}, "x": True, "y": None, "z": "[unclosed"}


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match=r"^--set 'model\.hidden_size': expected KEY=VALUE"):
        apply_overrides({}, ["model.hidden_size"])


def test_override_through_a_scalar_is_refused():
    with pytest.raises(ConfigError, match=r"^--set model\.hidden_size\.x: 'hidden_size' is not"):
        apply_overrides({"model": {"hidden_size": 3}}, ["model.hidden_size.x=1"])


def test_override_of_a_whole_section_by_a_scalar():
    msg = refused("model=3")
    assert "model" in msg and "mapping" in msg


def test_override_scientific_notation_float():
    assert load("train.lr=1e-3").train.lr == pytest.approx(1e-3)


def test_override_into_an_empty_yaml_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  task: copy\nmodel:\n", encoding="utf-8")
    assert load_config(p, ["model.hidden_size=32"]).model.hidden_size == 32


# --- unknown keys and wrong types ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "an_allowed_key"),
    [
        ("hiden_size=3", "hiden_size", "model"),
        ("model.hiden_size=3", "model.hiden_size", "hidden_size"),
        ("data.tsk=copy", "data.tsk", "task"),
        ("train.learning_rate=0.1", "train.learning_rate", "lr"),
        ("decode.beams=3", "decode.beams", "nbest"),
    ],
)
def test_unknown_key_names_the_dotted_key_and_lists_allowed(override, key, an_allowed_key):
    msg = refused(override)
    assert f"'{key}'" in msg
    assert "allowed" in msg and an_allowed_key in msg


def test_unknown_key_in_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  task: copy\nmodel:\n  hiden_size: 3\n", encoding="utf-8")
    msg = refused(path=p)
    assert "model.hiden_size" in msg
    for allowed in ("cell", "emb_size", "hidden_size", "bidirectional", "tie_embeddings"):
        assert allowed in msg


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.hidden_size=big", "model.hidden_size"),
        ("model.hidden_size=2.5", "model.hidden_size"),
        ("model.hidden_size=true", "model.hidden_size"),  # bool is not an int here
        ("model.bidirectional=3", "model.bidirectional"),
        ("model.bidirectional=yes please", "model.bidirectional"),
        ("model.dropout=high", "model.dropout"),
        ("model.dropout=false", "model.dropout"),
        ("model.cell=transformer", "model.cell"),
        ("data.task_sizes=[1, x, 3]", "data.task_sizes[1]"),
        ("data.task_sizes=5", "data.task_sizes"),
        ("name=[a]", "name"),
        ("train.max_minutes=soon", "train.max_minutes"),
    ],
)
def test_wrong_type_names_the_key(override, key):
    assert re.match(rf"{re.escape(key)}: expected ", refused(override))


def test_wrong_type_message_says_what_was_expected():
    assert "expected int" in refused("model.hidden_size=big")
    assert "expected bool" in refused("model.bidirectional=3")
    assert "'rnn'" in refused("model.cell=transformer")


# --- every key: a wrong type and an impossible value are refused, naming the key -----------

SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                   "decode": DecodeConfig}


def _hints() -> dict[str, typing.Any]:
    """Every dotted key of the config and its annotation, top-level keys included."""
    out = {}
    top = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in SECTION_CLASSES:
            hints = typing.get_type_hints(SECTION_CLASSES[f.name])
            out.update({f"{f.name}.{g.name}": hints[g.name]
                        for g in dataclasses.fields(SECTION_CLASSES[f.name])})
        else:
            out[f.name] = top[f.name]
    return out


HINTS = _hints()


def _raw(settings: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """A raw config dict: the smallest valid one (data.task) with dotted keys set."""
    raw: dict[str, typing.Any] = {"data": {"task": "reverse"}}
    for key, value in settings.items():
        *sections, name = key.split(".")
        node = raw
        for s in sections:
            node = node.setdefault(s, {})
        node[name] = value
    return raw


def _allows(tp: typing.Any, value: typing.Any) -> bool:
    """Whether `value` has a type annotation `tp` admits (ints count as floats, bools as
    neither), as a user reads the reference: the test's own model, not config.py's code."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_allows(a, value) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin is list:
        return isinstance(value, list) and all(_allows(typing.get_args(tp)[0], v) for v in value)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


WRONG_TYPES = ["not-a-value", 2.5, 7, True, None, [1], {"k": 1}]


@pytest.mark.parametrize("key", sorted(HINTS))
def test_every_key_refuses_a_wrong_type_naming_the_key(key):
    wrong = [v for v in WRONG_TYPES if not _allows(HINTS[key], v)]
    assert len(wrong) >= 3, (key, HINTS[key])
    for value in wrong:
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)}(\[\d+\])?: expected "):
            from_dict(_raw({key: value}))


def _bad(key: str, value: typing.Any, also: dict | None = None, named: str | None = None):
    """A value of the right type that validate() must refuse. `also`: other keys it needs;
    `named`: the key the message starts with when the refusal is about a pair of keys (the
    message must still name `key`)."""
    return pytest.param(key, value, also or {}, named or key,
                        id=f"{key}={value!r}" + (f"+{also}" if also else ""))


# A data file instead of the built-in task (which is seq2seq's), for the other structures.
FILE = {"data.task": None, "data.train": "train.txt"}

IMPOSSIBLE = [
    _bad("model.structure", "pyramid"),
    _bad("data.task", "shuffle"),
    _bad("data.task_sizes", [10, 0, 1]),
    _bad("data.task_sizes", [10, 1]),
    _bad("data.task_sizes", [-1, 1, 1]),
    _bad("data.task_min_len", 0),
    _bad("data.task_max_len", 0),
    _bad("data.task_max_len", 5, {"data.task_min_len": 10}),
    _bad("data.corpus_dev_words", 0),
    _bad("data.src_suffix", "de", named="data.tgt_suffix"),
    _bad("data.tgt_suffix", "en"),
    _bad("data.sp_vocab_size", 0),
    _bad("data.src_min_freq", 0),
    _bad("data.shuffle_buffer", 0),
    _bad("data.vocab_sample_lines", 0),
    _bad("train.dist_timeout_minutes", 0),
    _bad("train.dist_timeout_minutes", math.inf),
    _bad("data.tgt_min_freq", 0),
    _bad("data.src_max_vocab", 0),
    _bad("data.src_max_vocab", -3),
    _bad("data.tgt_max_vocab", 0),
    _bad("data.max_src_len", 0),
    _bad("data.max_tgt_len", 0),
    _bad("data.corpus", "sst2"),  # a classify corpus; the default structure is seq2seq
    _bad("data.lm_dev_fraction", 1.0),
    _bad("data.lm_dev_fraction", -0.1),
    _bad("data.frame_dev_fraction", 1.0),
    _bad("data.src_kind", "frames", {**FILE, "model.structure": "lm"}),
    _bad("data.features", "f.npy"),  # only for model.structure = generate
    _bad("data.dev_features", "d.npy"),  # only with data.features
    _bad("data.test_features", "t.npy"),
    _bad("model.emb_size", 0),
    _bad("model.hidden_size", 0),
    _bad("model.hidden_size", -4),
    _bad("model.hidden_size", 33, {"model.bidirectional": True}, named="model.enc_hidden_size"),
    _bad("model.enc_hidden_size", 0),
    _bad("model.enc_hidden_size", -2),
    _bad("model.enc_hidden_size", 7, {"model.bidirectional": True}),
    _bad("model.enc_layers", 0),
    _bad("model.dec_layers", 0),
    _bad("model.dropout", 1.0),
    _bad("model.dropout", 1.5),
    _bad("model.dropout", -0.1),
    _bad("model.dropout", math.nan),
    # 'last' copies the encoder state: sizes and layer counts must match
    _bad("model.bridge", "last", {"model.enc_hidden_size": 128, "model.hidden_size": 256}),
    _bad("model.bridge", "last", {"model.enc_layers": 2, "model.dec_layers": 1}),
    _bad("model.bridge", "zero", {"model.conditioning": "init"}),
    _bad("model.bridge", "zero", {"model.conditioning": "every_step"}),
    _bad("model.conditioning", "init", {"model.input_feeding": True},
         named="model.input_feeding"),
    _bad("model.input_feeding", True, {"model.conditioning": "every_step"}),
    _bad("model.attention", "dot", {"model.enc_hidden_size": 64, "model.hidden_size": 128}),
    # model.structure: keys of a part the structure does not have are refused when set
    _bad("model.char_emb_size", 32),  # tag only
    _bad("model.char_emb_size", -1, {**FILE, "model.structure": "tag"}),
    _bad("model.char_hidden_size", 64),
    _bad("model.char_hidden_size", 7, {**FILE, "model.structure": "tag"}),
    _bad("model.char_hidden_size", -2, {**FILE, "model.structure": "tag"}),
    _bad("model.num_features", 4),  # generate only
    _bad("model.num_features", -1, {**FILE, "model.structure": "generate"}),
    _bad("model.conditioning", "attention", {**FILE, "model.structure": "classify"}),
    _bad("model.conditioning", "attention", {**FILE, "model.structure": "generate"}),
    _bad("model.conditioning", "init", {**FILE, "model.structure": "lm"}),
    _bad("model.bidirectional", True, {**FILE, "model.structure": "lm"}),
    _bad("model.bidirectional", True, {**FILE, "model.structure": "generate"}),
    _bad("model.bridge", "zero", {**FILE, "model.structure": "classify"}),
    _bad("model.bridge", "linear", {**FILE, "model.structure": "tag"}),
    _bad("model.attention", "dot", {**FILE, "model.structure": "tag"}),
    _bad("model.enc_layers", 2, {**FILE, "model.structure": "lm"}),
    _bad("model.dec_layers", 2, {**FILE, "model.structure": "classify"}),
    _bad("model.enc_hidden_size", 64, {**FILE, "model.structure": "generate"}),
    _bad("model.input_feeding", True, {**FILE, "model.structure": "lm"}),
    _bad("model.tie_embeddings", True, {**FILE, "model.structure": "tag"}),
    _bad("train.batch_tokens", 0),
    _bad("train.max_steps", 0),
    _bad("train.max_epochs", 0),
    _bad("train.max_minutes", 0),
    _bad("train.max_minutes", -1.0),
    _bad("train.lr", 0),
    _bad("train.lr", math.nan),
    _bad("train.lr", math.inf),
    _bad("train.weight_decay", -1),
    _bad("train.weight_decay", math.inf),
    _bad("train.lr_decay", 0),
    _bad("train.lr_decay", 5),
    _bad("train.lr_patience", 0),
    _bad("train.min_lr", -1e-5),
    _bad("train.min_lr", math.inf),
    _bad("train.lr_horizon", "minutes"),  # needs train.max_minutes
    _bad("train.warmup_steps", -1),
    _bad("train.clip_grad", -1.0),
    _bad("train.clip_grad", math.nan),
    _bad("train.clip_grad", math.inf),
    _bad("train.label_smoothing", 1),
    _bad("train.label_smoothing", -0.1),
    _bad("train.teacher_forcing", 1.5),
    _bad("train.teacher_forcing", -0.1),
    _bad("train.tf_min", 1.5),
    _bad("train.tf_min", -0.5),
    _bad("train.tf_k", 0),
    _bad("train.tf_k", math.inf),
    _bad("train.valid_every", 0),
    _bad("train.bptt", 0),
    _bad("train.valid_metric", "accuracy"),
    _bad("train.valid_max_sentences", 0),
    _bad("train.valid_max_sentences", -1),
    _bad("train.valid_beam", 0),
    _bad("train.patience", 0),
    _bad("train.keep_last", -1),
    _bad("train.max_nonfinite_steps", 0),
    _bad("train.log_every", 0),
    _bad("train.seed", 2**64),
    _bad("train.seed", -(2**63) - 1),
    _bad("train.threads", 0),
    _bad("train.device", "gpu"),
    _bad("train.device", "cuda:x"),
    _bad("decode.beam", 0),
    _bad("decode.nbest", 0),
    _bad("decode.nbest", 3, {"decode.beam": 2}),
    _bad("decode.max_len_a", -1.0),
    _bad("decode.max_len_a", math.inf),
    _bad("decode.max_len_b", -1),
    _bad("decode.length_penalty", -0.5),
    _bad("decode.length_penalty", 11.0),
    _bad("decode.coverage_penalty", -0.5),
    _bad("decode.coverage_penalty", math.nan),
    _bad("decode.no_repeat_ngram_size", -1),
    _bad("decode.batch_size", 0),
    _bad("decode.temperature", 0),
    _bad("decode.temperature", -1.0),
    _bad("decode.temperature", math.inf),
    _bad("decode.top_k", -1),
]

# Keys with no range beyond their type (bools and Literals need no entry): an example value
# that must be accepted, and why any value of the type is fine.
NO_RANGE = {
    "name": ("any name", "a run name; the folder is runs/<name> unless run_dir is set"),
    "run_dir": ("out/x=1", "any folder"),
    "data.task_seed": (-5, "any int seeds random.Random"),
    "data.corpus_dir": ("nowhere", "checked when the corpus is read (a DataError)"),
    "data.train": ("missing.tsv", "checked when the file is read (a DataError naming it)"),
    "data.dev": ("missing.tsv", "the same"),
    "data.test": ("missing.tsv", "the same"),
    "data.split_seed": (-3, "any int seeds the hash split"),
}


def _only_type(tp: typing.Any) -> bool:
    """bool and Literal keys (or their optional forms): the type check is the whole check."""
    args = [a for a in (typing.get_args(tp) if typing.get_origin(tp) in (
        typing.Union, types.UnionType) else (tp,)) if a is not type(None)]
    return all(a is bool or typing.get_origin(a) is typing.Literal for a in args)


@pytest.mark.parametrize(("key", "value", "also", "named"), IMPOSSIBLE)
def test_every_range_refuses_an_impossible_value_naming_the_key(key, value, also, named):
    with pytest.raises(ConfigError, match=rf"^{re.escape(named)}\b") as info:
        from_dict(_raw({**also, key: value}))
    assert key in str(info.value)
    if not also:  # alone, the value is the problem: the message shows it and what is allowed
        assert re.match(rf"{re.escape(named)} = .+ is not allowed: \S", str(info.value))


def test_every_key_has_a_range_test_or_says_why_it_has_none():
    ranged = {p.values[0] for p in IMPOSSIBLE}
    typed_only = {k for k, tp in HINTS.items() if _only_type(tp)}
    unknown = set(NO_RANGE) - set(HINTS)
    assert not unknown, f"NO_RANGE names keys the config does not have: {sorted(unknown)}"
    assert not ranged - set(HINTS), f"IMPOSSIBLE names unknown keys: {ranged - set(HINTS)}"
    assert not (ranged | typed_only) & set(NO_RANGE), "a key is both ranged and unranged"
    untested = set(HINTS) - ranged - typed_only - set(NO_RANGE)
    assert not untested, (f"keys with neither an impossible value in IMPOSSIBLE nor a reason in "
                          f"NO_RANGE: {sorted(untested)}")


@pytest.mark.parametrize("key", sorted(NO_RANGE))
def test_keys_without_a_range_accept_any_value_of_their_type(key):
    value = NO_RANGE[key][0]
    assert _allows(HINTS[key], value)
    cfg = from_dict(_raw({key: value}))
    section, _, name = key.rpartition(".")
    assert getattr(getattr(cfg, section) if section else cfg, name) == value


def test_impossible_value_messages_explain():
    assert "one of" in refused("data.task=shuffle") and "reverse" in refused("data.task=shuffle")
    assert "exact_match" in refused("train.valid_metric=accuracy")
    assert "even" in refused("model.enc_hidden_size=7")
    assert "[1, beam=2]" in refused("decode.beam=2", "decode.nbest=3")
    assert "an integer >= 1" in refused("model.dec_layers=0")
    assert "0 = no clipping" in refused("train.clip_grad=-1")


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.bridge=last", "model.enc_hidden_size=128", "model.hidden_size=128"],
        ["model.bridge=zero", "model.conditioning=attention"],
        ["model.attention=dot", "model.enc_hidden_size=64", "model.hidden_size=64"],
        ["model.attention=dot", "model.enc_hidden_size=64", "model.conditioning=init"],
        ["model.enc_hidden_size=7", "model.bidirectional=false"],
        ["decode.beam=3", "decode.nbest=3"],
        ["train.valid_metric=loss"],
        ["train.valid_metric=bleu_lc"],
        ["model.dropout=0"],
    ],
)
def test_boundary_values_are_accepted(overrides):
    cfg = load(*overrides)
    for o in overrides:  # accepted as given, not silently replaced
        key, value = o.split("=", 1)
        section, name = key.split(".")
        got = getattr(getattr(cfg, section), name)
        want = {"true": True, "false": False}.get(value, value)
        assert str(got) == str(want) or got == type(got)(want), (key, got, value)


def test_huge_int_for_a_float_key():
    with pytest.raises(ConfigError, match=r"^train\.lr: .* too large"):
        from_dict({"data": {"task": "reverse"}, "train": {"lr": 10**400}})


# --- every number's bounds sit on its annotation, and one check holds every key to them -----


def _number_and_range(tp: typing.Any) -> tuple[type | None, Range | None]:
    """(int or float, its Range) of an annotation `Annotated[int, Range(...)]`, optionally
    `| None`; (the number type, None) for a bare number; (None, None) for anything else."""
    args = (typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType)
            else (tp,))
    for arg in args:
        meta: tuple = ()
        if typing.get_origin(arg) is typing.Annotated:
            arg, *meta = typing.get_args(arg)
        if arg in (int, float):
            return arg, next((m for m in meta if isinstance(m, Range)), None)
    return None, None


NUMBERS = {f"{s}.{f.name}": _number_and_range(typing.get_type_hints(cls, include_extras=True)
                                               [f.name])
           for s, cls in SECTION_CLASSES.items() for f in dataclasses.fields(cls)}
NUMBERS = {key: nr for key, nr in NUMBERS.items() if nr[0] is not None}


def test_every_number_of_every_section_has_a_range():
    assert {"data.max_src_len", "model.dropout", "train.seed", "train.max_minutes",
            "decode.beam"} <= set(NUMBERS)  # ints, floats and optional ones are all seen
    missing = sorted(key for key, (_, rng) in NUMBERS.items() if rng is None)
    assert not missing, (f"number keys without a Range on their annotation (write "
                         f"`typing.Annotated[int, Range(ge=1)]`): {missing}")


# A config key needs these others set for its bound itself to be allowed (the refusals of
# several keys together are tested above): an odd size is refused by a bidirectional encoder,
# and the tagger's and the generator's keys apply to their structure only.
BOUND_CONTEXT = {
    "model.hidden_size": {"model.bidirectional": False},
    "model.enc_hidden_size": {"model.bidirectional": False},
    "model.char_emb_size": {**FILE, "model.structure": "tag"},
    "model.char_hidden_size": {**FILE, "model.structure": "tag"},
    "model.num_features": {**FILE, "model.structure": "generate"},
}


def _step(value: float, number: type, direction: float) -> float:
    """The next value of the key's type past `value` towards `direction` (+inf or -inf)."""
    if number is int:
        return value + (1 if direction > 0 else -1)
    return math.nextafter(float(value), direction)


def _bound_cases():
    """(key, bound name, a value just outside the bound, the closest allowed value) for every
    bound of every Range: the bound itself is allowed for ge/le, refused for gt/lt."""
    for key, (number, rng) in sorted(NUMBERS.items()):
        if rng is None:  # test_every_number_of_every_section_has_a_range names it
            continue
        for name, inward in (("ge", math.inf), ("gt", math.inf), ("le", -math.inf),
                             ("lt", -math.inf)):
            bound = getattr(rng, name)
            if bound is None:
                continue
            if name in ("ge", "le"):
                outside, inside = _step(bound, number, -inward), bound
            else:
                outside, inside = bound, _step(bound, number, inward)
            outside, inside = number(outside), number(inside)
            yield pytest.param(key, outside, inside, id=f"{key}-{name}")


@pytest.mark.parametrize(("key", "outside", "inside"), list(_bound_cases()))
def test_every_bound_refuses_the_value_just_outside_and_allows_the_bound(key, outside, inside):
    number, rng = NUMBERS[key]
    also = BOUND_CONTEXT.get(key, {})
    allowed = rng.describe(number is int)
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} = {re.escape(repr(outside))} "
                                          rf"is not allowed: {re.escape(allowed)}$"):
        from_dict(_raw({**also, key: outside}))
    section, name = key.split(".")
    assert getattr(getattr(from_dict(_raw({**also, key: inside})), section), name) == inside


def test_every_section_has_bounds_of_each_kind():
    """The bound test above reaches every section and every kind of bound (so it cannot pass
    by finding no Ranges)."""
    cases = [p.id for p in _bound_cases()]
    for section in SECTION_CLASSES:
        assert any(c.startswith(f"{section}.") for c in cases), section
    for name in ("ge", "gt", "le", "lt"):
        assert any(c.endswith(f"-{name}") for c in cases), name


def test_range_words():
    assert Range(ge=1).describe(True) == "an integer >= 1"
    assert Range(ge=0, lt=1).describe(False) == "a number in [0, 1)"
    assert Range(gt=0, le=1).describe(False) == "a number in (0, 1]"
    assert Range(gt=0, note="null = no limit").describe(False) == "a number > 0 (null = no limit)"
    assert Range(lt=5).bounds() == "< 5" and Range(le=0.5).bounds() == "<= 0.5"
    assert Range(ge=-2**63, lt=2**64).bounds() == (
        "in [-9223372036854775808, 18446744073709551616)")
    assert Range(note="any integer").describe(True) == "an integer (any integer)"
    assert Range(ge=0, lt=1).allows(0.0) and not Range(ge=0, lt=1).allows(1.0)
    assert not Range(ge=0).allows(math.inf) and not Range().allows(math.nan)


# --- files ---------------------------------------------------------------------------------


def test_config_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"^config file not found: ") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_config_path_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"^config file not found: "):
        load_config(tmp_path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path, text):
    p = tmp_path / "list.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="the top level must be a mapping of sections") as info:
        load_config(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("text", ["model: [unclosed\n", "a: b: c\n", "\tmodel: 1\n"])
def test_invalid_yaml(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(p)
    assert str(p) in str(info.value)


def test_yaml_with_invalid_utf8(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


# --- property: from_dict refuses garbage only with ConfigError -----------------------------

SECTIONS = SECTION_CLASSES
TOP_KEYS = [f.name for f in dataclasses.fields(Config)]
SECTION_KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}
ALL_KEYS = sorted({*TOP_KEYS, *(k for keys in SECTION_KEYS.values() for k in keys)})
# Values that mean something somewhere, so generated configs often get as far as validate().
WORDS = ["reverse", "copy", "gru", "lstm", "rnn", "last", "linear", "pooled", "zero", "init",
         "every_step", "attention", "dot", "general", "additive", "char", "word",
         "sentencepiece", "exact_match", "bleu", "loss", "skip", "error", "adam", "plateau"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=600),
    st.integers(min_value=-(10**12), max_value=10**12),  # beyond float range
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=6),
)
keys = st.one_of(st.sampled_from(ALL_KEYS), st.text(max_size=6), st.integers(-2, 2))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def _typed(tp) -> st.SearchStrategy:
    """Values of roughly the right type for annotation `tp` (so validate() gets exercised)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_typed(a) for a in typing.get_args(tp)])
    if origin is list:
        return st.lists(st.integers(-1, 60), max_size=4)
    return {
        type(None): st.none(),
        bool: st.booleans(),
        int: st.integers(-2, 600),
        float: st.floats(-1.5, 2.0) | st.floats(allow_nan=True, allow_infinity=True),
        str: st.sampled_from(WORDS),
    }[tp]


def _good_section(name: str) -> st.SearchStrategy:
    """A few keys of one section, each with a value that usually has the right type."""
    hints = typing.get_type_hints(SECTIONS[name])
    field_values = {k: st.one_of(*[_typed(hints[k])] * 7, scalars) for k in SECTION_KEYS[name]}
    return st.lists(st.sampled_from(SECTION_KEYS[name]), max_size=5, unique=True).flatmap(
        lambda ks: st.fixed_dictionaries({k: field_values[k] for k in ks}))


def _weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Pick one strategy with the given weights (st.one_of would weigh them alike)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def _section(name: str) -> st.SearchStrategy:
    return _weighted((6, _good_section(name)), (1, values))


data_section = _weighted(
    (6, st.builds(lambda task, rest: {**rest, "task": task},
                  st.sampled_from(["reverse", "dates", "nope"]), _good_section("data"))),
    (1, _section("data")),
)
structured = st.fixed_dictionaries(
    {"data": data_section},
    optional={"model": _section("model"), "train": _section("train"),
              "decode": _section("decode"), "name": scalars, "run_dir": scalars},
)
anything = _weighted((8, structured), (1, st.dictionaries(keys, values, max_size=6)), (1, values))


def _names_where(message: str) -> bool:
    """Whether a refusal is one line that starts by naming what it refuses: a real key
    (`data.task = ...`, `name: ...`), a section, the whole config, or an unknown key."""
    m = re.match(r"(config|name|run_dir|(data|model|train|decode)(\.(\w+))?)[ :]|unknown key '",
                 message)
    return "\n" not in message and m is not None and (
        m.group(4) is None or m.group(4) in SECTION_KEYS[m.group(2)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything)
def test_from_dict_raises_only_config_error(raw):
    try:
        cfg = from_dict(raw)
    except ConfigError as e:
        assert _names_where(str(e)), str(e)
        return
    assert isinstance(cfg, Config)
    assert (cfg.data.task, cfg.data.train, cfg.data.corpus) != (None, None, None)
    assert cfg.model.hidden_size >= 1 and 0 <= cfg.model.dropout < 1
    assert 1 <= cfg.decode.nbest <= cfg.decode.beam
    assert not math.isnan(cfg.train.lr)


def _typed_override(section: str, key: str) -> st.SearchStrategy:
    """(section, key, text) of `--set section.key=text`: usually a value of the key's type
    written out (JSON is YAML), so that many draws are accepted; else any text."""
    typed = _typed(typing.get_type_hints(SECTIONS[section])[key]).map(json.dumps)
    return st.tuples(st.just(section), st.just(key),
                     _weighted((3, typed), (1, st.text(max_size=8))))


# a key in its own section; or any key in the wrong section, under a string
# (data.task.<key>) or under a section that does not exist (x.y.<key>), with any text
overrides = _weighted(
    (3, st.sampled_from([(s, k) for s in SECTIONS for k in SECTION_KEYS[s]]).flatmap(
        lambda sk: _typed_override(*sk))),
    (1, st.tuples(st.sampled_from(["model", "train", "data.task", "decode", "x.y"]),
                  st.sampled_from(ALL_KEYS), st.text(max_size=8))),
)


def _override_value(text: str):
    """What `--set key=text` means: text read as YAML, or the text itself when it is not
    YAML (docs/config.md)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@settings(max_examples=200, deadline=None)
@given(st.lists(overrides, max_size=4))
def test_load_config_with_random_overrides_holds_them_or_names_the_key(items):
    """Random `--set` overrides either give a config holding each value (the last one per
    key wins; null leaves a key unset: its default, or none) or a one-line ConfigError that
    names one of the keys set (or the unknown section)."""
    overrides = [f"{section}.{key}={text}" for section, key, text in items]
    try:
        cfg = load_config(None, [*TASK, *overrides])
    except ConfigError as e:
        named = [f"{section}.{key}" for section, key, _ in items] + ["unknown key 'x'"]
        assert "\n" not in str(e) and any(n in str(e) for n in named), (overrides, str(e))
        return
    for (section, key), want in {(s, k): _override_value(t) for s, k, t in items}.items():
        part = getattr(cfg, section)
        got = getattr(part, key)
        if want is None and got is not None:  # unset: the section's default
            structure = {"structure": cfg.model.structure} if section == "model" else {}
            want = getattr(type(part)(**structure), key)
        if isinstance(got, float) and isinstance(want, str):  # YAML 1.1 reads 1e-3 as text
            want = float(want)
        assert got == want and type(got) in (type(want), float), (overrides, section, key)


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")),
                         ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.name


def test_cosine_over_minutes_follows_the_wall_clock_and_needs_a_budget():
    import time
    from types import SimpleNamespace

    from tandem.train.trainer import Trainer

    cfg = from_dict({"data": {"task": "reverse"},
                     "train": {"lr": 0.01, "min_lr": 0.0, "lr_schedule": "cosine",
                               "lr_horizon": "minutes", "max_minutes": 10, "max_steps": 10**6}})
    fake = SimpleNamespace(cfg=cfg, optimizer=None, _elapsed0=0.0, _t0=time.time())
    assert Trainer._lr(fake, 1) == pytest.approx(0.01, rel=1e-3)  # just started
    fake._elapsed0 = 300.0  # half the budget spent in an earlier part of the run
    assert Trainer._lr(fake, 1) == pytest.approx(0.005, rel=1e-2)
    fake._elapsed0 = 900.0
    assert Trainer._lr(fake, 1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match=r"^train\.lr_horizon = .*train\.max_minutes"):
        from_dict({"data": {"task": "reverse"},
                   "train": {"lr_schedule": "cosine", "lr_horizon": "minutes"}})


# --- model.structure ---------------------------------------------------------------------

STRUCTURES = ["seq2seq", "classify", "tag", "lm", "generate"]


@pytest.mark.parametrize("structure", STRUCTURES)
def test_each_structure_loads_with_its_defaults_and_round_trips(structure):
    """Keys that do not apply and that the user did not set never refuse a structure; the
    saved config (to_dict, as checkpoints hold it) reads back the same."""
    cfg = from_dict(_raw({**FILE, "model.structure": structure}))
    assert cfg.model.structure == structure
    assert from_dict(cfg.to_dict()) == cfg
    # one key the structure fills with its own default (docs/config.md: "null = the
    # structure's default: ...")
    applies, default = {"seq2seq": ("conditioning", "attention"), "classify": ("bridge", "linear"),
                        "tag": ("char_emb_size", 32), "lm": ("dec_layers", 1),
                        "generate": ("conditioning", "init")}[structure]
    assert getattr(cfg.model, applies) == default
    if structure != "seq2seq":
        assert cfg.model.attention is None and cfg.model.input_feeding is False


def test_seq2seq_defaults_are_unchanged():
    m = load().model
    assert (m.structure, m.bidirectional, m.bridge, m.conditioning, m.attention,
            m.enc_layers, m.dec_layers) == ("seq2seq", True, "linear", "attention", "general",
                                            1, 1)
    assert m.char_emb_size is None and m.char_hidden_size is None and m.num_features == 0


def test_structure_refusals_name_the_key_and_the_structure():
    def msg(structure, **model):
        with pytest.raises(ConfigError) as info:
            from_dict(_raw({**FILE, "model.structure": structure,
                            **{f"model.{k}": v for k, v in model.items()}}))
        return str(info.value)

    m = msg("classify", conditioning="attention")
    assert m.startswith("model.conditioning = 'attention' is not allowed: with "
                        "model.structure = classify")
    assert "leave it unset" in m
    assert msg("lm", bidirectional=True).startswith(
        "model.bidirectional = True is not allowed: with model.structure = lm")
    assert "init or every_step" in msg("generate", conditioning="attention")
    assert "'zero'" in msg("classify", bridge="zero")
    assert "even" in msg("tag", char_hidden_size=5)


@pytest.mark.parametrize(
    "model",
    [
        {"structure": "lm", "bidirectional": False},  # what an lm is: allowed
        {"structure": "lm", "dec_layers": 2, "tie_embeddings": True},
        {"structure": "lm", "enc_hidden_size": None, "bridge": None},  # null = unset
        {"structure": "generate", "conditioning": "every_step", "num_features": 8},
        {"structure": "tag", "char_emb_size": 0, "char_hidden_size": 0, "bidirectional": False},
        {"structure": "tag", "enc_layers": 2, "enc_hidden_size": 64},
        {"structure": "classify", "bridge": "last", "enc_hidden_size": 64, "enc_layers": 2},
        {"structure": "classify", "bridge": "pooled", "input_feeding": False},
    ],
    ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()),
)
def test_structure_boundaries_are_accepted(model):
    cfg = from_dict(_raw({**FILE, **{f"model.{k}": v for k, v in model.items()}}))
    for k, v in model.items():
        assert getattr(cfg.model, k) == v or v is None
