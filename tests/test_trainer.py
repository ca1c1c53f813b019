"""The Trainer (tandem/train/trainer.py): building it acts on nothing, the run folder is
claimed explicitly, progress output fits where it goes, and every optimizer / schedule /
stopping option changes what training does."""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import run_config
from tandem import checkpoint
from tandem.cli import main as cli_main
from tandem.config import TrainConfig, from_dict, load_config
from tandem.data.vocab import PAD_ID
from tandem.errors import ConfigError
from tandem.model.loss import token_nll
from tandem.structures.seq2seq import teacher_forcing_ratio
from tandem.structures.translator import load
from tandem.train import trainer as trainer_module
from tandem.train.progress import time_left
from tandem.train.run import claim_run
from tandem.train.trainer import Trainer, train


def _raw(run_dir: Path, **train) -> dict:
    return run_config(run_dir, "t", {"cell": "gru", "dropout": 0.0}, **{"keep_last": 0,
                      "tensorboard": False, "valid_every": 10**6, **train})


def _cfg(run_dir: Path, **train):
    return from_dict(_raw(run_dir, **train))


def _claimed(run_dir: Path, **train) -> Trainer:
    cfg = _cfg(run_dir, **train)
    claim_run(cfg)
    return Trainer.from_config(cfg)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- building does not act ------------------------------------------------------------------


def test_building_a_trainer_touches_no_files_and_adds_no_log_handler(tmp_path):
    run = train(_cfg(tmp_path / "r", max_steps=2))
    before, handlers = _files(run), list(logging.getLogger("tandem").handlers)
    trainer = Trainer.from_config(_cfg(run, max_steps=5))  # an earlier run is there
    assert _files(run) == before
    assert logging.getLogger("tandem").handlers == handlers
    assert trainer.state.step == 0  # resuming is a step of its own
    assert trainer.resume() == run / "last.pt" and trainer.state.step == 2
    assert _files(run) == before
    Trainer.from_config(_cfg(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def test_every_attribute_exists_once_the_trainer_is_built(tmp_path):
    trainer = _claimed(tmp_path / "r", max_steps=3)
    names = set(vars(trainer))
    assert {"data_wait", "step_time", "scalars", "signals", "state"} <= names
    assert trainer.data_wait == trainer.step_time == 0.0 and trainer.scalars is None
    trainer.train()
    assert set(vars(trainer)) == names
    assert trainer.step_time > 0.0 and trainer.data_wait >= 0.0 and trainer.scalars is None


def test_claim_run_writes_the_config_and_guards_an_earlier_run(tmp_path):
    cfg = _cfg(tmp_path / "r", max_steps=2)
    out = claim_run(cfg)
    assert load_config(out / "config.yaml") == cfg
    train(cfg, resume=True)
    with pytest.raises(ConfigError, match=r"r already holds a training run \(best\.pt, "
                                          r"last\.pt, scalars\.csv, train\.log\)"):
        claim_run(cfg)
    claim_run(cfg, resume=True)
    assert (out / "best.pt").is_file()
    claim_run(cfg, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_tandem_train_can_be_called_again_after_its_subpackage_is_imported(tmp_path):
    """`tandem.train` is a function and the subpackage tandem/train at once; importing the
    subpackage must not turn the function into a module that cannot be called."""
    import tandem
    import tandem.train.trainer  # noqa: F401 - what a user or a test may import first

    first = tandem.train(_cfg(tmp_path / "a", max_steps=1))
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path / "b", max_steps=1)), encoding="utf-8")
    second = tandem.train(path, ["train.max_steps=2"])
    assert first == tmp_path / "a" and second == tmp_path / "b"
    assert checkpoint.load(second / "last.pt")["train_state"]["step"] == 2


# --- progress output ------------------------------------------------------------------------


