"""The PyTorch char-RNN classification tutorial's model, trained the tutorial's way, as the
anchor of the names row of benchmarks/recipes/structures.py (written here from the tutorial's
description, in plain PyTorch):

- input: each character one-hot over 57 symbols (ASCII letters and " .,;'", names folded to
  ASCII), no embedding;
- the RNN: combined = [one-hot; hidden (128)] -> hidden' = Linear(combined), output =
  LogSoftmax(Linear(combined)) at the last character;
- training: 100,000 iterations of one example each, drawn by a uniformly random language and
  then a random name of it, negative log-likelihood, plain SGD at learning rate 0.005.

It is trained and scored on the same hash split as tandem's names recipe, so the two sit side
by side in one result.
"""

from __future__ import annotations

import random
import string
import time
import unicodedata

import torch
from torch import nn

from tandem.config import Config
from tandem.data.corpora import corpus_dir
from tandem.data.readers import hash_split, read_label_folder
from tandem.metrics import classification_scores

LETTERS = string.ascii_letters + " .,;'"


def to_ascii(text: str) -> str:
    """The tutorial's folding: accents dropped, characters outside LETTERS removed."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn" and c in LETTERS)


def one_hot(name: str) -> torch.Tensor:
    """(len, 1, 57): one row per character."""
    x = torch.zeros(len(name), 1, len(LETTERS))
    for i, c in enumerate(name):
        x[i, 0, LETTERS.index(c)] = 1.0
    return x


class TutorialRNN(nn.Module):
    """hidden' = W_h [x; hidden], output = log_softmax(W_o [x; hidden])."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.hidden_size = hidden
        self.i2h = nn.Linear(n_in + hidden, hidden)
        self.i2o = nn.Linear(n_in + hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (len, 1, n_in) -> log-probs (1, n_out) after the last character."""
        h = torch.zeros(1, self.hidden_size)
        out = None
        for t in range(x.size(0)):
            both = torch.cat([x[t], h], 1)
            h, out = self.i2h(both), self.i2o(both)
        return torch.log_softmax(out, 1)


def run(cfg: Config, seed: int = 1, iterations: int = 100_000, lr: float = 0.005,
        hidden: int = 128) -> dict:
    """Train the tutorial model on the names recipe's train split; test accuracy and
    macro-F1 on its test split (names that fold to nothing are skipped and counted)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    train, _, test = hash_split(read_label_folder(corpus_dir(cfg.data))[0], cfg.data.split_seed)
    labels = sorted({lab for _, lab, _ in train})
    by_label: dict[str, list[str]] = {lab: [] for lab in labels}
    for text, lab, _ in train:
        if to_ascii(text):
            by_label[lab].append(to_ascii(text))
    model = TutorialRNN(len(LETTERS), hidden, len(labels))
    loss_fn = nn.NLLLoss()
    t0 = time.time()
    torch.set_num_threads(1)  # one example at a time: more threads only add overhead
    for _ in range(iterations):
        lab = rng.choice(labels)
        name = rng.choice(by_label[lab])
        model.zero_grad()
        loss = loss_fn(model(one_hot(name)), torch.tensor([labels.index(lab)]))
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
    train_s = time.time() - t0
    gold, pred, skipped = [], [], 0
    with torch.no_grad():
        for text, lab, _ in test:
            name = to_ascii(text)
            if not name:
                skipped += 1
                continue
            gold.append(labels.index(lab))
            pred.append(int(model(one_hot(name)).argmax(1)))
    scores = classification_scores(gold, pred, len(labels))
    return {"model": "PyTorch char-RNN classification tutorial (re-implemented)",
            "parameters": sum(p.numel() for p in model.parameters()), "hidden": hidden,
            "iterations": iterations, "lr": lr, "optimizer": "sgd", "threads": 1,
            "sampling": "uniform language, then a uniform name of it",
            "train_minutes": round(train_s / 60, 2),
            "test": {"items": len(gold), "skipped_empty_after_ascii_folding": skipped,
                     "accuracy": round(scores["accuracy"], 2),
                     "macro_f1": round(scores["macro_f1"], 2)}}
