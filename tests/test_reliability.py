"""Nothing lost: exact resume, signals, kill -9 at random moments, non-finite losses,
checksummed checkpoints."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_config
from tandem import checkpoint
from tandem.cli import main as cli_main
from tandem.config import from_dict
from tandem.errors import CheckpointError, ConfigError, TrainingError
from tandem.train.run import StopSignals, claim_run
from tandem.train.trainer import Trainer, train


def _raw(run_dir: Path, **train) -> dict:
    return run_config(run_dir, "rel", {"cell": "lstm", "dropout": 0.3}, **{"keep_last": 2,
                      "teacher_forcing": 0.8, **train})


def _trainer(run_dir: Path, resume: bool = False, **train) -> Trainer:
    """What `train()` does before its last step, keeping the Trainer to look at."""
    cfg = from_dict(_raw(run_dir, **train))
    claim_run(cfg, resume=resume)
    trainer = Trainer.from_config(cfg)
    if resume:
        trainer.resume()
    return trainer


def _params(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return checkpoint.load(run / name)["model"]


@pytest.mark.slow
def test_resume_gives_bit_identical_weights(tmp_path, caplog):
    """2N steps in one go == N steps, stop, resume for N more (dropout and scheduled
    sampling draw random numbers; N is in the middle of an epoch)."""
    n = 13
    caplog.set_level("INFO", logger="tandem")
    one = train(from_dict(_raw(tmp_path / "one", max_steps=2 * n, valid_every=n)))
    assert "since resuming" not in caplog.text
    two = tmp_path / "two"
    train(from_dict(_raw(two, max_steps=n, valid_every=n)))
    first = _params(two)
    half = checkpoint.load(two / "last.pt")["train_state"]
    assert half["batch_in_epoch"] > 0  # stopped inside an epoch
    caplog.clear()
    train(from_dict(_raw(two, max_steps=2 * n, valid_every=n)), resume=True)
    # the summary counts the whole run's training time, not only the resumed part
    assert re.search(rf"done: {2 * n} steps in [0-9.]+ min \([0-9.]+ min since resuming\)",
                     caplog.text)
    a, b = _params(one), _params(two)
    assert any(not torch.equal(first[k], b[k]) for k in b)  # it really trained on
    for k in a:
        assert torch.equal(a[k], b[k]), k
    state = checkpoint.load(two / "last.pt")["train_state"]
    assert state["step"] == 2 * n and state["epoch"] > half["epoch"]  # crossed an epoch end
    log_one = [json.loads(x) for x in (one / "valid.jsonl").read_text().splitlines()]
    log_two = [json.loads(x) for x in (two / "valid.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in log_one] == [x["loss"] for x in log_two]


def _epoch_length(tmp_path) -> int:
    trainer = _trainer(tmp_path / "len", max_steps=10**6, max_epochs=1, valid_every=10**6)
    trainer.train()
    return trainer.state.step


@pytest.mark.slow
def test_max_epochs_trains_exactly_that_many_epochs(tmp_path):
    per_epoch = _epoch_length(tmp_path)
    trainer = _trainer(tmp_path / "two", max_steps=10**6, max_epochs=2, valid_every=10**6)
    trainer.train()
    assert per_epoch > 3 and trainer.state.step == 2 * per_epoch


@pytest.mark.slow
def test_resume_at_an_epoch_boundary_is_bit_identical(tmp_path):
    n = _epoch_length(tmp_path)
    one = train(from_dict(_raw(tmp_path / "one", max_steps=n + 3, valid_every=n)))
    two = tmp_path / "two"
    train(from_dict(_raw(two, max_steps=n, valid_every=n)))
    train(from_dict(_raw(two, max_steps=n + 3, valid_every=n)), resume=True)
    a, b = _params(one), _params(two)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_when_no_checkpoint_is_readable(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=3, valid_every=3, keep_last=0)))
    (run / "last.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"none of its checkpoints can be read \(last\.pt\)"):
        train(from_dict(_raw(run, max_steps=6, valid_every=3)), resume=True)
    assert (run / "last.pt").read_bytes() == b"garbage"  # nothing overwritten


def test_resume_with_nothing_saved_starts_over(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=3, valid_every=3)), resume=True)
    assert checkpoint.load(run / "last.pt")["train_state"]["step"] == 3


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=6, valid_every=3)))
    (run / "last.pt").write_bytes(b"garbage")
    trainer = _trainer(run, resume=True, max_steps=8, valid_every=3)
    assert trainer.state.step == 6  # from ckpt-6.pt


def test_resume_skips_a_checkpoint_without_optimizer_and_random_states(tmp_path, caplog):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=6, valid_every=3)))
    (run / "last.pt").write_bytes((run / "best.pt").read_bytes())  # weights only
    with caplog.at_level("WARNING", logger="tandem"):
        trainer = _trainer(run, resume=True, max_steps=8, valid_every=3)
    assert trainer.state.step == 6  # from ckpt-6.pt
    assert re.search(r"cannot resume from .*last\.pt: .*last\.pt: no optimizer and random "
                     r"states, so not resumable", caplog.text), caplog.text


# --- non-finite losses -----------------------------------------------------------------


def _poison(trainer: Trainer, from_step: int, until_step: int = 10**9) -> None:
    forward = trainer.model.forward

    def bad(*args, **kw):
        out = forward(*args, **kw)
        if from_step <= trainer.state.step < until_step:
            return out * float("nan")
        return out
    trainer.model.forward = bad


@pytest.mark.pins("train.max_nonfinite_steps")
def test_nan_steps_are_skipped_then_training_stops_with_a_clear_error(tmp_path):
    trainer = _trainer(tmp_path / "r", max_steps=50, valid_every=4, max_nonfinite_steps=3)
    _poison(trainer, from_step=5)
    with pytest.raises(TrainingError) as e:
        trainer.train()
    msg = str(e.value)
    assert "step 8" in msg and "NaN/Inf" in msg and "train.lr" in msg and "last.pt" in msg
    assert trainer.state.skipped_steps == 3
    good = _params(trainer.out)  # saved at step 4, before the bad steps
    assert checkpoint.load(trainer.out / "last.pt")["train_state"]["step"] == 4
    now = {k: v.cpu() for k, v in trainer.model.state_dict().items()}
    # step 5 was a good update after the checkpoint; the 3 bad ones changed nothing more
    assert all(torch.isfinite(v).all() for v in now.values())
    assert any(not torch.equal(good[k], now[k]) for k in good)


def test_a_single_nan_step_is_skipped_and_training_goes_on(tmp_path):
    trainer = _trainer(tmp_path / "r", max_steps=12, valid_every=12)
    _poison(trainer, from_step=4, until_step=5)
    trainer.train()
    assert trainer.state.step == 12 and trainer.state.skipped_steps == 1
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


# --- checkpoints -----------------------------------------------------------------------


def test_a_changed_weight_fails_the_checksum(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=2, valid_every=2)))
    obj = torch.load(run / "best.pt", weights_only=True)
    key = next(iter(obj["model"]))
    obj["model"][key].view(-1)[0] += 1.0
    torch.save(obj, run / "edited.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.load(run / "edited.pt")


# --- signals and kill -9, against real training processes -------------------------------

_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A failing test must not leave a training process running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tandem.cli", "train", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _STARTED.append(proc)
    return proc


def _write_config(tmp_path: Path, **train) -> Path:
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path / "run", **train)), encoding="utf-8")
    return path


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_and_exits_0(tmp_path, sig):
    cfg = _write_config(tmp_path, max_steps=100000, valid_every=10)
    proc = _start(tmp_path, str(cfg))
    _wait_for(tmp_path / "run" / "valid.jsonl", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"tandem train --resume {tmp_path / 'run'}" in err
    state = checkpoint.load(tmp_path / "run" / "last.pt")["train_state"]
    assert 10 <= state["step"] < 100000
    # and it goes on from there (in this process: the signal handling was the process's part)
    assert cli_main(["train", "--resume", str(tmp_path / "run"), "--set",
                     f"train.max_steps={state['step'] + 3}"]) == 0
    assert checkpoint.load(tmp_path / "run" / "last.pt")["train_state"]["step"] == \
        state["step"] + 3


def test_a_second_interrupt_quits_at_once():
    previous = signal.getsignal(signal.SIGINT)
    stop = StopSignals()
    try:
        with stop:
            assert signal.getsignal(signal.SIGINT) == stop.handle
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # Python runs the handler between bytecodes
            assert stop.received == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGINT) is previous  # put back on leaving
    finally:
        signal.signal(signal.SIGINT, previous)


def _step_of(path: Path) -> int:
    """The training step a checkpoint was written at; 0 when there is none yet."""
    return checkpoint.load(path)["train_state"]["step"] if path.exists() else 0


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_an_unusable_run(tmp_path):
    """3 times: start (or resume) training, wait until it has written a checkpoint newer
    than the one it started from, kill -9 it a random moment later (within the next steps,
    maybe while it writes one), check that every checkpoint left behind loads; then resume
    to the end. Each kill lands after a checkpoint, so each start after the first resumes,
    from the last.pt the kill left: the resumed steps follow from the steps counted here,
    whatever the machine's speed."""
    cfg = _write_config(tmp_path, max_steps=10**6, valid_every=5, keep_last=2)
    run = tmp_path / "run"
    log = run / "train.log"
    rng = random.Random(1)
    left_at: list[int] = []  # last.pt's step after each kill
    for _ in range(3):
        args = ["--resume", str(run)] if left_at else [str(cfg)]
        start = left_at[-1] if left_at else 0
        proc = _start(tmp_path, *args)
        end = time.time() + 300  # bounds the wait for a hung run; decides nothing
        while _step_of(run / "last.pt") <= start:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < end, f"no checkpoint after step {start} in 300 s"
            time.sleep(0.05)
        seen = _step_of(run / "last.pt")
        time.sleep(rng.uniform(0.0, 0.3))  # where the kill lands varies; nothing asserted on it
        proc.kill()
        proc.communicate()
        for ckpt in run.glob("*.pt"):  # whatever is there must load
            checkpoint.load(ckpt)
        left_at.append(_step_of(run / "last.pt"))
        assert left_at[-1] >= seen > start  # a kill can lose steps, never a checkpoint
    final = left_at[-1] + 7
    proc = _start(tmp_path, "--resume", str(run), "--set", f"train.max_steps={final}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert checkpoint.load(run / "last.pt")["train_state"]["step"] == final
    steps = [json.loads(x)["step"] for x in (run / "valid.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == final
    assert set(range(5, final, 5)) <= set(steps)  # no validation lost to a kill
    assert not list(run.glob(".*.tmp"))
    resumed = [int(s) for s in re.findall(r"resumed from \S+last\.pt at step (\d+)",
                                          log.read_text())]
    assert resumed == left_at  # rounds 2-3 and the last run, each from where the kill left it


def test_a_new_run_never_replaces_an_earlier_one_unless_asked(tmp_path):
    run = train(from_dict(_raw(tmp_path / "r", max_steps=2, valid_every=2)))
    before = (run / "best.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a training run \(best\.pt, "
                                          r"ckpt-2\.pt, last\.pt, scalars\.csv\).*--resume"):
        train(from_dict(_raw(run, max_steps=3, valid_every=3)))
    assert (run / "best.pt").read_bytes() == before
    train(from_dict(_raw(run, max_steps=3, valid_every=3)), overwrite=True)
    steps = [json.loads(x)["step"] for x in (run / "valid.jsonl").read_text().splitlines()]
    assert steps == [3]  # the old run's log went with it


def test_starting_over_drops_validations_that_have_no_checkpoint(tmp_path):
    """A kill between logging a validation and writing the first checkpoint."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "valid.jsonl").write_text('{"step": 5, "loss": 1.0}\n', encoding="utf-8")
    train(from_dict(_raw(run, max_steps=5, valid_every=5)), resume=True)
    steps = [json.loads(x)["step"] for x in (run / "valid.jsonl").read_text().splitlines()]
    assert steps == [5]
