"""Every `model.*`, `train.*` and `decode.*` key reaches what it controls, read through the
config (`from_dict`, as `tandem train CONFIG` reads it): each test below fails if its key were
silently ignored, because it compares against what the key's value must give (a shape, a
formula, a count, a second code path) and that differs from what the default gives.

The keys proved elsewhere carry their `pins` mark there (tests/test_trainer.py,
tests/test_reliability.py, tests/test_fast.py); tests/test_option_coverage.py checks that every
key is pinned somewhere."""

from __future__ import annotations

import csv
import datetime
import io
import math
import random
import sys
import types

import pytest
import torch
from torch import nn

from conftest import run_config
from structdata import config_dict, feature_data
from tandem import checkpoint
from tandem.config import DecodeConfig, from_dict
from tandem.data.vocab import UNK_ID
from tandem.errors import ConfigError, DataError, TrainingError
from tandem.model.encoder import Dropout
from tandem.structures import translator as translator_module
from tandem.structures.translator import load
from tandem.train import distributed
from tandem.train import trainer as trainer_module
from tandem.train.trainer import Trainer, train


def _raw(run_dir, model: dict | None = None, **train) -> dict:
    """A tiny `reverse` run (40 training pairs) that validates and saves only when asked."""
    raw = run_config(run_dir, "opt", {"dropout": 0.0, **(model or {})},
                     **{"keep_last": 0, "tensorboard": False, "valid_every": 10**6, **train})
    raw["data"]["task_sizes"] = [40, 8, 8]
    return raw


def _trainer(run_dir, model: dict | None = None, **train) -> Trainer:
    """The Trainer `tandem train` builds from `_raw`'s config (nothing written yet)."""
    return Trainer.from_config(from_dict(_raw(run_dir, model, **train)))


def _batch(trainer: Trainer):
    """The first training batch of the trainer's first epoch."""
    return next(trainer.batches())


# --- model.*: the model built from the config has the shape the keys ask for ----------------


def _rnn(module) -> nn.RNNBase:
    """The torch RNN layer (nn.LSTM / nn.GRU / nn.RNN) of an encoder or a decoder."""
    return module.rnn


def _init_hidden(model, lstm: bool = True):
    """(the encoder's final states, the decoder's first state) of a two-sentence batch."""
    src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    enc = model.encode(src, torch.tensor([3, 2]))
    return enc, model.init_state(enc).hidden


def _check_last_bridge(model):
    """Assert that the decoder starts from the encoder's final LSTM states, unchanged."""
    enc, hidden = _init_hidden(model)
    torch.testing.assert_close(hidden[0], enc.final_h)  # c is the last state, untransformed
    torch.testing.assert_close(hidden[1], enc.final_c)


# (model section, what the built seq2seq model must then be); run_config's sizes are
# emb_size 16, hidden_size 32, and every other key at its default
SEQ2SEQ_CASES = {
    "model.cell": ({"cell": "gru"}, lambda m: isinstance(_rnn(m.encoder), nn.GRU)
                   and isinstance(_rnn(m.decoder), nn.GRU)),
    "model.emb_size": ({"emb_size": 12}, lambda m: m.encoder.embed.embedding_dim == 12
                       and m.decoder.embed.embedding_dim == 12
                       and _rnn(m.encoder).input_size == 12),
    "model.hidden_size": ({"hidden_size": 24}, lambda m: _rnn(m.decoder).hidden_size == 24
                          and _rnn(m.encoder).hidden_size == 12),  # 2 directions x 12
    "model.enc_hidden_size": ({"enc_hidden_size": 20},
                              lambda m: _rnn(m.encoder).hidden_size == 10
                              and _rnn(m.decoder).hidden_size == 32
                              and m.decoder.attention.query_proj.out_features == 20),
    "model.enc_layers": ({"enc_layers": 2}, lambda m: _rnn(m.encoder).num_layers == 2
                         and _rnn(m.decoder).num_layers == 1),
    "model.dec_layers": ({"dec_layers": 3}, lambda m: _rnn(m.decoder).num_layers == 3
                         and _rnn(m.encoder).num_layers == 1),
    "model.bidirectional": ({"bidirectional": False},
                            lambda m: not _rnn(m.encoder).bidirectional
                            and _rnn(m.encoder).hidden_size == 32),
    "model.conditioning": ({"conditioning": "every_step"},
                           lambda m: m.decoder.attention is None
                           and _rnn(m.decoder).input_size == 16 + 32  # embedding + c
                           and m.decoder.pre_output.in_features == 2 * 32 + 16),
    "model.attention": ({"attention": "additive"},
                        lambda m: hasattr(m.decoder.attention, "v")
                        and m.decoder.attention.v.out_features == 1),
    "model.input_feeding": ({"input_feeding": True},
                            lambda m: _rnn(m.decoder).input_size == 16 + 32),
    "model.tie_embeddings": ({"tie_embeddings": True},
                             lambda m: m.decoder.generator.weight is m.decoder.embed.weight),
}


