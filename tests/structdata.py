"""Tiny generated data and configs for the tests of the structures beyond seq2seq (classify,
tag, lm, generate): learnable rules, a few hundred items, written to files like a user's."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

STRUCTURES = ("classify", "tag", "lm", "generate")


def word(rng: random.Random, letters: str = "abcdefgh", lo: int = 2, hi: int = 5) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))


def classify_lines(rng: random.Random, n: int) -> list[str]:
    """text<TAB>label: 'yes' when the text holds an x, else 'no'."""
    out = []
    for _ in range(n):
        text = word(rng, "abcdef", 3, 8)
        if rng.random() < 0.5:
            k = rng.randrange(len(text))
            text = text[:k] + "x" + text[k:]
        out.append(f"{text}\t{'yes' if 'x' in text else 'no'}")
    return out


def tag_of(word: str) -> str:
    """The rule of the tagging data: the tag follows from the last letter (so words never
    seen in training can be tagged from their characters)."""
    return {"a": "A", "b": "B"}.get(word[-1], "O")


def tag_blocks(rng: random.Random, n: int) -> list[str]:
    """word<TAB>tag lines, a blank line between sentences."""
    lines = []
    for _ in range(n):
        for _ in range(rng.randint(2, 6)):
            w = word(rng, "abcdef", 1, 4)
            lines.append(f"{w}\t{tag_of(w)}")
        lines.append("")
    return lines


def lm_text(rng: random.Random, n_lines: int) -> str:
    """Lines of a few repeated words: easy to predict, not trivial."""
    words = ["the cat", "a dog", "sat on", "the mat", "and ran"]
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) + ".\n"
                   for _ in range(n_lines))


def generate_lines(rng: random.Random, n: int) -> list[str]:
    """label<TAB>text: label A writes names of a, b, c; label B of x, y, z."""
    out = []
    for _ in range(n):
        label = rng.choice("AB")
        out.append(f"{label}\t{word(rng, 'abc' if label == 'A' else 'xyz', 2, 6)}")
    return out


def write(path: Path, lines: list[str] | str) -> str:
    text = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return str(path)


def data_section(structure: str, folder: Path) -> dict:
    """The data section of a config for `structure`, its files written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    if structure == "classify":
        return {"train": write(folder / "train.tsv", classify_lines(rng, 240)),
                "dev": write(folder / "dev.tsv", classify_lines(rng, 40))}
    if structure == "tag":
        return {"train": write(folder / "train.tsv", tag_blocks(rng, 150)),
                "dev": write(folder / "dev.tsv", tag_blocks(rng, 30))}
    if structure == "lm":
        return {"train": write(folder / "train.txt", lm_text(rng, 200)),
                "dev": write(folder / "dev.txt", lm_text(rng, 30))}
    return {"train": write(folder / "train.tsv", generate_lines(rng, 240)),
            "dev": write(folder / "dev.tsv", generate_lines(rng, 40))}


def config_dict(structure: str, run: Path, **train) -> dict:
    model = {"structure": structure, "cell": "lstm", "emb_size": 16, "hidden_size": 32,
             "dropout": 0.2}
    if structure == "tag":
        model.update(char_emb_size=8, char_hidden_size=16)
    return {"name": structure, "run_dir": str(run),
            "data": data_section(structure, run.parent / "data"), "model": model,
            "train": {"batch_tokens": 160 if structure == "lm" else 120, "bptt": 16,
                      "lr": 0.01, "progress": False, "threads": 1, "tensorboard": False,
                      "keep_last": 0, "valid_every": 10**6, "log_every": 5, **train}}




def feature_data(folder: Path, n_train: int, n_dev: int, dev_rows: int | None = None) -> dict:
    """The data section of a generate config conditioned on feature vectors: text lines of
    generate_lines' names, one-hot rows (label A -> [1, 0], B -> [0, 1]) in train.npy and
    dev.npy; `dev_rows` (default n_dev) rows in dev.npy, to make its row count wrong."""
    lines = generate_lines(random.Random(3), n_train + n_dev)
    texts = [x.split("\t")[1] for x in lines]
    feats = np.array([[1.0, 0.0] if x.startswith("A") else [0.0, 1.0] for x in lines],
                     dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train.npy", feats[:n_train])
    np.save(folder / "dev.npy", feats[n_train:n_train + (n_dev if dev_rows is None else dev_rows)])
    return {"train": write(folder / "train.txt", texts[:n_train]),
            "dev": write(folder / "dev.txt", texts[n_train:]),
            "features": str(folder / "train.npy"), "dev_features": str(folder / "dev.npy")}
