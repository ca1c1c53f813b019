"""The training loop, in small named steps: setup, train_step, validate, save, stop."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from tandem import metrics
from tandem.config import Config
from tandem.cpu import autocast, configure, resolve_device
from tandem.data.batching import Batch, collate, token_batches
from tandem.data.dataset import Fields, build_fields, encode_pairs, load_splits
from tandem.decode.translator import Translator
from tandem.errors import CheckpointError, ConfigError, TrainingError
from tandem.model.seq2seq import Seq2Seq
from tandem.train import checkpoint
from tandem.train.loss import token_nll
from tandem.train.scalars import Scalars

log = logging.getLogger("tandem")


def group_references(pairs: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Pairs with the same source become one input with several references (dictionary
    variants); order of first appearance is kept."""
    refs: OrderedDict[str, list[str]] = OrderedDict()
    for s, t in pairs:
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


def evaluate_outputs(fields: Fields, hyps: list[str], refs: list[list[str]],
                     which: list[str] | None = None) -> dict[str, float]:
    """Score detokenised outputs against (possibly several) references per input.

    Token rates use the target tokenizer's tokens. BLEU/chrF use the detokenised text, except
    for character-level targets, where BLEU/chrF over single words would say nothing: there
    they are computed over the character tokens (BLEU on characters, as for G2P/transliteration).
    """
    tok = fields.tgt_tok
    h_toks = [tok.tokenize(h) for h in hyps]
    r_toks = [[tok.tokenize(r) for r in rs] for rs in refs]
    if tok.kind == "char":
        return metrics.score(h_toks, r_toks, which)
    return metrics.score(h_toks, r_toks, which, detok_hyps=hyps, detok_refs=refs)


def teacher_forcing_ratio(cfg: Config, step: int) -> float:
    t = cfg.train
    hi, lo, k = t.teacher_forcing, min(t.tf_min, t.teacher_forcing), t.tf_k
    if t.tf_schedule == "constant":
        return hi
    if t.tf_schedule == "linear":
        return max(lo, hi - (hi - lo) * step / k)
    if t.tf_schedule == "exponential":
        return lo + (hi - lo) * 0.5 ** (step / k)
    return lo + (hi - lo) * k / (k + math.exp(min(step / k, 700.0)))  # inverse sigmoid


@dataclass
class TrainState:
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


RUN_FILES = ("best.pt", "last.pt", "ckpt-*.pt", "valid.jsonl", "train.log", "scalars.csv",
             "tensorboard")