@pytest.mark.pins(*SEQ2SEQ_CASES)
@pytest.mark.parametrize("key", list(SEQ2SEQ_CASES))
def test_each_model_key_shapes_the_seq2seq_model_built_from_the_config(tmp_path, key):
    section, expected = SEQ2SEQ_CASES[key]
    model = _trainer(tmp_path / "r", section).model
    assert expected(model), f"{key} = {section} is not what the model was built with"
    default = _trainer(tmp_path / "d").model
    assert not expected(default), "the default must differ, or an ignored key would pass"


@pytest.mark.pins("model.bridge")
def test_the_bridge_key_chooses_how_c_is_made(tmp_path):
    last = _trainer(tmp_path / "last", {"bridge": "last"}).model.eval()
    _check_last_bridge(last)
    zero = _trainer(tmp_path / "zero", {"bridge": "zero"}).model.eval()
    assert _init_hidden(zero)[1] is None  # no initial state at all
    default = _trainer(tmp_path / "d").model.eval()  # linear: tanh(W h), not h itself
    with pytest.raises(AssertionError):
        _check_last_bridge(default)


@pytest.mark.pins("model.dropout")
def test_dropout_is_the_configured_probability_and_zero_makes_training_deterministic(tmp_path):
    model = _trainer(tmp_path / "half", {"dropout": 0.5}).model
    ps = [m.p for m in model.modules() if isinstance(m, Dropout)]
    assert ps and set(ps) == {0.5}
    assert _rnn(model.encoder).dropout == 0.0  # one layer: nothing between layers
    src, lens = torch.tensor([[5, 6, 7, 8]]), torch.tensor([4])
    emb = model.encoder.embed(src)
    model.train()
    dropped = model.encoder.dropout(emb)
    # each value is zeroed or scaled by 1 / (1 - p) = 2
    assert torch.all((dropped == 0) | torch.isclose(dropped, 2 * emb))
    none = _trainer(tmp_path / "none", {"dropout": 0.0}).model.train()
    tgt = torch.tensor([[1, 5, 6]])
    torch.testing.assert_close(none(src, lens, tgt), none(src, lens, tgt), rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(src, lens, tgt), model(src, lens, tgt))


def _struct_trainer(structure: str, run, model: dict | None = None, data: dict | None = None,
                    **train) -> Trainer:
    """The Trainer of tests/structdata.py's config for `structure`, with overrides."""
    raw = config_dict(structure, run, **train)
    raw["model"].update(model or {})
    raw["data"].update(data or {})
    return Trainer.from_config(from_dict(raw))


@pytest.mark.pins("model.structure")
def test_the_structure_key_picks_the_model_and_its_training(tmp_path):
    from tandem.model.classifier import Classifier
    from tandem.model.seq2seq import Seq2Seq

    trainer = _struct_trainer("classify", tmp_path / "c" / "run")
    assert isinstance(trainer.model, Classifier)
    assert trainer.model.out.out_features == 2  # the labels yes and no of the data
    assert trainer.metric == "accuracy"
    assert isinstance(_trainer(tmp_path / "s").model, Seq2Seq)