def test_time_left_is_that_of_the_limit_that_binds_first():
    t = TrainConfig(max_steps=1000, max_minutes=10.0)
    assert time_left(t, 100, 10.0, 0.0) == (90.0, "max_steps")
    assert time_left(t, 100, 1.0, 120.0) == (480.0, "max_minutes")  # 900 s of steps left
    assert time_left(t, 100, 0.0, 120.0) == (480.0, "max_minutes")  # no rate known yet
    t = TrainConfig(max_steps=1000, max_epochs=2)
    assert time_left(t, 100, 10.0, 0.0, epochs_left_steps=50) == (5.0, "max_epochs")
    assert time_left(t, 100, 10.0, 0.0, epochs_left_steps=None) == (90.0, "max_steps")
    assert time_left(TrainConfig(), 10, 0.0, 5.0) == (None, None)


PLAIN_LINE = r"step (\d+)/40 loss \d+\.\d{3} lr [0-9.e-]+ tok/s \d+ eta \d+:\d\d:\d\d \(max_steps\)"


@pytest.mark.slow  # a `tandem train` process
def test_progress_to_a_pipe_is_plain_lines_not_a_carriage_return_bar(tmp_path):
    path = tmp_path / "cfg.yaml"
    raw = _raw(tmp_path / "run", max_steps=40, log_every=10, progress=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "tandem.cli", "train", str(path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr
    assert re.findall(f"^{PLAIN_LINE}$", res.stderr, re.M) == ["10", "20", "30", "40"]
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert len(re.findall(PLAIN_LINE, log)) == 4  # the run's log keeps them too


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_bar_with_the_binding_limits_eta(tmp_path, monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    run = train(_cfg(tmp_path / "r", max_steps=20, log_every=5, progress=True))
    shown = screen.getvalue()
    assert "\r" in shown and "20/20 steps" in shown
    assert re.search(r"loss \d+\.\d{3} lr [0-9.e-]+ tok/s \d+ eta \d+:\d\d:\d\d \(max_steps\)",
                     shown)
    assert not re.search(r"step \d+/20 loss", (run / "train.log").read_text(encoding="utf-8"))


class _StepClock:
    """The trainer's clock in a test: one second passes per training step and none
    otherwise, so every time, rate and ETA computed from it is exact."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += 1.0


def test_the_eta_counts_to_max_minutes_when_that_ends_the_run_first(tmp_path, monkeypatch):
    """max_steps is ten million (months at one step a second); max_minutes, 100, binds. The
    run is stopped by a real SIGTERM right after its first progress line."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    clock = _StepClock()
    # the trainer reads wall time through its module's `time`; step timings stay real
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(
        time=clock.time, perf_counter=time.perf_counter))
    step = Trainer.train_step

    def timed_step(self, batch):
        out = step(self, batch)
        clock.tick()
        return out

    monkeypatch.setattr(Trainer, "train_step", timed_step)
    estimate = trainer_module.time_left

    def then_stop(*args, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        return estimate(*args, **kw)

    monkeypatch.setattr(trainer_module, "time_left", then_stop)
    run = train(_cfg(tmp_path / "r", max_steps=10**7, max_minutes=100.0, log_every=5,
                     progress=True))
    lines = re.findall(r"step 5/10000000 .*", (run / "train.log").read_text(encoding="utf-8"))
    assert len(lines) == 1, lines
    # 5 steps took 5 s: 100 min - 5 s = 1:39:55 left by the time limit, against
    # (10**7 - 5) s at 1 step/s by max_steps
    assert re.fullmatch(r"step 5/10000000 loss \S+ lr \S+ tok/s \d+ eta 1:39:55 "
                        r"\(max_minutes\)", lines[0]), lines[0]
    state = checkpoint.load(run / "last.pt")["train_state"]
    assert state["step"] == 5 and state["elapsed"] == 5.0


# --- optimizer, schedules, stopping -----------------------------------------------------------


def _batch(trainer: Trainer):
    return next(trainer.batches())


@pytest.mark.pins("train.optimizer", "train.lr")
def test_sgd_takes_plain_gradient_steps(tmp_path):
    trainer = Trainer.from_config(_cfg(tmp_path / "r", optimizer="sgd", lr=0.1, clip_grad=0.0))
    assert type(trainer.optimizer) is torch.optim.SGD
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step(_batch(trainer))
    moved = 0
    for old, p in zip(before, trainer.model.parameters(), strict=True):
        if p.grad is not None:
            assert torch.allclose(p.detach(), old - 0.1 * p.grad, atol=1e-7)
            moved += int(not torch.equal(p.detach(), old))
    assert moved > 5  # Adam's first step (about lr * sign(grad)) would fail the check above


def _sgd_step(run_dir: Path, clip_grad: float) -> list[torch.Tensor]:
    """The gradient one SGD step (lr 0.1) applied to a fresh model on the first batch, as
    the weights' move / lr (the same model and batch whatever `clip_grad`: seeded)."""
    trainer = Trainer.from_config(_cfg(run_dir, optimizer="sgd", lr=0.1, clip_grad=clip_grad))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step(_batch(trainer))
    return [(old - p.detach()) / 0.1 for old, p in zip(before, trainer.model.parameters(),
                                                        strict=True)]


@pytest.mark.pins("train.clip_grad")
def test_clip_grad_scales_the_update_down_to_that_gradient_norm(tmp_path):
    full = _sgd_step(tmp_path / "none", 0.0)  # 0: no clipping
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                       for g in full])))
    assert norm > 0
    clipped = _sgd_step(tmp_path / "clipped", norm / 4)
    # the same direction at a quarter of the length: each weight moved a quarter as far
    for c, f in zip(clipped, full, strict=True):
        torch.testing.assert_close(c, f / 4, rtol=1e-3, atol=1e-5)
    # a limit above the gradient's norm leaves the step alone
    for c, f in zip(_sgd_step(tmp_path / "loose", norm * 4), full, strict=True):
        torch.testing.assert_close(c, f, rtol=0, atol=0)


