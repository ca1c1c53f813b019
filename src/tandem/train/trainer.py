"""The training loop, in small named steps: setup, train_step, validate, save, stop."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from tandem import metrics
from tandem.config import Config
from tandem.cpu import autocast, configure
from tandem.data.batching import Batch, collate, token_batches
from tandem.data.dataset import Fields, build_fields, encode_pairs, load_splits
from tandem.decode.translator import Translator
from tandem.model.seq2seq import Seq2Seq
from tandem.train import checkpoint
from tandem.train.loss import token_nll

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


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False) -> None:
        self.cfg = cfg
        self.out = cfg.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self._setup_logging()
        threads = configure(cfg.train.threads)
        log.info("torch threads: %d", threads)
        random.seed(cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.rng = random.Random(cfg.train.seed)
        self.state = TrainState()
        self._setup_data()
        self.model = Seq2Seq(cfg.model, len(self.fields.src_vocab), len(self.fields.tgt_vocab))
        self.optimizer = self._make_optimizer()
        if resume:
            self._resume()
        (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
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
        path = self.out / "last.pt"
        ckpt = checkpoint.load(path)
        self.model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(**ckpt["train_state"])
        log.info("resumed from %s at step %d", path, self.state.step)

    # --- one step ------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        t = self.cfg.train
        lr = self.optimizer.param_groups[0]["lr"] if t.lr_schedule == "plateau" else t.lr
        if t.lr_schedule == "cosine":
            frac = min(1.0, step / t.max_steps)
            lr = t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
        if t.warmup_steps and step < t.warmup_steps:
            lr = t.lr * (step + 1) / t.warmup_steps
        return lr

    def train_step(self, batch: Batch) -> tuple[float, int]:
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr(self.state.step)
        tf = teacher_forcing_ratio(self.cfg, self.state.step)
        with autocast(self.cfg.train.bf16):
            logits = self.model(batch.src, batch.src_len, batch.tgt_in, teacher_forcing=tf)
        loss, n = token_nll(logits, batch.tgt_out, self.cfg.train.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / n).backward()
        if self.cfg.train.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad)
        self.optimizer.step()
        self.state.step += 1
        return float(loss.detach()), n

    # --- validation ----------------------------------------------------------------------
    @torch.no_grad()
    def dev_loss(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for idx in token_batches(self.dev_examples, self.cfg.train.batch_tokens, None):
            b = collate([self.dev_examples[i] for i in idx], idx)
            with autocast(self.cfg.train.bf16):
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
        return d

    def save(self, is_best: bool) -> None:
        ckpt = self.checkpoint_dict()
        checkpoint.save(ckpt, self.out / "last.pt")
        if is_best:
            checkpoint.save({k: v for k, v in ckpt.items() if k != "optimizer"},
                            self.out / "best.pt")
        if self.cfg.train.keep_last:
            checkpoint.save(ckpt, self.out / f"ckpt-{self.state.step}.pt")
            old = sorted(self.out.glob("ckpt-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
            for p in old[: -self.cfg.train.keep_last]:
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
        while True:
            order = token_batches(self.train_examples, self.cfg.train.batch_tokens, self.rng)
            for idx in order:
                yield collate([self.train_examples[i] for i in idx], idx)
            self.state.epoch += 1

    def train(self) -> Path:
        t = self.cfg.train
        start = self._t0 = time.time()
        self._elapsed0 = self.state.elapsed
        deadline = start + t.max_minutes * 60 if t.max_minutes else None
        bar = _progress(t.max_steps, self.state.step, t.progress)
        tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, time.time()
        stop = self.state.step >= t.max_steps
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
                bar.set_postfix(loss=f"{loss_sum / n_sum:.3f}",
                                tok_s=f"{tokens / (now - last_log):.0f}",
                                best=self.state.best_score)
                log.debug("step %d loss %.4f", self.state.step, loss_sum / n_sum)
                tokens, loss_sum, n_sum, last_log = 0, 0.0, 0, now
            out_of_time = deadline is not None and time.time() >= deadline
            out_of_epochs = t.max_epochs is not None and self.state.epoch >= t.max_epochs
            stop = self.state.step >= t.max_steps or out_of_time or out_of_epochs
            if self.state.step % t.valid_every == 0 or stop:
                stop = self.validate_and_save() or stop
        bar.close()
        busy = self.data_wait + self.step_time
        log.info("time waiting for batches: %.1f s of %.1f s (%.2f%%)", self.data_wait, busy,
                 100 * self.data_wait / max(busy, 1e-9))
        if not (self.out / "best.pt").exists():
            self.save(True)
        log.info("done: %d steps in %.1f min; best %s = %s at step %d", self.state.step,
                 (time.time() - start) / 60, t.valid_metric, self.state.best_score,
                 self.state.best_step)
        log.removeHandler(self._log_handler)
        self._log_handler.close()
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


def train(cfg: Config, resume: bool = False) -> Path:
    """Train a model from a config; returns the run folder (best.pt, last.pt, logs)."""
    return Trainer(cfg, resume=resume).train()