@pytest.mark.pins("model.char_emb_size", "model.char_hidden_size")
def test_the_taggers_character_view_has_the_configured_sizes(tmp_path):
    model = _struct_trainer("tag", tmp_path / "a" / "run",
                            {"char_emb_size": 6, "char_hidden_size": 10}).model
    assert model.chars.encoder.embed.embedding_dim == 6
    assert model.chars.size == 10 and _rnn(model.chars.encoder).hidden_size == 5
    # the word's encoder reads its embedding (16) joined to the character view
    assert _rnn(model.encoder).input_size == 16 + 10
    off = _struct_trainer("tag", tmp_path / "b" / "run",
                          {"char_emb_size": 0, "char_hidden_size": 0}).model
    assert off.chars is None and _rnn(off.encoder).input_size == 16


@pytest.mark.pins("model.num_features")
def test_num_features_must_match_the_feature_matrix_it_describes(tmp_path):
    data = feature_data(tmp_path / "data", 40, 10)  # two values per row
    model = _struct_trainer("generate", tmp_path / "a" / "run", {"num_features": 2},
                            data).model
    assert isinstance(model.condition, nn.Linear) and model.condition.in_features == 2
    with pytest.raises(DataError, match=r"train\.npy has 2 features per row but "
                                        r"model\.num_features = 3"):
        _struct_trainer("generate", tmp_path / "b" / "run", {"num_features": 3}, data)


# --- train.*: batches, steps, limits ----------------------------------------------------------


@pytest.mark.pins("train.batch_tokens")
def test_batch_tokens_bounds_every_batch_of_an_epoch(tmp_path):
    trainer = _trainer(tmp_path / "r", batch_tokens=40)
    plan = trainer.structure.epoch(trainer.rng)
    batches = [trainer.structure.batch(item) for item in plan]
    for b in batches:  # rows x the longer side, for both sides, within the budget
        rows = b.src.size(0)  # (tgt_out has one more column: the end of sentence)
        assert rows * (b.src.size(1) + b.tgt_out.size(1) - 1) <= 40
    assert sum(b.src.size(0) for b in batches) == 40  # the whole epoch, once
    assert len(batches) >= 40 * (1 + 2) * 2 // 40  # at least 3 tokens a side each pair
    wide = _trainer(tmp_path / "w", batch_tokens=4000)
    assert len(wide.structure.epoch(wide.rng)) == 1


@pytest.mark.pins("train.max_steps")
def test_max_steps_is_where_training_stops(tmp_path):
    # one epoch (about ten batches) is the backstop, should max_steps be ignored
    run = train(from_dict(_raw(tmp_path / "r", max_steps=3, max_epochs=1, batch_tokens=40)))
    assert checkpoint.load(run / "last.pt")["train_state"]["step"] == 3


@pytest.mark.pins("train.max_epochs")
def test_max_epochs_stops_after_that_many_passes_over_the_data(tmp_path):
    trainer = _trainer(tmp_path / "r", max_epochs=2, max_steps=50, batch_tokens=150)
    per_epoch = len(trainer.structure.epoch(random.Random(0)))
    assert 1 < per_epoch < 25  # so that max_steps does not end the run first
    trainer.out.mkdir(parents=True)
    trainer.train()
    # the last batch of the second epoch was trained on
    assert trainer.state.step == 2 * per_epoch
    assert (trainer.state.epoch, trainer.state.batch_in_epoch) == (1, per_epoch)


