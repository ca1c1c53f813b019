"""The training loop, in small named steps. `train(cfg, resume, overwrite)` runs them in order:

    out = claim_run(cfg, resume, overwrite)  # the run folder: refuse or clear an earlier
                                             # run, write config.yaml
    with run_log(out):                       # train.log
        trainer = Trainer.from_config(cfg)   # threads, seeds, data, model, optimizer
        if resume:
            trainer.resume()                 # the newest readable checkpoint
        trainer.train()                      # until a limit, early stopping or a signal

Building a Trainer touches no files; only `train()` writes into the run folder. What differs
between model structures (`model.structure`: data, model, batches, loss, validation, what
checkpoints store about fields) is in `structures.py`, one object per structure; the loop,
checkpoints, signals, NaN handling, scalars and early stopping here are the same for all.
Around the loop: `run.py` (run folder, log, random states, signals), `optim.py` (optimizer
and schedules), `progress.py` (what a person watching sees), `scalars.py` (curves).
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tandem import checkpoint, metrics
from tandem.config import Config
from tandem.cpu import configure, resolve_device
from tandem.errors import CheckpointError, TrainingError
from tandem.model import fast
from tandem.train.optim import make_optimizer, scheduled_lr
from tandem.train.progress import Progress, time_left
from tandem.train.run import (
    StopSignals,
    capture_rng,
    claim_run,
    restore_rng,
    run_log,
    seed_run,
    state_tuples,
)
from tandem.train.scalars import Scalars
from tandem.train.structures import Structure, structure_for, training_kernels, valid_metric

log = logging.getLogger("tandem")


@dataclass
class TrainState:
    """The counters of a run, saved in every checkpoint (`train_state`) and restored on
    resume."""

    step: int = 0
    epoch: int = 0
    best_score: float | None = None
    best_step: int = 0
    bad_validations: int = 0
    lr_bad: int = 0
    elapsed: float = 0.0  # wall-clock seconds of training so far, across resumes
    history: list[dict] = field(default_factory=list)
    batch_in_epoch: int = 0  # batches of the current epoch already trained on
    skipped_steps: int = 0  # steps skipped because the loss or gradients were not finite


# --- the trainer ---------------------------------------------------------------------------


class Trainer:
    """Trains one model of `model.structure` on `data` as `cfg.train` says, writing into
    `cfg.out_dir`. `data` is what the structure's `load(cfg)` returns (seq2seq: TrainData).

    Building one creates the structure object (`structure`), the model and the optimizer on
    `device` (default `train.device`) and touches no files; the initial weights come from
    torch's global generator, so seed it first (`seed_run`), as `from_config` does. Then,
    optionally, `resume()`; then `train()`. `train_step`, `validate` and `batches` are usable
    on their own.

    Attributes besides the parts above: `fields` (the structure's fields), `metric` (the
    valid metric in use), `state` (TrainState: the counters checkpoints keep), `rng` (the
    data order's generator), `signals` (StopSignals), `scalars` (the open scalars.csv while
    `train()` runs, else None), and `data_wait` / `step_time`: seconds the last `train()`
    spent waiting for batches / inside `train_step` (read by `tandem bench`).
    """

    def __init__(self, cfg: Config, data: Any, device: torch.device | None = None) -> None:
        self.cfg = cfg
        self.out = cfg.out_dir
        if device is None:
            device = resolve_device(cfg.train.device, "train.device")
        self.device = device
        self.structure: Structure = structure_for(cfg)(cfg, data, device)
        self.fields = self.structure.fields
        self.metric = valid_metric(cfg)
        self.model = self.structure.build_model().to(self.device)
        self._training_kernels()
        self.optimizer = make_optimizer(self.model, cfg.train)
        self.state = TrainState()
        self.rng = random.Random(cfg.train.seed)  # the data order
        self._epoch_rng: tuple | None = None  # self.rng's state when this epoch's order was drawn
        self._epoch_len = 0  # batches in the current epoch (known once its order is drawn)
        self.signals = StopSignals()
        self.scalars: Scalars | None = None
        self._t0, self._elapsed0 = 0.0, 0.0  # wall clock at train() start; elapsed before it
        self._nonfinite_in_row = 0
        self.data_wait = 0.0
        """Seconds the last `train()` waited for batches."""
        self.step_time = 0.0
        """Seconds the last `train()` spent in `train_step`."""

    @classmethod
    def from_config(cls, cfg: Config) -> Trainer:
        """The usual way to build one: sets torch's threads (`train.threads`), checks the
        device, seeds the global generators (`train.seed`), loads the data and builds.
        Touches no files in the run folder."""
        threads = configure(cfg.train.threads)
        device = resolve_device(cfg.train.device, "train.device")
        log.info("device: %s; torch threads: %d", device, threads)
        seed_run(cfg.train.seed)
        return cls(cfg, structure_for(cfg).load(cfg), device)

    def _training_kernels(self) -> fast.Plan:
        """The model's kernels for training on this device and precision (validation's
        Translator switches them to inference ones; this switches back)."""
        return training_kernels(self.model, self.cfg, self.device)

    # --- resuming ------------------------------------------------------------------------
    def resume(self) -> Path | None:
        """Continue exactly where the newest complete checkpoint in the run folder left off:
        weights, optimizer, schedule, RNG states, data order and position, counters. Returns
        that checkpoint, or None when there is none (the run starts from the beginning).
        Checkpoints that cannot be read (a kill -9 can only leave stray temporary files, but
        a disk can fail) are skipped with a warning; when none can, CheckpointError."""
        for tmp in self.out.glob(".*.pt.*.tmp"):  # an interrupted write
            tmp.unlink(missing_ok=True)
        # last.pt is written before ckpt-N.pt at every save, so it is the newest when readable
        newest_first = [self.out / "last.pt", *reversed(checkpoint.numbered(self.out))]
        found = [p for p in newest_first if p.is_file()]
        ckpt, path = None, None
        for path in found:
            try:
                ckpt = checkpoint.load(path)
                if "optimizer" not in ckpt or "rng" not in ckpt:
                    raise CheckpointError(f"{path}: no optimizer and random states, so not "
                                          "resumable (as best.pt and averaged checkpoints)")
                break
            except CheckpointError as e:
                ckpt = None
                log.warning("cannot resume from %s: %s", path, e)
        if ckpt is None and found:
            raise CheckpointError(f"{self.out}: none of its checkpoints can be read "
                                  f"({', '.join(p.name for p in found)}); nothing was changed")
        if ckpt is None:
            log.info("nothing to resume in %s; starting from the beginning", self.out)
            self._truncate_valid_log()  # validations logged before the kill have no checkpoint
            return None
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(**ckpt["train_state"])
        restore_rng(ckpt["rng"], self.device)
        self.rng.setstate(state_tuples(ckpt["rng"]["data"]))
        epoch = ckpt["rng"]["epoch"]
        self._epoch_rng = None if epoch is None else state_tuples(epoch)
        self.structure.restore(ckpt)
        self._truncate_valid_log()
        log.info("resumed from %s at step %d", path, self.state.step)
        return path

    def _rng_state(self) -> dict:
        """Every generator's state: the global ones, the data order's, and the epoch's."""
        return {**capture_rng(self.device), "data": self.rng.getstate(),
                "epoch": self._epoch_rng}

    def _truncate_valid_log(self) -> None:
        """Drop validations recorded after the checkpoint we resume from (a kill between
        writing valid.jsonl and the checkpoint), so the log matches the run."""
        path = self.out / "valid.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            keep = [x for x in lines if x.strip() and json.loads(x)["step"] <= self.state.step]
            if len(keep) != len(lines):
                checkpoint.write_text_atomic(path, "".join(x + "\n" for x in keep))

    # --- one step ------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        """scheduled_lr with this run's elapsed time and the optimizer's current rate."""
        elapsed = self._elapsed0 + time.time() - self._t0 if self._t0 else 0.0
        plateau = self.cfg.train.lr_schedule == "plateau"
        current = self.optimizer.param_groups[0]["lr"] if plateau else self.cfg.train.lr
        return scheduled_lr(self.cfg.train, step, current, elapsed)

    def train_step(self, batch: Any) -> tuple[float, int]:
        """One update on `batch` (one of `batches()`); returns (summed loss, scored targets:
        target tokens, or items for classify). A NaN/Inf loss or gradient skips the update
        (the weights stay as they were) and is counted; `train.max_nonfinite_steps` in a row
        stop training (TrainingError)."""
        t = self.cfg.train
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr(self.state.step)
        loss, n = self.structure.loss(self.model, batch, self.state.step)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            (loss / n).backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                  t.clip_grad or float("inf"))
            finite = bool(torch.isfinite(norm))
        self.state.step += 1
        self.structure.step_done(finite)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped_steps += 1
            self._nonfinite_in_row += 1
            log.warning("step %d: non-finite loss or gradient; update skipped (%d in a row)",
                        self.state.step, self._nonfinite_in_row)
            if self._nonfinite_in_row >= t.max_nonfinite_steps:
                raise TrainingError(
                    f"step {self.state.step}: the loss or its gradient was NaN/Inf for "
                    f"{self._nonfinite_in_row} steps in a row, so training stopped. Likely "
                    f"causes: a learning rate too high (train.lr = {t.lr:g}; try a tenth), "
                    f"no gradient clipping (train.clip_grad = {t.clip_grad:g}), or bad data. "
                    f"The last good checkpoint is {self.out / 'last.pt'}")
            return 0.0, 0
        self._nonfinite_in_row = 0
        self.optimizer.step()
        return float(loss.detach()), n

    # --- validation ----------------------------------------------------------------------
    def dev_loss(self) -> float:
        """Mean loss per scored target on the dev set (no label smoothing)."""
        return self.structure.dev_loss(self.model)

    def validate(self) -> dict[str, float]:
        """The structure's dev metrics (seq2seq: dev loss and perplexity, and unless the
        valid metric is one of them, the dev set decoded and scored). Empty without a dev
        set."""
        result = self.structure.validate(self.model)
        self.model.train()
        return result

    def _improved(self, score: float) -> bool:
        best = self.state.best_score
        if best is None:
            return True
        hib = metrics.higher_is_better(self.metric)
        return score > best if hib else score < best

    # --- checkpoints ---------------------------------------------------------------------
    def checkpoint_dict(self, with_optimizer: bool = True) -> dict:
        """What a checkpoint holds (see tandem.checkpoint); `with_optimizer` adds the
        optimizer and RNG states a resume needs."""
        d = {"model": self.model.state_dict(), "config": self.cfg.to_dict(),
             "fields": self.fields.state(), "train_state": vars(self.state).copy(),
             "structure": self.structure.name}
        if with_optimizer:
            d["optimizer"] = self.optimizer.state_dict()
            d["rng"] = self._rng_state()
            d.update(self.structure.resume_state())
        return d

    def save(self, is_best: bool) -> None:
        """last.pt, best.pt when `is_best`, and ckpt-STEP.pt keeping the newest
        `train.keep_last` of those."""
        ckpt = self.checkpoint_dict()
        checkpoint.save(ckpt, self.out / "last.pt")
        if is_best:
            checkpoint.save(self.checkpoint_dict(with_optimizer=False), self.out / "best.pt")
        if self.cfg.train.keep_last:
            checkpoint.save(ckpt, self.out / f"ckpt-{self.state.step}.pt")
            for p in checkpoint.numbered(self.out)[: -self.cfg.train.keep_last]:
                p.unlink(missing_ok=True)

    def validate_and_save(self) -> bool:
        """Validate, record, checkpoint; returns True when training should stop early."""
        res = self.validate()
        score = res.get(self.metric)
        is_best = score is not None and self._improved(score)
        if is_best:
            self.state.best_score, self.state.best_step = score, self.state.step
            self.state.bad_validations = self.state.lr_bad = 0
        elif score is not None:
            self.state.bad_validations += 1
            self.state.lr_bad += 1
        self._decay_on_plateau()
        self.state.elapsed = self._elapsed0 + time.time() - self._t0
        entry = {"step": self.state.step, "elapsed_s": round(self.state.elapsed, 1),
                 **{k: round(v, 4) for k, v in res.items()},
                 "lr": self.optimizer.param_groups[0]["lr"], "best": is_best,
                 "data_wait_s": round(self.data_wait, 2)}
        self.state.history.append(entry)
        if self.scalars is not None:
            self.scalars.add(self.state.step, self.state.elapsed,
                             {f"dev/{k}": v for k, v in res.items()})
        with open(self.out / "valid.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        log.info("valid step %d: %s%s", self.state.step,
                 " ".join(f"{k}={v:.4g}" for k, v in res.items()), " (best)" if is_best else "")
        self.save(is_best or not self.structure.has_dev)
        p = self.cfg.train.patience
        return p is not None and self.state.bad_validations >= p

    def _decay_on_plateau(self) -> None:
        """plateau: `train.lr_patience` validations without improvement multiply the rate by
        `train.lr_decay` (not below `train.min_lr`)."""
        t = self.cfg.train
        if t.lr_schedule == "plateau" and self.state.lr_bad >= t.lr_patience:
            for g in self.optimizer.param_groups:
                g["lr"] = max(t.min_lr, g["lr"] * t.lr_decay)
            self.state.lr_bad = 0

    # --- the loop ------------------------------------------------------------------------
    def batches(self) -> Iterator[Any]:
        """Training batches forever, epoch after epoch. Each epoch's plan is drawn from
        `self.rng` (`structure.epoch`); its state before the draw is kept, so a resumed run
        redraws the same plan and skips the batches already trained on."""
        while True:
            if self._epoch_rng is None:
                self._epoch_rng = self.rng.getstate()
            else:  # resuming inside an epoch
                self.rng.setstate(self._epoch_rng)
            order = self.structure.epoch(self.rng)
            self._epoch_len = len(order)
            while self.state.batch_in_epoch < len(order):
                item = order[self.state.batch_in_epoch]
                self.state.batch_in_epoch += 1
                yield self.structure.batch(item)
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            self._epoch_rng = None

    def train(self) -> Path:
        """Run until max_steps, max_epochs, the time budget (`train.max_minutes`, counted over
        the whole run, resumes included), early stopping, or SIGINT/SIGTERM (checkpoint at
        the step boundary, then a normal return). Writes checkpoints, valid.jsonl and
        scalars.csv into the run folder (created if missing; `claim_run` first keeps an
        earlier run safe); returns the folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s parameters; %s", f"{n_params:,}", self.structure.describe())
        self.scalars = Scalars(self.out, self.state.step, self.cfg.train.tensorboard)
        try:
            with self.signals:
                return self._loop()
        finally:
            self.scalars.close()
            self.scalars = None

    def _loop(self) -> Path:
        t = self.cfg.train
        start = self._t0 = time.time()
        self._elapsed0 = self.state.elapsed
        deadline = start + t.max_minutes * 60 - self._elapsed0 if t.max_minutes else None
        progress = Progress(t.max_steps, self.state.step, t.progress)
        first_step = self.state.step
        tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, time.time()
        stop = self._should_stop(deadline)
        self.data_wait = self.step_time = 0.0
        batches = self.batches()
        while not stop:
            t_wait = time.perf_counter()
            batch = next(batches)
            t_step = time.perf_counter()
            loss, n = self.train_step(batch)
            self.data_wait += t_step - t_wait
            self.step_time += time.perf_counter() - t_step
            tokens += self.structure.batch_tokens(batch, n)
            loss_sum, n_sum = loss_sum + loss, n_sum + n
            progress.step()
            if self.state.step % t.log_every == 0:
                now = time.time()
                mean, lr = loss_sum / max(n_sum, 1), self.optimizer.param_groups[0]["lr"]
                tok_s = tokens / max(now - last_log, 1e-9)
                rate = (self.state.step - first_step) / max(now - start, 1e-9)
                progress.report(self.state.step, mean, lr, tok_s,
                                time_left(t, self.state.step, rate,
                                          self._elapsed0 + now - start, self._epochs_left()))
                log.debug("step %d loss %.4f", self.state.step, mean)
                self.scalars.add(self.state.step, self._elapsed0 + now - start, {
                    "train/loss": mean, "train/ppl": math.exp(min(mean, 50)),
                    "train/lr": lr, "train/tokens_per_s": tok_s})
                tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, now
            stop = self._should_stop(deadline)
            if self.state.step % t.valid_every == 0 or stop:
                stop = self.validate_and_save() or stop
            if self.signals.received is not None:
                progress.close()
                return self._interrupted()
        progress.close()
        busy = self.data_wait + self.step_time
        log.info("time waiting for batches: %.1f s of %.1f s (%.2f%%)", self.data_wait, busy,
                 100 * self.data_wait / max(busy, 1e-9))
        if not (self.out / "best.pt").exists():
            self.save(True)
        log.info("done: %d steps in %.1f min; best %s = %s at step %d", self.state.step,
                 (time.time() - start) / 60, self.metric, self.state.best_score,
                 self.state.best_step)
        return self.out

    def _epochs_left(self) -> int | None:
        """Steps until `train.max_epochs`, estimated from the current epoch's length."""
        if self.cfg.train.max_epochs is None or not self._epoch_len:
            return None
        return ((self.cfg.train.max_epochs - self.state.epoch) * self._epoch_len
                - self.state.batch_in_epoch)

    def _should_stop(self, deadline: float | None) -> bool:
        t = self.cfg.train
        out_of_time = deadline is not None and time.time() >= deadline
        epochs_done = self.state.epoch + (0 < self._epoch_len <= self.state.batch_in_epoch)
        out_of_epochs = t.max_epochs is not None and epochs_done >= t.max_epochs
        return self.state.step >= t.max_steps or out_of_time or out_of_epochs

    def _interrupted(self) -> Path:
        """A signal asked us to stop: save where we are (no validation) and say how to go on."""
        self.state.elapsed = self._elapsed0 + time.time() - self._t0
        checkpoint.save(self.checkpoint_dict(), self.out / "last.pt")
        if not (self.out / "best.pt").exists():
            checkpoint.save(self.checkpoint_dict(with_optimizer=False), self.out / "best.pt")
        name = signal.Signals(self.signals.received).name
        log.warning("%s: stopped at step %d; saved %s. Continue with: tandem train --resume %s",
                    name, self.state.step, self.out / "last.pt", self.out)
        return self.out


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a model from a config; returns the run folder (best.pt, last.pt, logs).
    A run folder that already holds a run is refused unless `resume` or `overwrite`."""
    out = claim_run(cfg, resume=resume, overwrite=overwrite)
    with run_log(out):
        trainer = Trainer.from_config(cfg)
        if resume:
            trainer.resume()
        return trainer.train()
