"""The optimizer and the learning-rate schedule of training (constant, plateau, cosine;
warmup). The teacher-forcing ratio of scheduled sampling is seq2seq's
(`tandem.structures.seq2seq.teacher_forcing_ratio`)."""

from __future__ import annotations

import math

import torch

from tandem.config import TrainConfig


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