class FakeClock:
    """time.time for the trainer: it moves only when a training step runs (`tick` seconds)."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def time(self) -> float:
        return self.now


def _clocked(monkeypatch, trainer: Trainer, tick: float) -> list[float]:
    """Give the trainer a fake clock advanced by each train_step; returns the learning rates
    the steps used, as they happen."""
    import time as real

    clock = FakeClock(tick)
    monkeypatch.setattr(trainer_module, "time",
                        types.SimpleNamespace(time=clock.time, perf_counter=real.perf_counter))
    lrs, step = [], trainer.train_step

    def timed(batch):
        out = step(batch)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        clock.now += clock.tick
        return out

    trainer.train_step = timed
    return lrs


@pytest.mark.pins("train.max_minutes", "train.lr_horizon")
def test_max_minutes_stops_on_the_clock_and_cosine_can_decay_over_it(tmp_path, monkeypatch):
    """Each step takes 30 s of a fake clock: 2 minutes are 4 steps, and the cosine schedule
    over minutes follows the elapsed time, not the step count (max_steps is 12)."""
    trainer = _trainer(tmp_path / "r", max_steps=12, max_minutes=2.0, lr=0.01, min_lr=0.001,
                       lr_schedule="cosine", lr_horizon="minutes")
    lrs = _clocked(monkeypatch, trainer, 30.0)
    trainer.out.mkdir(parents=True)
    trainer.train()
    assert trainer.state.step == 4
    want = [0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * s * 30 / 120)) for s in range(4)]
    assert lrs == pytest.approx(want)


@pytest.mark.pins("train.lr_schedule", "train.min_lr")
def test_cosine_decays_from_lr_to_min_lr_over_max_steps(tmp_path):
    trainer = _trainer(tmp_path / "r", max_steps=8, lr=0.01, min_lr=0.002,
                       lr_schedule="cosine")
    batch, lrs = _batch(trainer), []
    for _ in range(9):
        trainer.train_step(batch)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    want = [0.002 + 0.008 * 0.5 * (1 + math.cos(math.pi * min(s, 8) / 8)) for s in range(9)]
    assert lrs == pytest.approx(want)
    assert lrs[-1] == pytest.approx(0.002)


@pytest.mark.pins("train.lr_decay")
def test_plateau_multiplies_the_rate_by_lr_decay_at_each_stall(tmp_path):
    """lr_patience 1: every validation without improvement is a stall (the default decay,
    0.5, would give other rates)."""
    trainer = _trainer(tmp_path / "r", lr=0.01, lr_schedule="plateau", lr_patience=1,
                       lr_decay=0.25, min_lr=1e-6, valid_metric="loss")
    trainer.out.mkdir(parents=True)
    trainer.validate = lambda: {"loss": 1.0}  # never improves after the first
    batch, lrs = _batch(trainer), []
    for _ in range(4):
        trainer.train_step(batch)
        trainer.validate_and_save()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.01, 0.01 * 0.25, 0.01 * 0.25**2, 0.01 * 0.25**3])


@pytest.mark.pins("train.weight_decay")
def test_weight_decay_adds_its_share_of_each_weight_to_the_gradient(tmp_path):
    """Plain SGD with L2 decay wd: w <- w - lr * (grad + wd * w)."""
    trainer = _trainer(tmp_path / "r", optimizer="sgd", lr=0.1, weight_decay=0.5,
                       clip_grad=0.0)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step(_batch(trainer))
    checked = 0
    for old, p in zip(before, trainer.model.parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(p.detach(), old - 0.1 * (p.grad + 0.5 * old),
                                       atol=1e-6, rtol=1e-5)
            checked += 1
    assert checked > 5


@pytest.mark.pins("train.valid_max_sentences", "train.valid_beam")
def test_validation_decodes_at_most_valid_max_sentences_with_valid_beam(tmp_path,
                                                                         monkeypatch):
    calls = []
    translate = translator_module.Translator.translate

    def spy(self, inputs, **options):
        calls.append((list(inputs), options))
        return translate(self, inputs, **options)

    monkeypatch.setattr(translator_module.Translator, "translate", spy)
    trainer = _trainer(tmp_path / "r", valid_max_sentences=3, valid_beam=4)
    result = trainer.validate()
    dev_sources = [s for s, _ in trainer.structure.dev_pairs]
    [(inputs, options)] = calls
    assert inputs == list(dict.fromkeys(dev_sources))[:3] and len(dev_sources) == 8
    assert options["beam"] == 4
    assert "exact_match" in result


@pytest.mark.pins("train.log_every")
def test_log_every_is_the_step_interval_of_the_training_curve(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=6, log_every=2)))
    with open(run / "scalars.csv", encoding="utf-8") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["tag"] == "train/loss"]
    assert steps == [2, 4, 6]


@pytest.mark.pins("train.progress")
def test_progress_false_shows_no_progress_lines(tmp_path, monkeypatch):
    """Not on a terminal, progress is a plain line every log_every steps, kept in train.log."""
    shown = {}
    for on in (True, False):
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        run = train(from_dict(_raw(tmp_path / f"r{on}", max_steps=2, log_every=1,
                                   progress=on)))
        shown[on] = (run / "train.log").read_text(encoding="utf-8")
    assert "step 1/2 loss" in shown[True] and "step 2/2 loss" in shown[True]
    assert "step 1/2" not in shown[False] and "done: 2 steps" in shown[False]


@pytest.mark.pins("train.tensorboard")
def test_tensorboard_writes_event_files_only_when_asked(tmp_path):
    on = train(from_dict(_raw(tmp_path / "on", max_steps=1, tensorboard=True)))
    assert list((on / "tensorboard").glob("events.out.tfevents.*"))
    off = train(from_dict(_raw(tmp_path / "off", max_steps=1, tensorboard=False)))
    assert not (off / "tensorboard").exists()


@pytest.mark.pins("train.seed")
def test_the_seed_decides_the_initial_weights_and_the_data_order(tmp_path):
    def state(seed: int, name: str):
        t = _trainer(tmp_path / name, seed=seed)
        return ([p.detach().clone() for p in t.model.parameters()],
                t.structure.epoch(t.rng))

    (w3, order3), (w3b, order3b), (w4, order4) = state(3, "a"), state(3, "b"), state(4, "c")
    assert all(torch.equal(a, b) for a, b in zip(w3, w3b, strict=True)) and order3 == order3b
    assert not all(torch.equal(a, b) for a, b in zip(w3, w4, strict=True))
    assert order3 != order4
    torch.manual_seed(3)  # the weights come from torch's global generator seeded with it
    assert torch.equal(w3[0], _trainer(tmp_path / "d", seed=3).model.encoder.embed.weight)


@pytest.mark.pins("train.threads")
def test_threads_sets_torchs_thread_count(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: asked[-1] if asked else 99)
    _trainer(tmp_path / "r", threads=3)
    assert asked == [3]


@pytest.mark.pins("train.device")
def test_device_is_where_the_model_trains(tmp_path):
    trainer = _trainer(tmp_path / "cpu", device="cpu")
    assert {p.device.type for p in trainer.model.parameters()} == {"cpu"}
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the refusal below is for CPU-only machines")
    with pytest.raises(ConfigError, match=r"train\.device = 'cuda', but this torch"):
        _trainer(tmp_path / "gpu", device="cuda")


@pytest.mark.pins("train.dist_timeout_minutes")
def test_dist_timeout_minutes_bounds_the_process_groups_collectives(tmp_path, monkeypatch):
    import torch.distributed as dist

    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    asked = []

    def init_process_group(backend, timeout=None, **kw):
        asked.append((backend, timeout))
        raise RuntimeError("not joining in a test")

    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    cfg = from_dict(_raw(tmp_path / "r", dist_timeout_minutes=7.5, device="cpu"))
    with pytest.raises(TrainingError, match="not joining in a test"):
        distributed.start_ranks(cfg)
    assert asked == [("gloo", datetime.timedelta(minutes=7.5))]


@pytest.mark.pins("train.bf16")
def test_bf16_trains_under_bfloat16_autocast(tmp_path):
    for bf16 in (False, True):
        trainer = _trainer(tmp_path / f"r{bf16}", bf16=bf16, device="cpu")
        dtypes = []
        trainer.model.register_forward_hook(lambda m, i, out, d=dtypes: d.append(out.dtype))
        trainer.train_step(_batch(trainer))
        assert dtypes == [torch.bfloat16 if bf16 else torch.float32]


@pytest.mark.pins("train.bptt")
def test_bptt_is_the_length_of_each_lm_batch_and_sets_the_stream_count(tmp_path):
    trainer = _struct_trainer("lm", tmp_path / "r" / "run", bptt=10, batch_tokens=160)
    batch = _batch(trainer)
    assert tuple(batch.inputs.shape) == (160 // 10, 10)
    torch.testing.assert_close(batch.inputs[:, 1:], batch.targets[:, :-1])


# --- decode.*: a model's config decodes with its decode section as the defaults -------------


TEXTS = ["abc", "hello", "xy", "aaaa", "abab", "zzzzzz", "q", "abcdef", "mmnnmm", "banana"]
NBEST = {"beam": 4, "nbest": 4}


def _with_decode(path, tmp_path, decode: dict, bump_unk: bool = False):
    """A copy of checkpoint `path` whose config's decode section says `decode`."""
    ckpt = checkpoint.load(path)
    ckpt["config"]["decode"].update(decode)
    if bump_unk:  # make <unk> likely, so that allow_unk has something to forbid
        ckpt["model"]["decoder.generator.bias"][UNK_ID] += 10.0
    return checkpoint.save(ckpt, tmp_path / "decode.pt")