@pytest.mark.pins("train.warmup_steps")
def test_warmup_ramps_the_learning_rate_up_linearly(tmp_path):
    trainer = Trainer.from_config(_cfg(tmp_path / "r", lr=0.01, warmup_steps=4))
    batch, lrs = _batch(trainer), []
    for _ in range(6):
        trainer.train_step(batch)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])


@pytest.mark.pins("train.lr_schedule", "train.lr_patience", "train.min_lr", "train.valid_metric")
def test_plateau_decays_the_rate_after_lr_patience_stalls(tmp_path):
    trainer = _claimed(tmp_path / "r", lr=0.01, lr_schedule="plateau", lr_patience=2,
                       lr_decay=0.5, min_lr=0.003, valid_metric="loss")
    losses = iter([1.0, 2.0, 2.0, 2.0, 2.0, 0.5, 2.0, 2.0])
    trainer.validate = lambda: {"loss": next(losses)}
    batch, lrs = _batch(trainer), []
    for _ in range(8):
        trainer.train_step(batch)  # keeps the decayed rate (the schedule does not reset it)
        trainer.validate_and_save()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    # best, stall, stall -> halve; stall, stall -> halve to the floor; best; stalls at the floor
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.003, 0.003, 0.003, 0.003])


@pytest.mark.pins("train.patience", "train.valid_every")
def test_patience_stops_training_early(tmp_path):
    trainer = _claimed(tmp_path / "r", max_steps=100, valid_every=2, patience=2,
                       valid_metric="loss")
    losses = itertools.chain([1.0], itertools.repeat(1.5))
    trainer.validate = lambda: {"loss": next(losses)}
    trainer.train()
    assert trainer.state.step == 6 and trainer.state.best_step == 2  # best at 2; 4, 6 worse
    assert trainer.state.bad_validations == 2