def _claim_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """A new run never silently replaces an earlier run's models."""
    old = [p for pattern in RUN_FILES for p in out.glob(pattern)]
    if resume or not old:
        return
    if not overwrite:
        names = ", ".join(sorted(p.name for p in old)[:4])
        raise ConfigError(f"{out} already holds a training run ({names}); continue it with "
                          f"`tandem train --resume {out}`, start over with --overwrite, or "
                          "set another run_dir/name")
    for p in old:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.out = cfg.out_dir
        _claim_run_dir(self.out, resume, overwrite)
        self.out.mkdir(parents=True, exist_ok=True)
        config_text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        checkpoint.write_text_atomic(self.out / "config.yaml", config_text)  # first: resumable
        self._setup_logging()
        threads = configure(cfg.train.threads)
        self.device = resolve_device(cfg.train.device, "train.device")
        log.info("device: %s; torch threads: %d", self.device, threads)
        random.seed(cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.rng = random.Random(cfg.train.seed)  # the data order
        self._epoch_rng: tuple | None = None  # self.rng's state when this epoch's order was drawn
        self._stop_signal: int | None = None
        self._t0, self._elapsed0 = 0.0, 0.0  # wall clock at train() start; elapsed before it
        self._nonfinite_in_row = 0
        self._epoch_len = 0  # batches in the current epoch (known once its order is drawn)
        self.state = TrainState()
        self._setup_data()
        self.model = Seq2Seq(cfg.model, len(self.fields.src_vocab),
                             len(self.fields.tgt_vocab)).to(self.device)
        self.optimizer = self._make_optimizer()
        if resume:
            self._resume()
        log.info("model: %s parameters; vocab src %d, tgt %d", f"{self.model.n_params():,}",
                 len(self.fields.src_vocab), len(self.fields.tgt_vocab))

    # --- setup ---------------------------------------------------------------------------
    def _setup_logging(self) -> None:
        handler = logging.FileHandler(self.out / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        if log.level == logging.NOTSET:  # called from Python without logging set up
            log.setLevel(logging.INFO)
        log.addHandler(handler)
        self._log_handler = handler

    def _setup_data(self) -> None:
        d = self.cfg.data
        splits = load_splits(d)
        self.fields = build_fields(d, splits.train)
        self.train_examples = encode_pairs(self.fields, splits.train, d.max_src_len, d.max_tgt_len)
        self.dev_pairs = splits.dev
        self.dev_examples = (encode_pairs(self.fields, splits.dev, 10**9, 10**9, "dev")
                             if splits.dev else [])
        log.info("data: %d training pairs, %d dev pairs", len(self.train_examples),
                 len(self.dev_pairs))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        if t.optimizer == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        return torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)

    def _resume(self) -> None:
        """Continue exactly where the newest complete checkpoint left off: weights, optimizer,
        schedule, RNG states, data order and position, counters. Checkpoints that cannot be
        read (a kill -9 can only leave stray temporary files, but a disk can fail) are
        skipped with a warning."""
        for tmp in self.out.glob(".*.pt.*.tmp"):  # an interrupted write
            tmp.unlink(missing_ok=True)
        # last.pt is written before ckpt-N.pt at every save, so it is the newest when readable
        newest_first = [self.out / "last.pt", *reversed(checkpoint.numbered(self.out))]
        found = [p for p in newest_first if p.is_file()]
        ckpt, path = None, None
        for path in found:
            try:
                ckpt = checkpoint.load(path)
                break
            except CheckpointError as e:
                log.warning("cannot resume from %s: %s", path, e)
        if ckpt is None and found:
            raise CheckpointError(f"{self.out}: none of its checkpoints can be read "
                                  f"({', '.join(p.name for p in found)}); nothing was changed")
        if ckpt is None:
            log.info("nothing to resume in %s; starting from the beginning", self.out)
            self._truncate_valid_log()  # validations logged before the kill have no checkpoint
            return
        self.model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(**ckpt["train_state"])
        if "rng" in ckpt:
            self._set_rng(ckpt["rng"])
        self._truncate_valid_log()
        log.info("resumed from %s at step %d", path, self.state.step)

    def _rng_state(self) -> dict:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {"python": random.getstate(), "data": self.rng.getstate(),
                "epoch": self._epoch_rng, "torch": torch.get_rng_state(),
                "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
                **({"cuda": torch.cuda.get_rng_state(self.device)}
                   if self.device.type == "cuda" else {})}

    def _set_rng(self, r: dict) -> None:
        def tup(x):  # checkpoints store tuples as lists after a round trip through YAML/JSON
            return tuple(tup(v) for v in x) if isinstance(x, (list, tuple)) else x
        random.setstate(tup(r["python"]))
        self.rng.setstate(tup(r["data"]))
        self._epoch_rng = None if r["epoch"] is None else tup(r["epoch"])
        torch.set_rng_state(r["torch"])
        if "cuda" in r and self.device.type == "cuda":  # dropout and sampling on the GPU
            torch.cuda.set_rng_state(r["cuda"], self.device)
        name, keys, pos, has_gauss, gauss = r["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))

    def _truncate_valid_log(self) -> None:
        """Drop validations recorded after the checkpoint we resume from (a kill between
        writing valid.jsonl and the checkpoint), so the log matches the run."""
        path = self.out / "valid.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            keep = [x for x in lines if x.strip() and json.loads(x)["step"] <= self.state.step]
            if len(keep) != len(lines):
                path.write_text("".join(x + "\n" for x in keep), encoding="utf-8")

    # --- one step ------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        t = self.cfg.train
        lr = self.optimizer.param_groups[0]["lr"] if t.lr_schedule == "plateau" else t.lr
        if t.lr_schedule == "cosine":
            frac = min(1.0, step / t.max_steps)
            if t.lr_horizon == "minutes":
                elapsed = self._elapsed0 + time.time() - self._t0 if self._t0 else 0.0
                frac = min(1.0, elapsed / (t.max_minutes * 60))
            lr = t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
        if t.warmup_steps and step < t.warmup_steps:
            lr = t.lr * (step + 1) / t.warmup_steps
        return lr

    def train_step(self, batch: Batch) -> tuple[float, int]:
        """One update. A NaN/Inf loss or gradient skips the update (the weights stay as they
        were) and is counted; `train.max_nonfinite_steps` in a row stop training."""
        t = self.cfg.train
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr(self.state.step)
        tf = teacher_forcing_ratio(self.cfg, self.state.step)
        batch = batch.to(self.device)
        with autocast(t.bf16, self.device.type):
            logits = self.model(batch.src, batch.src_len, batch.tgt_in, teacher_forcing=tf)
        loss, n = token_nll(logits, batch.tgt_out, t.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            (loss / n).backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                  t.clip_grad or float("inf"))
            finite = bool(torch.isfinite(norm))
        self.state.step += 1
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
    @torch.no_grad()
    def dev_loss(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for idx in token_batches(self.dev_examples, self.cfg.train.batch_tokens, None):
            b = collate([self.dev_examples[i] for i in idx], idx).to(self.device)
            with autocast(self.cfg.train.bf16, self.device.type):
                logits = self.model(b.src, b.src_len, b.tgt_in)
            loss, n = token_nll(logits, b.tgt_out)
            total, count = total + float(loss), count + n
        return total / max(count, 1)

    def validate(self) -> dict[str, float]:
        t = self.cfg.train
        result: dict[str, float] = {}
        if not self.dev_pairs:
            return result
        loss = self.dev_loss()
        result.update(loss=loss, ppl=math.exp(min(loss, 100.0)))
        if t.valid_metric not in ("loss", "ppl"):
            srcs, refs = group_references(self.dev_pairs)
            if t.valid_max_sentences:
                srcs, refs = srcs[: t.valid_max_sentences], refs[: t.valid_max_sentences]
            hyps = Translator(self.model, self.fields, self.cfg).translate(
                srcs, beam=t.valid_beam, nbest=1)
            which = ["exact_match", "token_error_rate", t.valid_metric]
            result.update(evaluate_outputs(self.fields, hyps, refs, list(dict.fromkeys(which))))
        self.model.train()
        return result

    def _improved(self, score: float) -> bool:
        best = self.state.best_score
        if best is None:
            return True
        hib = metrics.higher_is_better(self.cfg.train.valid_metric)
        return score > best if hib else score < best

    # --- checkpoints ---------------------------------------------------------------------
    def checkpoint_dict(self, with_optimizer: bool = True) -> dict:
        d = {"model": self.model.state_dict(), "config": self.cfg.to_dict(),
             "fields": self.fields.state(), "train_state": vars(self.state).copy()}
        if with_optimizer:
            d["optimizer"] = self.optimizer.state_dict()
            d["rng"] = self._rng_state()
        return d

    def save(self, is_best: bool) -> None:
        ckpt = self.checkpoint_dict()
        checkpoint.save(ckpt, self.out / "last.pt")
        if is_best:
            checkpoint.save({k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")},
                            self.out / "best.pt")
        if self.cfg.train.keep_last:
            checkpoint.save(ckpt, self.out / f"ckpt-{self.state.step}.pt")
            for p in checkpoint.numbered(self.out)[: -self.cfg.train.keep_last]:
                p.unlink(missing_ok=True)

    def validate_and_save(self) -> bool:
        """Validate, record, checkpoint; returns True when training should stop early."""
        res = self.validate()
        metric = self.cfg.train.valid_metric
        score = res.get(metric)
        is_best = score is not None and self._improved(score)
        if is_best:
            self.state.best_score, self.state.best_step = score, self.state.step
            self.state.bad_validations = self.state.lr_bad = 0
        elif score is not None:
            self.state.bad_validations += 1
            self.state.lr_bad += 1
        self._plateau()
        self.state.elapsed = self._elapsed0 + time.time() - self._t0
        entry = {"step": self.state.step, "elapsed_s": round(self.state.elapsed, 1),
                 **{k: round(v, 4) for k, v in res.items()},
                 "lr": self.optimizer.param_groups[0]["lr"], "best": is_best,
                 "data_wait_s": round(getattr(self, "data_wait", 0.0), 2)}
        self.state.history.append(entry)
        if hasattr(self, "scalars"):
            self.scalars.add(self.state.step, self.state.elapsed,
                             {f"dev/{k}": v for k, v in res.items()})
        with open(self.out / "valid.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        log.info("valid step %d: %s%s", self.state.step,
                 " ".join(f"{k}={v:.4g}" for k, v in res.items()), " (best)" if is_best else "")
        self.save(is_best or not self.dev_pairs)
        p = self.cfg.train.patience
        return p is not None and self.state.bad_validations >= p

    def _plateau(self) -> None:
        t = self.cfg.train
        if t.lr_schedule == "plateau" and self.state.lr_bad >= t.lr_patience:
            for g in self.optimizer.param_groups:
                g["lr"] = max(t.min_lr, g["lr"] * t.lr_decay)
            self.state.lr_bad = 0

    # --- the loop ------------------------------------------------------------------------
    def batches(self):
        """Training batches forever, epoch after epoch. Each epoch's order is drawn from
        `self.rng`; its state before the draw is kept, so a resumed run redraws the same
        order and skips the batches already trained on."""
        while True:
            if self._epoch_rng is None:
                self._epoch_rng = self.rng.getstate()
            else:  # resuming inside an epoch
                self.rng.setstate(self._epoch_rng)
            order = token_batches(self.train_examples, self.cfg.train.batch_tokens, self.rng)
            self._epoch_len = len(order)
            while self.state.batch_in_epoch < len(order):
                idx = order[self.state.batch_in_epoch]
                self.state.batch_in_epoch += 1
                yield collate([self.train_examples[i] for i in idx], idx)
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            self._epoch_rng = None

    def _on_signal(self, signum: int, frame) -> None:
        if self._stop_signal is not None:  # the second Ctrl-C: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self._stop_signal = signum
        log.warning("%s: stopping after this step and saving a checkpoint (press Ctrl-C "
                    "again to quit at once)", signal.Signals(signum).name)

    def _catch_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def train(self) -> Path:
        """Run until max_steps, max_epochs, the time budget (`train.max_minutes`, counted over
        the whole run, resumes included), early stopping, or SIGINT/SIGTERM (checkpoint at
        the step boundary, then a normal return)."""
        previous = self._catch_signals()
        self.scalars = Scalars(self.out, self.state.step, self.cfg.train.tensorboard)
        try:
            return self._loop()
        finally:
            self.scalars.close()
            for signum, handler in previous.items():
                if handler is not None:  # None: installed outside Python; leave ours
                    signal.signal(signum, handler)
            log.removeHandler(self._log_handler)
            self._log_handler.close()

    def _loop(self) -> Path:
        t = self.cfg.train
        start = self._t0 = time.time()
        self._elapsed0 = self.state.elapsed
        deadline = start + t.max_minutes * 60 - self._elapsed0 if t.max_minutes else None
        bar = _progress(t.max_steps, self.state.step, t.progress)
        tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, time.time()
        stop = self._should_stop(deadline)
        self.data_wait = self.step_time = 0.0  # seconds waiting for batches / in train_step
        batches = self.batches()
        while not stop:
            t_wait = time.perf_counter()
            batch = next(batches)
            t_step = time.perf_counter()
            loss, n = self.train_step(batch)
            self.data_wait += t_step - t_wait
            self.step_time += time.perf_counter() - t_step
            tokens += int(batch.src_len.sum()) + n
            loss_sum, n_sum = loss_sum + loss, n_sum + n
            bar.update(1)
            if self.state.step % t.log_every == 0:
                now = time.time()
                bar.set_postfix(loss=f"{loss_sum / max(n_sum, 1):.3f}",
                                tok_s=f"{tokens / (now - last_log):.0f}",
                                best=self.state.best_score)
                log.debug("step %d loss %.4f", self.state.step, loss_sum / max(n_sum, 1))
                mean = loss_sum / max(n_sum, 1)
                self.scalars.add(self.state.step, self._elapsed0 + now - start, {
                    "train/loss": mean, "train/ppl": math.exp(min(mean, 50)),
                    "train/lr": self.optimizer.param_groups[0]["lr"],
                    "train/tokens_per_s": tokens / max(now - last_log, 1e-9)})
                tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, now
            stop = self._should_stop(deadline)
            if self.state.step % t.valid_every == 0 or stop:
                stop = self.validate_and_save() or stop
            if self._stop_signal is not None:
                bar.close()
                return self._interrupted()
        bar.close()
        busy = self.data_wait + self.step_time
        log.info("time waiting for batches: %.1f s of %.1f s (%.2f%%)", self.data_wait, busy,
                 100 * self.data_wait / max(busy, 1e-9))
        if not (self.out / "best.pt").exists():
            self.save(True)
        log.info("done: %d steps in %.1f min; best %s = %s at step %d", self.state.step,
                 (time.time() - start) / 60, t.valid_metric, self.state.best_score,
                 self.state.best_step)
        return self.out

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
        name = signal.Signals(self._stop_signal).name
        log.warning("%s: stopped at step %d; saved %s. Continue with: tandem train --resume %s",
                    name, self.state.step, self.out / "last.pt", self.out)
        return self.out


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a model from a config; returns the run folder (best.pt, last.pt, logs).
    A run folder that already holds a run is refused unless `resume` or `overwrite`."""
    return Trainer(cfg, resume=resume, overwrite=overwrite).train()