def _outputs(results) -> list[tuple]:
    """Every n-best entry as (input, text, score to 4 places)."""
    return [(i, r.text, round(r.score, 4)) for i, nb in enumerate(results) for r in nb]


def _seeded():
    """The same random numbers for every sampling call of a comparison."""
    return torch.Generator().manual_seed(11)


# key -> the decode section that shows it; without the key, the output must differ
DECODE_CASES = {
    "decode.beam": {"beam": 1},
    "decode.nbest": {"beam": 4, "nbest": 4},
    "decode.max_len_a": {"max_len_a": 0.5, "max_len_b": 1},
    "decode.max_len_b": {"max_len_a": 0.5, "max_len_b": 1},
    "decode.length_penalty": {**NBEST, "length_penalty": 3.0},
    "decode.length_norm": {**NBEST, "length_norm": "gnmt"},
    "decode.coverage_penalty": {**NBEST, "coverage_penalty": 10.0},
    "decode.no_repeat_ngram_size": {**NBEST, "no_repeat_ngram_size": 2},
    "decode.sample": {"sample": True, "temperature": 2.0},
    "decode.temperature": {"sample": True, "temperature": 3.0},
    "decode.top_k": {"sample": True, "temperature": 3.0, "top_k": 1},
    "decode.bf16": {"beam": 3, "bf16": True},
    "decode.allow_unk": {"beam": 3, "allow_unk": False},
}