def _ratios(trainer: Trainer, steps: int) -> list[float]:
    """The teacher-forcing ratio the model's forward pass got at each of `steps` steps."""
    seen, forward = [], trainer.model.forward

    def spy(*args, **kw):
        seen.append(kw["teacher_forcing"])
        return forward(*args, **kw)

    trainer.model.forward = spy
    batch = _batch(trainer)
    for _ in range(steps):
        trainer.train_step(batch)
    return seen


@pytest.mark.pins("train.teacher_forcing")
def test_teacher_forcing_is_the_ratio_each_step_is_trained_with(tmp_path):
    trainer = Trainer.from_config(_cfg(tmp_path / "r", teacher_forcing=0.6))
    assert _ratios(trainer, 3) == [0.6, 0.6, 0.6]  # constant schedule


@pytest.mark.pins("train.tf_schedule", "train.tf_min", "train.tf_k")
def test_tf_schedule_sets_the_teacher_forcing_ratio_of_each_step(tmp_path):
    trainer = Trainer.from_config(_cfg(tmp_path / "r", teacher_forcing=1.0, tf_min=0.2,
                                       tf_schedule="linear", tf_k=10))
    assert _ratios(trainer, 5) == pytest.approx([1.0, 0.92, 0.84, 0.76, 0.68])
    assert teacher_forcing_ratio(trainer.cfg, 100) == pytest.approx(0.2)  # floored at tf_min


@pytest.mark.parametrize("schedule, at_k", [("exponential", 0.2 + 0.8 / 2),
                                             ("inverse_sigmoid", 0.2 + 0.8 * 50 / (50 + math.e))])
def test_tf_schedules_fall_from_teacher_forcing_to_tf_min(schedule, at_k):
    cfg = from_dict({"data": {"task": "reverse"},
                     "train": {"teacher_forcing": 1.0, "tf_min": 0.2, "tf_schedule": schedule,
                               "tf_k": 50}})
    ratios = [teacher_forcing_ratio(cfg, s) for s in range(0, 2000, 10)]
    assert all(a > b for a, b in zip(ratios, ratios[1:], strict=False))
    assert teacher_forcing_ratio(cfg, 50) == pytest.approx(at_k, rel=1e-6)
    assert ratios[-1] == pytest.approx(0.2, abs=1e-3)


def test_label_smoothing_mixes_in_the_uniform_cross_entropy():
    eps = 0.1
    logits = torch.tensor([[[4.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0, 0.0],
                            [1.0, 2.0, 3.0, 4.0, 5.0]]])
    target = torch.tensor([[1, 2, PAD_ID]])
    logp = F.log_softmax(logits[0, :2], -1)
    nll = -logp[0, 1] - logp[1, 2]
    uniform = -logp.mean(-1).sum()
    smoothed, n = token_nll(logits, target, eps)
    plain, _ = token_nll(logits, target)
    assert n == 2 and plain == pytest.approx(float(nll))
    assert smoothed == pytest.approx(float((1 - eps) * nll + eps * uniform))
    assert abs(float(smoothed) - float(plain)) > 0.1


@pytest.mark.pins("train.label_smoothing")
def test_training_applies_label_smoothing_to_its_loss(tmp_path):
    losses = {}
    for eps in (0.0, 0.2):
        trainer = Trainer.from_config(_cfg(tmp_path / f"r{eps}", label_smoothing=eps))
        logits = []
        trainer.model.register_forward_hook(
            lambda m, i, out, seen=logits: seen.append(out.detach()))
        batch = _batch(trainer)
        losses[eps], _ = trainer.train_step(batch)
        target = batch.tgt_out
        expected = F.cross_entropy(logits[0].reshape(-1, logits[0].size(-1)),
                                   target.reshape(-1), ignore_index=PAD_ID,
                                   label_smoothing=eps, reduction="sum")
        assert losses[eps] == pytest.approx(float(expected), rel=1e-6)
    assert losses[0.2] != pytest.approx(losses[0.0], rel=1e-6)  # same weights, same batch


# --- checkpoints: keep_last, averaging from the command line -----------------------------------


