"""Do frame inputs train as fast per frame as token inputs of the same width?

    .venv/bin/python benchmarks/speed/frames_vs_tokens.py [--rounds 5] [--steps 30]

For classify, tag and seq2seq, the same model (a bidirectional LSTM encoder of 128, inputs of
64, no character view for the tagger, so both sides read one vector per position) is trained on
made-up data of the same lengths (20-60 positions a sequence) twice: once over tokens (a
vocabulary of 1,000 words, looked up in a 64-wide embedding) and once over frames of 64 numbers
(projected to 64) and of 12 numbers (JapaneseVowels' width). Each timing is `--steps` training
steps after 3 of warm-up, with the recipe's batching (`train.batch_tokens`), counted as the
trainer counts positions read (frames or tokens; seq2seq adds its target tokens, alike on both
sides). Rounds alternate the order of the inputs; medians are reported, with the ratio of each
frames rate to the tokens rate of the same round.

Writes benchmarks/results/frames-speed-<date>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import rotated, write_report

from tandem.config import from_dict
from tandem.train.trainer import Trainer

N = 1200
KINDS = ["tokens", "frames64", "frames12"]


def make_data(folder: Path, seed: int = 0) -> dict[str, dict[str, str]]:
    """Per structure and input kind: the data section's files (same lengths, same labels)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 61, N)
    words = [f"w{i}" for i in range(1000)]
    labels = rng.integers(0, 4, N)
    out: dict[str, dict[str, str]] = {s: {} for s in ("classify", "tag", "seq2seq")}
    texts = [[words[j] for j in rng.integers(0, 1000, n)] for n in lengths]
    tags = [rng.integers(0, 8, n) for n in lengths]
    targets = ["".join("abcdefgh"[k] for k in rng.integers(0, 8, rng.integers(3, 10)))
               for _ in range(N)]
    p = folder / "classify.tsv"
    p.write_text("".join(f"{' '.join(t)}\tL{lab}\n" for t, lab in zip(texts, labels, strict=True)))
    out["classify"]["tokens"] = str(p)
    p = folder / "tag.tsv"
    p.write_text("".join("".join(f"{w}\tT{k}\n" for w, k in zip(t, ts, strict=True)) + "\n"
                         for t, ts in zip(texts, tags, strict=True)))
    out["tag"]["tokens"] = str(p)
    p = folder / "seq2seq.tsv"
    p.write_text("".join(f"{' '.join(t)}\t{y}\n" for t, y in zip(texts, targets, strict=True)))
    out["seq2seq"]["tokens"] = str(p)
    for width in (64, 12):
        x = np.zeros((N, int(lengths.max()), width), np.float32)
        for i, n in enumerate(lengths):
            x[i, :n] = rng.normal(0, 1, (n, width))
        per_frame = np.full(x.shape[:2], "T0", dtype=object)
        for i, ts in enumerate(tags):
            per_frame[i, : len(ts)] = [f"T{k}" for k in ts]
        ys = {"classify": np.array([f"L{lab}" for lab in labels]),
              "tag": per_frame.astype(str), "seq2seq": np.array(targets)}
        for s, y in ys.items():
            p = folder / f"{s}{width}.npz"
            np.savez(p, x=x, y=y, lengths=lengths)
            out[s][f"frames{width}"] = str(p)
    return out


def config(structure: str, kind: str, path: str, run: str) -> dict:
    data = {"train": path, "src_tokenizer": "word"}
    if kind != "tokens":
        data = {"train": path, "src_kind": "frames", "frame_dev_fraction": 0.0}
    if structure == "seq2seq":
        data["tgt_tokenizer"] = "char"
    model = {"structure": structure, "cell": "lstm", "emb_size": 64, "hidden_size": 128,
             "bidirectional": True, "dropout": 0.1}
    if structure == "tag":
        model["char_emb_size"] = 0
    if structure == "classify":
        model["bridge"] = "max"
    return {"run_dir": run, "data": data, "model": model,
            "train": {"max_steps": 10**6, "valid_every": 10**6, "batch_tokens": 2000,
                      "progress": False, "tensorboard": False, "device": "cpu",
                      "max_minutes": None}}


def rate(cfg: dict, steps: int) -> float:
    """Positions read per second of training (`trainer.last_tokens` over `steps` steps)."""
    trainer = Trainer.from_config(from_dict(cfg))
    batches = trainer.batches()
    for _ in range(3):
        trainer.train_step(next(batches))
    n, t0 = 0, time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
        n += trainer.last_tokens
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    runs: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_data(Path(tmp))
        for r in range(a.rounds):
            for s in files:
                for kind in rotated(KINDS, r):
                    run = f"{tmp}/run-{s}-{kind}-{r}"
                    v = rate(config(s, kind, files[s][kind], run), a.steps)
                    runs.setdefault(s, {}).setdefault(kind, []).append(v)
                    print(f"round {r} {s:<9} {kind:<9} {v:9.0f} positions/s", flush=True)
    median = {s: {k: round(statistics.median(v), 1) for k, v in ks.items()}
              for s, ks in runs.items()}
    ratio = {s: {k: round(statistics.median(f / t for f, t in
                                            zip(ks[k], ks["tokens"], strict=True)), 3)
                 for k in ks if k != "tokens"} for s, ks in runs.items()}
    body = {"rounds": a.rounds, "steps": a.steps, "sequences": N, "lengths": "20-60",
            "model": "bi-LSTM 128, inputs 64, batch_tokens 2000",
            "median_positions_per_s": median, "frames_over_tokens": ratio, "runs": runs}
    out = write_report(a.results, "frames-speed", "", body)
    for s in ratio:
        print(f"{s:<9} tokens {median[s]['tokens']:8.0f}/s  frames64 x{ratio[s]['frames64']:.3f}"
              f"  frames12 x{ratio[s]['frames12']:.3f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