@pytest.mark.pins(*DECODE_CASES)
@pytest.mark.parametrize("key", list(DECODE_CASES))
def test_the_models_decode_section_is_the_default_of_every_decoding(tmp_path,
                                                                     attention_checkpoint, key):
    section = DECODE_CASES[key]
    unk = key == "decode.allow_unk"
    path = _with_decode(attention_checkpoint, tmp_path, section, bump_unk=unk)
    got = _outputs(load(path, device="cpu").translate_full(TEXTS, generator=_seeded()))
    # the second path: the model with the config as trained, the options given per call
    plain = load(path, device="cpu")
    plain.decode_cfg = DecodeConfig()  # the trained config has no decode section
    want = _outputs(plain.translate_full(TEXTS, generator=_seeded(), **section))
    without = {k: v for k, v in section.items() if k != key.split(".")[1]}
    other = _outputs(plain.translate_full(TEXTS, generator=_seeded(), **without))
    assert got == want
    assert want != other, f"{key} changes nothing here, so ignoring it would pass"
    if unk:
        assert not any("<unk>" in text for _, text, _ in got)


@pytest.mark.pins("decode.batch_size")
def test_the_decode_batch_size_is_the_most_sentences_searched_together(tmp_path,
                                                                        attention_checkpoint,
                                                                        monkeypatch):
    sizes = []
    search = translator_module.Translator._search_batch

    def spy(self, inputs, *args):
        sizes.append(len(inputs))
        return search(self, inputs, *args)

    monkeypatch.setattr(translator_module.Translator, "_search_batch", spy)
    path = _with_decode(attention_checkpoint, tmp_path, {"batch_size": 3})
    got = load(path, device="cpu").translate(TEXTS)
    assert sorted(sizes) == [1, 3, 3, 3] and sum(sizes) == len(TEXTS)
    sizes.clear()
    assert load(attention_checkpoint, device="cpu").translate(TEXTS) == got
    assert sizes == [len(TEXTS)]  # the default, 64, takes them all at once


@pytest.mark.pins("decode.on_long_input")
def test_on_long_input_error_refuses_what_truncate_cuts(tmp_path, attention_checkpoint):
    long = "ab" * 200  # over the model's data.max_src_len
    assert load(attention_checkpoint, device="cpu").translate([long])  # truncated
    path = _with_decode(attention_checkpoint, tmp_path, {"on_long_input": "error"})
    with pytest.raises(DataError, match="on_long_input"):
        load(path, device="cpu").translate([long])