@pytest.fixture(scope="module")
def numbered_run(tmp_path_factory) -> Path:
    """Validations (and checkpoints) at steps 3, 6, 9 and 12, keeping the last two."""
    run = tmp_path_factory.mktemp("keep") / "run"
    return train(_cfg(run, max_steps=12, valid_every=3, keep_last=2))


@pytest.mark.pins("train.keep_last")
def test_keep_last_keeps_only_the_newest_numbered_checkpoints(numbered_run, tmp_path):
    assert sorted(p.name for p in numbered_run.glob("ckpt-*.pt")) == ["ckpt-12.pt", "ckpt-9.pt"]
    for step in (9, 12):
        ckpt = checkpoint.load(numbered_run / f"ckpt-{step}.pt")
        assert ckpt["train_state"]["step"] == step
    none = train(_cfg(tmp_path / "none", max_steps=6, valid_every=3, keep_last=0))
    assert not list(none.glob("ckpt-*.pt"))


@pytest.fixture
def cli():
    """`tandem ...` in this process; the log handler the command line sets up on stderr is
    taken away again afterwards (pytest closes its captured stderr)."""
    log = logging.getLogger("tandem")
    saved = log.handlers[:], log.level, log.propagate
    log.handlers.clear()
    yield cli_main
    log.handlers[:], log.level, log.propagate = saved


def test_tandem_average_on_the_command_line(numbered_run, tmp_path, capsys, cli):
    a, b = numbered_run / "ckpt-9.pt", numbered_run / "ckpt-12.pt"
    out = tmp_path / "avg.pt"
    assert cli(["average", str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"averaged 2 checkpoints -> {out}\n"
    wa, wb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    avg = checkpoint.load(out)
    assert avg["train_state"]["averaged_from"] == [str(a), str(b)]
    for k, v in avg["model"].items():
        assert torch.equal(v, ((wa[k].double() + wb[k].double()) / 2).to(v.dtype)), k
    assert not torch.equal(wa["decoder.generator.weight"], wb["decoder.generator.weight"])
    assert load(out).translate(["abc"], beam=1)  # a model that decodes


def test_tandem_average_refuses_checkpoints_of_different_runs(numbered_run, tmp_path, capsys,
                                                              cli):
    raw = _raw(tmp_path / "other", max_steps=1)
    raw["model"]["hidden_size"] = 24
    other = train(from_dict(raw))
    code = cli(["average", str(numbered_run / "ckpt-9.pt"), str(other / "last.pt"),
                     "--out", str(tmp_path / "avg.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.fullmatch(rf"error: {re.escape(str(other / 'last.pt'))}: not from the same run as "
                        rf"{re.escape(str(numbered_run / 'ckpt-9.pt'))} \(model config or "
                        r"vocabularies differ\); only checkpoints of one run average\n", err), err
    assert not (tmp_path / "avg.pt").exists()


# --- sentencepiece, end to end --------------------------------------------------------------


def test_training_with_sentencepiece_tokenizers_end_to_end(tmp_path):
    raw = _raw(tmp_path / "sp", max_steps=10, valid_every=10, valid_metric="loss")
    raw["data"].update(task="dates", task_sizes=[300, 20, 20], src_tokenizer="sentencepiece",
                       tgt_tokenizer="sentencepiece", sp_vocab_size=200)
    run = train(from_dict(raw))
    ckpt = checkpoint.load(run / "best.pt")
    assert ckpt["fields"]["src_tok"]["kind"] == "sentencepiece"
    assert isinstance(ckpt["fields"]["src_tok"]["model"], bytes)  # the model travels along
    tr = load(run / "best.pt")
    pieces = tr.fields.src_tok.tokenize("March 3rd, 1999")
    assert len(pieces) < len("March 3rd, 1999")  # pieces longer than one character
    assert any(len(p.strip("▁")) > 1 for p in tr.fields.src_vocab.itos[4:])
    out = tr.translate_full(["March 3rd, 1999"], beam=2)[0][0]
    assert out.src_tokens == pieces and isinstance(out.text, str)
