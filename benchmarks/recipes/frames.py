"""Classifiers over frames (`data.src_kind: frames`) on real data, each beside a classical
baseline run on the same split in the same run:

    .venv/bin/python benchmarks/recipes/frames.py japanese_vowels [basic_motions digits]

- japanese_vowels, basic_motions: `configs/<row>.yaml` (the UEA/UCR archive's TRAIN, 10% of it
  as dev, TEST scored once) against 1-NN with dynamic time warping (full window, every channel
  at once, channels z-normalised by the training frames), written here in numpy;
- digits: the 8x8 images read as 8 rows of 8 pixels (`configs/digits.yaml`), split 80/10/10 by
  a hash of each line (seed 0; written to --work as .npz), against scikit-learn's RBF SVC on
  the 64 pixels (`pip install -e ".[bench]"`).

Writes benchmarks/results/frames-<date>-<row>.json: test accuracy, training time, the
baseline's accuracy and time, frames/s of training, and the command.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

import tandem
from tandem.config import load_config
from tandem.data.frames import channel_stats, read_series
from tandem.data.readers import hash_split
from tandem.train.trainer import train

SHARED = Path("../shared/data")


def dtw_1nn(train: list, test: list) -> tuple[float, float]:
    """(accuracy %, seconds) of 1-NN under DTW (squared Euclidean frame cost, no window)."""
    mean, std = channel_stats([x for x, _, _ in train])
    tr = [(x - mean) / std for x, _, _ in train]
    width = max(len(x) for x in tr)
    pad = np.zeros((len(tr), width, tr[0].shape[1]), np.float32)
    lens = np.array([len(x) for x in tr])
    for i, x in enumerate(tr):
        pad[i, : len(x)] = x
    t0, right = time.perf_counter(), 0
    for x, label, _ in test:
        a = (x - mean) / std
        cost = ((pad[:, None, :, :] - a[None, :, None, :]) ** 2).sum(-1)  # (N, n, width)
        d = np.full((len(tr), len(a) + 1, width + 1), np.inf)
        d[:, 0, 0] = 0.0
        for i in range(1, len(a) + 1):
            for j in range(1, width + 1):
                d[:, i, j] = cost[:, i - 1, j - 1] + np.minimum(
                    np.minimum(d[:, i - 1, j - 1], d[:, i - 1, j]), d[:, i, j - 1])
        dist = d[np.arange(len(tr)), len(a), lens]
        right += train[int(np.argmin(dist))][1] == label
    return 100.0 * right / len(test), time.perf_counter() - t0


def digits_split(work: Path) -> dict[str, Path]:
    """The digits as 8 rows of 8, split 80/10/10 by a hash of each line, written as .npz."""
    lines = gzip.open(SHARED / "digits" / "digits.csv.gz", "rt").read().split()
    items = [(line, line.rsplit(",", 1)[1], f"digits.csv.gz:{n}")
             for n, line in enumerate(lines, 1)]
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, part in zip(("train", "dev", "test"), hash_split(items, 0), strict=True):
        x = np.array([[float(v) for v in t.split(",")[:64]] for t, _, _ in part], np.float32)
        paths[name] = work / f"digits_{name}.npz"
        np.savez(paths[name], x=x.reshape(-1, 8, 8), y=np.array([lab for _, lab, _ in part]))
    return paths


def svc(paths: dict[str, Path]) -> tuple[float, float]:
    """(accuracy %, seconds) of an RBF SVC (scikit-learn's defaults) on the 64 pixels."""
    try:
        from sklearn.svm import SVC
    except ImportError:
        sys.exit('the digits baseline needs scikit-learn: .venv/bin/pip install -e ".[bench]"')
    tr, te = (np.load(paths[s]) for s in ("train", "test"))
    t0 = time.perf_counter()
    model = SVC().fit(tr["x"].reshape(len(tr["x"]), -1), tr["y"])
    acc = 100.0 * (model.predict(te["x"].reshape(len(te["x"]), -1)) == te["y"]).mean()
    return float(acc), time.perf_counter() - t0


def run_row(row: str, a) -> dict:
    overrides = [f"run_dir={a.runs}/{row}", "train.progress=false", "train.tensorboard=false"]
    if row == "digits":
        paths = digits_split(Path(a.work))
        overrides += [f"data.{s}={p}" for s, p in paths.items()]
    cfg = load_config(f"configs/{row}.yaml", overrides)
    t0 = time.perf_counter()
    run = train(cfg, overwrite=True)
    minutes = (time.perf_counter() - t0) / 60
    model = tandem.load(run / "best.pt", device="cpu")
    res = model.evaluate(split="test")
    frames = sum(len(x) for x, _ in tandem.structures.get("classify").load(cfg).train)
    state = model.train_state
    body = {"row": row, "config": cfg.to_dict(), "test_accuracy": round(res["accuracy"], 4),
            "test_macro_f1": round(res["macro_f1"], 4), "test_items": res["items"],
            "train_minutes": round(minutes, 2), "best_step": state.get("best_step"),
            "train_frames_per_epoch": frames}
    if row == "digits":
        acc, secs = svc(paths)
        body["baseline"] = {"name": "RBF SVC (scikit-learn defaults) on the 64 pixels",
                            "test_accuracy": round(acc, 4), "seconds": round(secs, 2)}
    else:
        train_s, test_s = (read_series(p) for p in (cfg.data.train, cfg.data.test))
        acc, secs = dtw_1nn(train_s, test_s)
        body["baseline"] = {"name": "1-NN DTW (full window, dependent, z-normalised)",
                            "train_items": len(train_s),
                            "test_accuracy": round(acc, 4), "seconds": round(secs, 2)}
    return body


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("rows", nargs="+", choices=["japanese_vowels", "basic_motions", "digits"])
    p.add_argument("--runs", default="runs")
    p.add_argument("--work", default="data/frames", help="where the digits split is written")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    for row in a.rows:
        body = run_row(row, a)
        out = write_report(a.results, "frames", f"-{row}", body)
        print(f"{row}: tandem {body['test_accuracy']:.2f}% in {body['train_minutes']} min; "
              f"{body['baseline']['name']} {body['baseline']['test_accuracy']:.2f}%; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
