"""The Trainer drives every structure (tandem/structures/): for classify, tag, lm and
generate on tiny generated data, the loss falls, a resumed run ends bit-identical to an
uninterrupted one, the structure's validation metrics reach scalars.csv and pick best.pt, and
checkpoints load with weights_only=True and say what they are."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
from pathlib import Path

import pytest
import torch

from structdata import STRUCTURES, config_dict, feature_data  # tests/structdata.py
from tandem import checkpoint
from tandem.config import from_dict
from tandem.data.fields import StructFields
from tandem.errors import ConfigError
from tandem.metrics import higher_is_better
from tandem.train.run import claim_run
from tandem.train.trainer import Trainer, train


def _cfg(structure: str, run: Path, **train):
    return from_dict(config_dict(structure, run, **train))


def _trainer(structure: str, run: Path, **train) -> Trainer:
    cfg = _cfg(structure, run, **train)
    claim_run(cfg)
    return Trainer.from_config(cfg)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def _valid_log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "valid.jsonl").read_text().splitlines()]


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_the_dev_loss_falls(structure, tmp_path):
    trainer = _trainer(structure, tmp_path / "run", max_steps=60)
    before = trainer.dev_loss()
    trainer.train()
    after = trainer.dev_loss()
    assert math.isfinite(before) and after < 0.8 * before, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_resume_gives_bit_identical_weights(structure, tmp_path):
    """2N steps in one go == N steps, stop, resume for N more (dropout draws random numbers;
    N is inside an epoch, 2N beyond its end; lm carries its hidden state over the stop)."""
    trainer = _trainer(structure, tmp_path / "len", max_epochs=1, max_steps=10**6)
    trainer.train()
    per_epoch = trainer.state.step
    assert per_epoch >= 4
    n = per_epoch // 2 + 1
    one = train(_cfg(structure, tmp_path / "one", max_steps=2 * n, valid_every=n))
    two = tmp_path / "two"
    train(_cfg(structure, two, max_steps=n, valid_every=n))
    half = checkpoint.load(two / "last.pt")
    assert half["train_state"]["batch_in_epoch"] > 0  # stopped inside an epoch
    if structure == "lm":
        assert half["lm_state"] is not None  # the carried hidden state travels along
        assert "lm_state" not in checkpoint.load(two / "best.pt")
    train(_cfg(structure, two, max_steps=2 * n, valid_every=n), resume=True)
    a, b = _weights(one / "last.pt"), _weights(two / "last.pt")
    assert any(not torch.equal(half["model"][k], b[k]) for k in b)  # it really trained on
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert checkpoint.load(two / "last.pt")["train_state"]["epoch"] >= 1
    assert [x["loss"] for x in _valid_log(one)] == [x["loss"] for x in _valid_log(two)]


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_a_signal_saves_where_training_is_and_the_resume_is_exact(structure, tmp_path,
                                                                  monkeypatch):
    """SIGTERM after step 5 (between validations): the run saves last.pt at that step and
    returns; resumed to 10 steps, its weights equal those of 10 steps in one go."""
    one = train(_cfg(structure, tmp_path / "one", max_steps=10, valid_every=4))
    trainer = _trainer(structure, tmp_path / "two", max_steps=10, valid_every=4)
    step_done = trainer.structure.step_done

    def then_stop(ok: bool) -> None:
        step_done(ok)
        if trainer.state.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer.structure, "step_done", then_stop)
    trainer.train()
    assert checkpoint.load(tmp_path / "two" / "last.pt")["train_state"]["step"] == 5
    train(_cfg(structure, tmp_path / "two", max_steps=10, valid_every=4), resume=True)
    a, b = _weights(one / "last.pt"), _weights(tmp_path / "two" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_a_nan_step_is_skipped_and_training_goes_on(structure, tmp_path):
    trainer = _trainer(structure, tmp_path / "run", max_steps=8, valid_every=8)
    forward = trainer.model.forward

    def bad(*args, **kw):
        out = forward(*args, **kw)
        if trainer.state.step == 3:
            return (out[0] * float("nan"), out[1]) if isinstance(out, tuple) else \
                out * float("nan")
        return out

    trainer.model.forward = bad
    trainer.train()
    assert trainer.state.step == 8 and trainer.state.skipped_steps == 1
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


METRICS = {"classify": ("accuracy", {"loss", "accuracy", "macro_f1"}),
           "tag": ("token_acc", {"loss", "token_acc", "unseen_acc"}),
           "lm": ("ppl", {"loss", "ppl", "bpc"}),
           "generate": ("loss", {"loss", "ppl"})}


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_validation_metrics_reach_the_scalars_and_pick_best_pt(structure, tmp_path):
    run = train(_cfg(structure, tmp_path / "run", max_steps=40, valid_every=8, keep_last=10))
    metric, names = METRICS[structure]
    with open(run / "scalars.csv", newline="", encoding="utf-8") as f:
        tags = {row["tag"] for row in csv.DictReader(f)}
    assert {f"dev/{m}" for m in names} <= tags
    log = _valid_log(run)
    assert [x["step"] for x in log] == [8, 16, 24, 32, 40]
    pick = max if higher_is_better(metric) else min
    best = pick(log, key=lambda x: x[metric])  # the first of equals, as the trainer keeps it
    assert [x["step"] for x in log if x["best"]][-1] == best["step"]
    ckpt = checkpoint.load(run / "best.pt")
    assert ckpt["train_state"]["best_step"] == best["step"]
    numbered = _weights(run / f"ckpt-{best['step']}.pt")
    assert all(torch.equal(numbered[k], v) for k, v in ckpt["model"].items())
    assert ckpt["config"]["train"]["valid_metric"] == metric  # the structure's default


@pytest.mark.parametrize("structure", STRUCTURES)
def test_checkpoints_load_with_weights_only_and_say_what_they_are(structure, tmp_path):
    run = train(_cfg(structure, tmp_path / "run", max_steps=4, valid_every=4))
    for name in ("best.pt", "last.pt"):
        obj = torch.load(run / name, weights_only=True)
        assert obj["structure"] == structure
        assert obj["config"]["model"]["structure"] == structure
        fields = StructFields.from_state(obj["fields"])
        assert fields.structure == structure and fields.state() == obj["fields"]
    trainer = Trainer.from_config(_cfg(structure, run, max_steps=4))
    trainer.model.load_state_dict(checkpoint.load(run / "best.pt")["model"])  # same shapes
    assert trainer.fields.state() == obj["fields"]


def test_seq2seq_checkpoints_say_seq2seq(tmp_path):
    from conftest import run_config

    run = train(from_dict(run_config(tmp_path / "s", "s", {"cell": "gru"}, max_steps=2,
                                     valid_every=2, tensorboard=False)))
    obj = torch.load(run / "best.pt", weights_only=True)
    assert obj["structure"] == "seq2seq" and "src_vocab" in obj["fields"]


def test_lm_batches_are_contiguous_streams_and_the_state_is_reset_each_epoch(tmp_path):
    trainer = _trainer("lm", tmp_path / "run", max_steps=10**6)
    s = trainer.structure
    assert s.streams == 160 // 16
    batches = trainer.batches()
    first, second = next(batches), next(batches)
    assert first.inputs.shape == (10, 16)
    assert torch.equal(first.targets[:, -1], second.inputs[:, 0])  # each stream goes on
    seen = []
    forward = trainer.model.forward

    def spy(tokens, state=None):
        seen.append(state is None)
        return forward(tokens, state)

    trainer.model.forward = spy
    for b in [first, second]:
        trainer.train_step(b)
    assert seen == [True, False]  # the second batch starts from the first's state
    for _ in range(trainer._epoch_len - 2):  # the rest of the epoch
        trainer.train_step(next(batches))
    assert seen[-1] is False and trainer.state.epoch == 0
    trainer.train_step(next(batches))  # the next epoch's first batch
    assert seen[-1] is True and trainer.state.epoch == 1


def test_a_skipped_step_drops_the_carried_lm_state(tmp_path):
    trainer = _trainer("lm", tmp_path / "run", max_steps=10**6)
    batches = trainer.batches()
    trainer.train_step(next(batches))
    assert trainer.structure.carry is not None
    forward = trainer.model.forward
    trainer.model.forward = lambda x, st=None: (lambda o: (o[0] * float("nan"), o[1]))(
        forward(x, st))
    trainer.train_step(next(batches))
    assert trainer.state.skipped_steps == 1 and trainer.structure.carry is None


@pytest.mark.slow  # trains 30 steps
def test_generate_from_feature_vectors_trains(tmp_path):
    """30 steps on names whose letters follow from a one-hot feature row (A: a-c, B: x-z):
    the dev loss starts at a uniform guess over the V outputs (ln V) and ends well below it,
    the perplexity well below V; and the model reads the features: the same dev names with
    their rows swapped (A <-> B) score far worse. (Margins measured over train.seed 0-5:
    after/before <= 0.58, ppl <= 3.9 of V = 10, swapped >= 2.8 x after.)"""
    raw = config_dict("generate", tmp_path / "run", max_steps=30, valid_every=15)
    raw["data"] = feature_data(tmp_path / "data", 100, 20)
    cfg = from_dict(raw)
    claim_run(cfg)
    trainer = Trainer.from_config(cfg)
    vocab = len(trainer.fields.vocab)
    before = trainer.dev_loss()
    assert before == pytest.approx(math.log(vocab), abs=0.2)  # untrained: about uniform
    trainer.train()
    last = _valid_log(tmp_path / "run")[-1]
    assert last["step"] == 30 and last["loss"] < 0.7 * before, (before, last)
    assert last["ppl"] == pytest.approx(math.exp(last["loss"]), rel=1e-4)
    assert last["ppl"] < vocab / 2, (vocab, last)
    data = trainer.structure.data
    data.features["dev"] = data.features["dev"][:, ::-1].copy()
    assert trainer.dev_loss() > 1.5 * last["loss"]
    assert checkpoint.load(tmp_path / "run" / "best.pt")["fields"]["num_features"] == 2


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("structure, metric", [("seq2seq", "exact_match"),
                                               ("classify", "accuracy"), ("tag", "token_acc"),
                                               ("lm", "ppl"), ("generate", "loss")])
def test_the_valid_metric_defaults_to_the_structures_own(structure, metric, tmp_path):
    raw = config_dict(structure, tmp_path / "r") if structure != "seq2seq" else \
        {"data": {"task": "reverse"}}
    raw.get("train", {}).pop("valid_metric", None)
    assert from_dict(raw).train.valid_metric == metric


@pytest.mark.parametrize("structure, bad", [("classify", "exact_match"), ("tag", "accuracy"),
                                            ("lm", "bleu"), ("generate", "accuracy"),
                                            ("seq2seq", "macro_f1")])
def test_a_valid_metric_of_another_structure_is_refused(structure, bad, tmp_path):
    raw = config_dict(structure, tmp_path / "r") if structure != "seq2seq" else \
        {"data": {"task": "reverse"}, "train": {}}
    raw["train"]["valid_metric"] = bad
    with pytest.raises(ConfigError, match=rf"^train\.valid_metric = '{bad}' is not allowed: "
                                          rf"one of .* with model\.structure = {structure}"):
        from_dict(raw)


def test_bptt_and_scheduled_sampling_are_checked_for_the_structure(tmp_path):
    raw = config_dict("lm", tmp_path / "r", bptt=0)
    with pytest.raises(ConfigError, match=r"^train\.bptt = 0"):
        from_dict(raw)
    raw = config_dict("lm", tmp_path / "r", bptt=64, batch_tokens=32)
    with pytest.raises(ConfigError, match=r"^train\.batch_tokens = 32 .*train\.bptt \(64\)"):
        from_dict(raw)
    raw = config_dict("classify", tmp_path / "r", teacher_forcing=0.5)
    with pytest.raises(ConfigError, match=r"^train\.teacher_forcing = 0\.5 .*classify"):
        from_dict(raw)


# --- evaluate_*: the predictions line up with the examples -------------------------------------


class _FirstTokenClassifier(torch.nn.Module):
    """Predicts label (first token id) % 2, whatever the batch order."""

    def forward(self, src, src_len):
        return torch.nn.functional.one_hot(src[:, 0] % 2, 2).float() * 10


class _ParityTagger(torch.nn.Module):
    """Tags each word with (word id) % 3."""

    def forward(self, words, lengths, chars=None, char_len=None):
        return torch.nn.functional.one_hot(words % 3, 3).float() * 10


def test_evaluate_classifier_and_tagger_score_each_example_as_its_own():
    from tandem.structures.classify import evaluate as evaluate_classifier
    from tandem.structures.tag import evaluate as evaluate_tagger

    rng = random.Random(0)
    examples = [([rng.randrange(4, 30) for _ in range(rng.randint(1, 9))], rng.randrange(2))
                for _ in range(50)]
    res = evaluate_classifier(_FirstTokenClassifier(), examples, 2, batch_tokens=40)
    expected = [ids[0] % 2 for ids, _ in examples]
    assert res["predictions"] == expected
    assert res["accuracy"] == pytest.approx(
        100 * sum(p == g for p, (_, g) in zip(expected, examples, strict=True)) / 50)
    sents = []
    for _ in range(30):
        words = [rng.randrange(4, 30) for _ in range(rng.randint(1, 7))]
        sents.append((words, [[5] for _ in words], [w % 3 if rng.random() < 0.7 else 0
                                                   for w in words]))
    unseen = [[w > 20 for w in s[0]] for s in sents]
    res = evaluate_tagger(_ParityTagger(), sents, unseen, batch_tokens=30)
    assert res["predictions"] == [[w % 3 for w in s[0]] for s in sents]
    pairs = [(w % 3 == t, new) for s, u in zip(sents, unseen, strict=True)
             for w, t, new in zip(s[0], s[2], u, strict=True)]
    assert res["token_acc"] == pytest.approx(100 * sum(ok for ok, _ in pairs) / len(pairs))
    assert res["unseen_acc"] == pytest.approx(
        100 * sum(ok for ok, new in pairs if new) / sum(new for _, new in pairs))
    assert 0 < res["token_acc"] < 100
