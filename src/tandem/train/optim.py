"""The optimizer and the schedules of training: the learning rate of each update
(constant, plateau, cosine; warmup) and the teacher-forcing ratio of scheduled sampling."""

from __future__ import annotations

import math

import torch

from tandem.config import Config, TrainConfig


def teacher_forcing_ratio(cfg: Config, step: int) -> float:
    """The probability of feeding the gold previous token at `step` (scheduled sampling):
    `train.teacher_forcing` falling to `train.tf_min` by `train.tf_schedule`, with speed
    `train.tf_k` (steps)."""
    t = cfg.train
    hi, lo, k = t.teacher_forcing, min(t.tf_min, t.teacher_forcing), t.tf_k
    if t.tf_schedule == "constant":
        return hi
    if t.tf_schedule == "linear":
        return max(lo, hi - (hi - lo) * step / k)
    if t.tf_schedule == "exponential":
        return lo + (hi - lo) * 0.5 ** (step / k)
    return lo + (hi - lo) * k / (k + math.exp(min(step / k, 700.0)))  # inverse sigmoid


def scheduled_lr(t: TrainConfig, step: int, current: float, elapsed_s: float) -> float:
    """The learning rate of update `step`: `train.lr_schedule` (plateau keeps `current`,
    which validation lowers; cosine decays to `train.min_lr` over `train.max_steps` or, with
    `train.lr_horizon: minutes`, over `train.max_minutes` of `elapsed_s`), then linear warmup
    over the first `train.warmup_steps`."""
    lr = current if t.lr_schedule == "plateau" else t.lr
    if t.lr_schedule == "cosine":
        frac = min(1.0, step / t.max_steps)
        if t.lr_horizon == "minutes":
            frac = min(1.0, elapsed_s / (t.max_minutes * 60))
        lr = t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
    if t.warmup_steps and step < t.warmup_steps:
        lr = t.lr * (step + 1) / t.warmup_steps
    return lr


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """`train.optimizer` (adam or sgd) over the model's parameters, at `train.lr` with
    `train.weight_decay`."""
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
