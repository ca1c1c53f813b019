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
checkpoints store about fields) is in `tandem.structures`, one module per structure; the loop,
checkpoints, signals, NaN handling, scalars and early stopping here are the same for all.
Around the loop: `run.py` (run folder, log, random states, signals), `optim.py` (optimizer
and schedules), `progress.py` (what a person watching sees), `scalars.py` (curves).
"""

from __future__ import annotations

import contextlib
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
from tandem.cpu import bound_primitive_cache, configure, resolve_device
from tandem.errors import CheckpointError, TrainingError
from tandem.model import fast
from tandem.structures import structure_for
from tandem.structures.base import Filler, Structure, training_kernels, valid_metric
from tandem.train.distributed import (
    SINGLE,
    Ranks,
    is_peer_failure,
    launched,
    lost_contact,
    rank_threads,
    start_ranks,
    wrap,
)
from tandem.train.optim import make_optimizer, scheduled_lr
from tandem.train.progress import Progress, time_left
from tandem.train.run import (
    StopSignals,
    capture_rng,
    claim_run,
    rank_seed,
    restore_rng,
    run_log,
    seed_run,
    state_tuples,
)
from tandem.train.scalars import Scalars

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

    def __init__(self, cfg: Config, data: Any, device: torch.device | None = None,
                 ranks: Ranks = SINGLE) -> None:
        self.cfg = cfg
        self.out = cfg.out_dir
        if device is None:
            device = resolve_device(cfg.train.device, "train.device")
        self.device = device
        self.ranks = ranks
        self.structure: Structure = structure_for(cfg)(cfg, data, device)
        self.structure.check_ranks(ranks.world)
        self.fields = self.structure.fields
        self.metric = valid_metric(cfg)
        self.model = self.structure.build_model().to(self.device)
        self._training_kernels()
        self.step_model = wrap(self.model, ranks)
        """What a training step calls: the model, or the DistributedDataParallel around it."""
        if ranks.world > 1:  # same weights everywhere, but each rank its own dropout masks
            torch.manual_seed(rank_seed(cfg.train.seed, ranks.rank))
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
        self.last_tokens = 0
        """Tokens of the last `train_step`'s global batch (all ranks), for tokens/s."""
        self._deadline: float | None = None
        self._flags = (False, False)  # (a signal, out of time) on any rank, at the last step

    @classmethod
    def from_config(cls, cfg: Config) -> Trainer:
        """The usual way to build one: sets torch's threads (`train.threads`), checks the
        device, seeds the global generators (`train.seed`), loads the data and builds.
        Touches no files in the run folder. Under torchrun it joins the process group first
        (`start_ranks`), and each rank gets its share of the cores."""
        bound_primitive_cache()
        ranks, device_name = start_ranks(cfg)
        threads = configure(rank_threads(cfg.train.threads, ranks.local_world)
                            if ranks.world > 1 else cfg.train.threads)
        device = resolve_device(device_name, "train.device")
        log.info("device: %s; torch threads: %d", device, threads)
        seed_run(cfg.train.seed)
        return cls(cfg, structure_for(cfg).load(cfg), device, ranks)

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
        a disk can fail) are skipped with a warning; when none can, CheckpointError.

        Under torchrun rank 0 reads the checkpoint and sends it to the others (the run folder
        need not be shared). With as many ranks as the run had, each rank takes back its own
        random states, so the continuation is exact; with another number of ranks the data
        position is still exact (batches are global), and the ranks' dropout streams start
        afresh (the log says so)."""
        path, ckpt = self.ranks.agree(self._newest_resumable)
        if ckpt is None:
            return None
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(**ckpt["train_state"])
        was = int(ckpt.get("world_size", 1))
        rank_rngs = ckpt.get("rank_rng") or [ckpt["rng"]]
        if was == self.ranks.world:
            restore_rng(rank_rngs[self.ranks.rank], self.device)
        else:
            restore_rng(ckpt["rng"], self.device)  # rank 0's; the others reseed below
            if self.ranks.rank:
                torch.manual_seed(rank_seed(self.cfg.train.seed, self.ranks.rank,
                                            self.state.step))
            log.warning("resuming a run of %d rank(s) with %d: the data continues at global "
                        "batch %d of epoch %d as it would have; each rank's dropout draws "
                        "start a new stream", was, self.ranks.world, self.state.batch_in_epoch,
                        self.state.epoch)
        self.rng.setstate(state_tuples(ckpt["rng"]["data"]))
        epoch = ckpt["rng"]["epoch"]
        self._epoch_rng = None if epoch is None else state_tuples(epoch)
        self.structure.restore(ckpt, self.ranks)
        log.info("resumed from %s at step %d", path, self.state.step)
        return path

    def _newest_resumable(self) -> tuple[Path | None, dict | None]:
        """(path, contents) of the newest resumable checkpoint in the run folder, or (None,
        None) when it has none; trims valid.jsonl to it. Run by the writing rank only."""
        for tmp in self.out.glob(".*.pt.*.tmp"):  # an interrupted write
            tmp.unlink(missing_ok=True)
        # last.pt is written before ckpt-N.pt at every save, so it is the newest when readable
        newest_first = [self.out / "last.pt", *reversed(checkpoint.numbered(self.out))]
        found = [p for p in newest_first if p.is_file()]
        for path in found:
            try:
                ckpt = checkpoint.load(path)
                if "optimizer" not in ckpt or "rng" not in ckpt:
                    raise CheckpointError(f"{path}: no optimizer and random states, so not "
                                          "resumable (as best.pt and averaged checkpoints)")
            except CheckpointError as e:
                log.warning("cannot resume from %s: %s", path, e)
                continue
            self._truncate_valid_log(TrainState(**ckpt["train_state"]).step)
            return path, ckpt
        if found:
            raise CheckpointError(f"{self.out}: none of its checkpoints can be read "
                                  f"({', '.join(p.name for p in found)}); nothing was changed")
        log.info("nothing to resume in %s; starting from the beginning", self.out)
        self._truncate_valid_log(0)  # validations logged before the kill have no checkpoint
        return None, None

    def _resume_parts(self) -> dict:
        """What a resumable checkpoint holds besides weights, optimizer and counters: every
        generator's state (the global ones, the data order's, the epoch's; under torchrun
        also every rank's, `rank_rng`), the structure's resume state and the world size.
        Under torchrun a collective: every rank calls it at the same step."""
        rng = capture_rng(self.device)
        parts = {"rng": {**rng, "data": self.rng.getstate(), "epoch": self._epoch_rng},
                 **self.structure.resume_state(self.ranks), "world_size": self.ranks.world}
        if self.ranks.world > 1:
            parts["rank_rng"] = self.ranks.gather(rng)
        return parts

    def _truncate_valid_log(self, step: int) -> None:
        """Drop validations recorded after `step`, the checkpoint we resume from (a kill
        between writing valid.jsonl and the checkpoint), so the log matches the run."""
        path = self.out / "valid.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            keep = [x for x in lines if x.strip() and json.loads(x)["step"] <= step]
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
        stop training (TrainingError).

        Under torchrun `batch` is this rank's share of the global batch (a `Filler` when the
        share is empty), and the result is the global batch's: one all-reduce sums the loss,
        the count, the tokens and the stop flags, the loss is divided by the global count, a
        non-finite loss on any rank skips the step everywhere, and DistributedDataParallel
        averages the gradients during the backward pass."""
        t = self.cfg.train
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr(self.state.step)
        filler = isinstance(batch, Filler)
        if filler:
            batch = batch.batch
        loss, n = self.structure.loss(self.step_model, batch, self.state.step)
        if filler:  # trained with weight 0: the rank still joins the gradient all-reduce
            loss, n = loss * 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        tokens = self.structure.batch_tokens(batch, n) if n else 0
        if self.ranks.world > 1:
            try:
                total, n, tokens, bad, signalled, late = self.ranks.sum(
                    [float(loss.detach()) if finite else 0.0, n, tokens, not finite,
                     self.signals.received is not None, self._out_of_time()])
            except RuntimeError as e:
                raise lost_contact(e, self.ranks) from e
            n, tokens, finite = int(n), int(tokens), not bad
            self._flags = (bool(signalled), bool(late))
            scaled = loss * (self.ranks.world / max(n, 1))  # DDP averages over the ranks
        else:
            total, scaled = None, loss / n
        self.last_tokens = tokens
        if finite:
            try:
                scaled.backward()
            except RuntimeError as e:
                if self.ranks.world > 1 and is_peer_failure(e):
                    raise lost_contact(e, self.ranks) from e
                raise
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
        return (float(loss.detach()) if total is None else total), n

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
    def checkpoint_dict(self, with_optimizer: bool = True, parts: dict | None = None) -> dict:
        """What a checkpoint holds (see tandem.checkpoint); `with_optimizer` adds the
        optimizer and RNG states a resume needs (`parts`: those `_resume_parts()` gathered;
        taken here when not given, which under torchrun every rank must do together)."""
        d = {"model": self.model.state_dict(), "config": self.cfg.to_dict(),
             "fields": self.fields.state(), "train_state": vars(self.state).copy(),
             "structure": self.structure.name}
        if with_optimizer:
            d["optimizer"] = self.optimizer.state_dict()
            d.update(parts if parts is not None else self._resume_parts())
        return d

    def save(self, is_best: bool, parts: dict | None = None) -> None:
        """last.pt, best.pt when `is_best`, and ckpt-STEP.pt keeping the newest
        `train.keep_last` of those. Writes on the writing rank only (the others return)."""
        if not self.ranks.writer:
            return
        ckpt = self.checkpoint_dict(parts=parts)
        checkpoint.save(ckpt, self.out / "last.pt")
        if is_best:
            checkpoint.save(self.checkpoint_dict(with_optimizer=False), self.out / "best.pt")
        if self.cfg.train.keep_last:
            checkpoint.save(ckpt, self.out / f"ckpt-{self.state.step}.pt")
            for p in checkpoint.numbered(self.out)[: -self.cfg.train.keep_last]:
                p.unlink(missing_ok=True)

    def validate_and_save(self) -> bool:
        """Validate, record, checkpoint; returns True when training should stop early.
        Under torchrun every rank calls it: rank 0 validates and records, then all ranks
        gather what the checkpoint needs (the random states as validation left them, as in
        one process), rank 0 writes it, and its decisions (stop early; the learning rate
        after a plateau) reach every rank."""
        is_best = self.ranks.agree(self._validate_and_record)
        parts = self._resume_parts() if self.ranks.world > 1 else None
        self.save(is_best or not self.structure.has_dev, parts)
        p = self.cfg.train.patience
        stop, lr = self.ranks.broadcast((p is not None and self.state.bad_validations >= p,
                                         self.optimizer.param_groups[0]["lr"]))
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return stop

    def _validate_and_record(self) -> bool:
        """Validate, update the best score and the plateau, append to valid.jsonl, the
        scalars and the log; whether this is the best validation so far."""
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
        self.state.elapsed = self._elapsed()
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
        return is_best

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
        redraws the same plan and skips the batches already trained on. Under torchrun
        every rank draws the same plan and yields its own share of each global batch."""
        while True:
            if self._epoch_rng is None:
                self._epoch_rng = self.rng.getstate()
            else:  # resuming inside an epoch
                self.rng.setstate(self._epoch_rng)
            length, items = self.structure.epoch_items(self.rng, self.state.batch_in_epoch)
            self._epoch_len = length or 0  # a streamed epoch's is known at its last batch
            nxt = next(items, None)
            while nxt is not None:
                item, nxt = nxt, next(items, None)
                self.state.batch_in_epoch += 1
                if nxt is None:
                    self._epoch_len = self.state.batch_in_epoch
                if self.ranks.world == 1:
                    yield self.structure.batch(item)
                    continue
                part, empty = self.structure.share(item, self.ranks.rank, self.ranks.world)
                batch = self.structure.batch(part)
                yield Filler(batch) if empty else batch
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            self._epoch_rng = None

    def train(self) -> Path:
        """Run until max_steps, max_epochs, the time budget (`train.max_minutes`, counted over
        the whole run, resumes included), early stopping, or SIGINT/SIGTERM (checkpoint at
        the step boundary, then a normal return). Writes checkpoints, valid.jsonl and
        scalars.csv into the run folder (created if missing; `claim_run` first keeps an
        earlier run safe); returns the folder. Under torchrun only rank 0 writes there."""
        if self.ranks.writer:
            self.out.mkdir(parents=True, exist_ok=True)
            self.scalars = Scalars(self.out, self.state.step, self.cfg.train.tensorboard)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s parameters; %s", f"{n_params:,}", self.structure.describe())
        try:
            with self.signals:
                return self._loop()
        finally:
            if self.scalars is not None:
                self.scalars.close()
            self.scalars = None

    def _loop(self) -> Path:
        t = self.cfg.train
        start = self._t0 = time.time()
        self._elapsed0 = self.state.elapsed
        deadline = start + t.max_minutes * 60 - self._elapsed0 if t.max_minutes else None
        self._deadline = deadline
        progress = Progress(t.max_steps, self.state.step, t.progress and self.ranks.writer)
        first_step = self.state.step
        tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, time.time()
        stop = self._should_stop(deadline)
        if self.ranks.world > 1:  # a resumed run already past its time limit: rank 0's clock
            stop = stop or self.ranks.agree(self._out_of_time)
        self.data_wait = self.step_time = 0.0
        batches = self.batches()
        while not stop:
            t_wait = time.perf_counter()
            batch = next(batches)
            t_step = time.perf_counter()
            loss, n = self.train_step(batch)
            self.data_wait += t_step - t_wait
            self.step_time += time.perf_counter() - t_step
            tokens += self.last_tokens
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
                if self.scalars is not None:
                    self.scalars.add(self.state.step, self._elapsed0 + now - start, {
                        "train/loss": mean, "train/ppl": math.exp(min(mean, 50)),
                        "train/lr": lr, "train/tokens_per_s": tok_s})
                tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, now
            stop = self._should_stop(deadline)
            if self.state.step % t.valid_every == 0 or stop:
                stop = self.validate_and_save() or stop
            if self._signalled():
                progress.close()
                return self._interrupted()
        progress.close()
        busy = self.data_wait + self.step_time
        log.info("time waiting for batches: %.1f s of %.1f s (%.2f%%)", self.data_wait, busy,
                 100 * self.data_wait / max(busy, 1e-9))
        if not self.ranks.agree(lambda: (self.out / "best.pt").exists()):
            self.save(True, self._resume_parts() if self.ranks.world > 1 else None)
        here = time.time() - start
        # a resumed run reports its whole training time, and this process's share of it
        log.info("done: %d steps in %.1f min%s; best %s = %s at step %d", self.state.step,
                 self._elapsed() / 60,
                 f" ({here / 60:.1f} min since resuming)" if self._elapsed0 else "",
                 self.metric, self.state.best_score, self.state.best_step)
        return self.out

    def _epochs_left(self) -> int | None:
        """Steps until `train.max_epochs`, estimated from the current epoch's length."""
        if self.cfg.train.max_epochs is None or not self._epoch_len:
            return None
        return ((self.cfg.train.max_epochs - self.state.epoch) * self._epoch_len
                - self.state.batch_in_epoch)

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.time() >= self._deadline

    def _signalled(self) -> bool:
        """A stop signal arrived (under torchrun: at any rank, by the last step's all-reduce,
        so every rank stops after the same step)."""
        return self._flags[0] if self.ranks.world > 1 else self.signals.received is not None

    def _should_stop(self, deadline: float | None) -> bool:
        t = self.cfg.train
        if self.ranks.world > 1:  # every rank decides alike: any rank's clock counts
            out_of_time = self._flags[1]
        else:
            out_of_time = deadline is not None and time.time() >= deadline
        epochs_done = self.state.epoch + (0 < self._epoch_len <= self.state.batch_in_epoch)
        out_of_epochs = t.max_epochs is not None and epochs_done >= t.max_epochs
        return self.state.step >= t.max_steps or out_of_time or out_of_epochs

    def _elapsed(self) -> float:
        """Seconds of training in this run, earlier processes' included when resumed."""
        return self._elapsed0 + time.time() - self._t0

    def _interrupted(self) -> Path:
        """A signal asked us to stop: save where we are (no validation) and say how to go on."""
        self.state.elapsed = self._elapsed()
        parts = self._resume_parts()
        if not self.ranks.writer:
            return self.out
        checkpoint.save(self.checkpoint_dict(parts=parts), self.out / "last.pt")
        if not (self.out / "best.pt").exists():
            checkpoint.save(self.checkpoint_dict(with_optimizer=False), self.out / "best.pt")
        received = self.signals.received or signal.SIGTERM  # another rank's, under torchrun
        name = signal.Signals(received).name
        log.warning("%s: stopped at step %d; saved %s. Continue with: tandem train --resume %s",
                    name, self.state.step, self.out / "last.pt", self.out)
        return self.out


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a model from a config; returns the run folder (best.pt, last.pt, logs).
    A run folder that already holds a run is refused unless `resume` or `overwrite`."""
    if not launched():
        out = claim_run(cfg, resume=resume, overwrite=overwrite)
        with run_log(out):
            trainer = Trainer.from_config(cfg)
            if resume:
                trainer.resume()
            return trainer.train()
    # under torchrun: join the ranks first, so that rank 0's verdict on the run folder (and
    # any error building the trainer) reaches all of them
    trainer = Trainer.from_config(cfg)
    ranks = trainer.ranks
    try:
        out = ranks.agree(claim_run, cfg, resume=resume, overwrite=overwrite)
        with run_log(out) if ranks.writer else contextlib.nullcontext():
            if resume:
                trainer.resume()
            return trainer.train()
    finally:
        ranks.close()
