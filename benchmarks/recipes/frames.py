"""Models over frames (`data.src_kind: frames`) on real data, each beside a classical
baseline run on the same split in the same run:

    .venv/bin/python benchmarks/recipes/frames.py japanese_vowels [basic_motions digits
        basic_motions_segments digit_strings]

- japanese_vowels, basic_motions: `configs/<row>.yaml` (the UEA/UCR archive's TRAIN, 10% of it
  as dev, TEST scored once) against 1-NN with dynamic time warping (full window, every channel
  at once, channels z-normalised by the training frames), written here in numpy;
- digits: the 8x8 images read as 8 rows of 8 pixels (`configs/digits.yaml`), split 80/10/10 by
  a hash of each line (seed 0; written to --work as .npz), against scikit-learn's RBF SVC on
  the 64 pixels (`pip install -e ".[bench]"`).
- basic_motions_segments (tag, a label per frame): recordings stitched from 2-5 pieces of
  20-50 frames of BasicMotions series of different activities; train from 32 TRAIN series,
  dev from the other 8, test from TEST (written to --work as .npz); scored per frame against
  an RBF SVC on each frame's window statistics (mean and std of every channel over 15 frames
  centred on it, and the frame itself; 10,000 training frames drawn);
- digit_strings (seq2seq, frames in, text out): 1-5 handwritten digits of the digits split
  side by side (0-2 blank columns between them), read column by column (frames of 8 pixels),
  written as the digit string; against the RBF SVC of the digits row applied digit by digit
  with the true segmentation given (an oracle the RNN does not get).

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


def motion_segments(work: Path) -> dict[str, Path]:
    """BasicMotions recordings stitched from pieces of different activities, a label per
    frame: train / dev from disjoint TRAIN series (32 / 8), test from TEST."""
    source = read_series(SHARED / "timeseries" / "BasicMotions_TRAIN.ts")
    order = np.random.default_rng(0).permutation(len(source))
    pools = {"train": [source[i] for i in order[8:]], "dev": [source[i] for i in order[:8]],
             "test": read_series(SHARED / "timeseries" / "BasicMotions_TEST.ts")}
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for seed, (name, n) in enumerate((("train", 600), ("dev", 100), ("test", 200)), 1):
        rng, pool = np.random.default_rng(seed), pools[name]
        xs, ys = [], []
        for _ in range(n):
            parts, labels, prev = [], [], None
            for _ in range(int(rng.integers(2, 6))):
                cands = [s for s in pool if s[1] != prev]
                x, lab, _ = cands[int(rng.integers(len(cands)))]
                size = int(rng.integers(20, 51))
                start = int(rng.integers(0, len(x) - size + 1))
                parts.append(x[start:start + size])
                labels += [lab] * size
                prev = lab
            xs.append(np.concatenate(parts))
            ys.append(labels)
        width = max(len(x) for x in xs)
        x = np.zeros((n, width, xs[0].shape[1]), np.float32)
        y = np.full((n, width), "-", dtype=object)
        for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
            x[i, : len(a)], y[i, : len(b)] = a, b
        paths[name] = work / f"basic_motions_segments_{name}.npz"
        np.savez(paths[name], x=x, y=y.astype(str), lengths=np.array([len(a) for a in xs]))
    return paths


def window_features(x: np.ndarray, half: int = 7) -> np.ndarray:
    """Each frame's features: itself, and the mean and std of every channel over the
    frames within `half` of it."""
    rows = []
    for t in range(len(x)):
        w = x[max(0, t - half): t + half + 1]
        rows.append(np.concatenate([x[t], w.mean(0), w.std(0)]))
    return np.array(rows, np.float32)


def segments_svc(paths: dict[str, Path]) -> tuple[float, float]:
    """(per-frame accuracy %, seconds) of an RBF SVC on window features."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def frames(split: str) -> tuple[np.ndarray, np.ndarray]:
        s = read_series(paths[split], per_frame=True)
        return (np.concatenate([window_features(x) for x, _, _ in s]),
                np.concatenate([np.array(labels) for _, labels, _ in s]))

    (xtr, ytr), (xte, yte) = frames("train"), frames("test")
    pick = np.random.default_rng(0).choice(len(xtr), min(10000, len(xtr)), replace=False)
    t0 = time.perf_counter()
    scale = StandardScaler().fit(xtr[pick])
    model = SVC().fit(scale.transform(xtr[pick]), ytr[pick])
    acc = 100.0 * (model.predict(scale.transform(xte)) == yte).mean()
    return float(acc), time.perf_counter() - t0


def digit_strings(work: Path) -> tuple[dict[str, Path], dict[str, list]]:
    """Strings of 1-5 digits of each split of the digits row, side by side, read column by
    column; also, per split, each string's digit images (for the oracle baseline)."""
    split = {k: np.load(v) for k, v in digits_split(work).items()}
    paths, pieces = {}, {}
    for seed, (name, n) in enumerate((("train", 4000), ("dev", 300), ("test", 1000)), 1):
        rng, imgs, labs = np.random.default_rng(seed), split[name]["x"], split[name]["y"]
        xs, ys, kept = [], [], []
        for _ in range(n):
            idx = rng.integers(0, len(imgs), int(rng.integers(1, 6)))
            cols = []
            for j, i in enumerate(idx):
                if j:
                    cols.append(np.zeros((int(rng.integers(0, 3)), 8), np.float32))
                cols.append(imgs[i].T)  # (8 columns, 8 pixels each)
            xs.append(np.concatenate(cols))
            ys.append("".join(str(labs[i]) for i in idx))
            kept.append(idx)
        width = max(len(x) for x in xs)
        x = np.zeros((n, width, 8), np.float32)
        for i, a in enumerate(xs):
            x[i, : len(a)] = a
        paths[name] = work / f"digit_strings_{name}.npz"
        np.savez(paths[name], x=x, y=np.array(ys), lengths=np.array([len(a) for a in xs]))
        pieces[name] = [(imgs[idx], s) for idx, s in zip(kept, ys, strict=True)]
    return paths, pieces


def strings_svc(work: Path, pieces: dict[str, list]) -> tuple[float, float]:
    """(exact-match %, seconds) of the digits row's RBF SVC read digit by digit, with each
    string's true segmentation given."""
    from sklearn.svm import SVC

    tr = np.load(work / "digits_train.npz")
    t0 = time.perf_counter()
    model = SVC().fit(tr["x"].reshape(len(tr["x"]), -1), tr["y"])
    right = 0
    for imgs, text in pieces["test"]:
        right += "".join(str(v) for v in model.predict(imgs.reshape(len(imgs), -1))) == text
    return 100.0 * right / len(pieces["test"]), time.perf_counter() - t0


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
    work = Path(a.work)
    if row == "digits":
        paths = digits_split(work)
    elif row == "basic_motions_segments":
        paths = motion_segments(work)
    elif row == "digit_strings":
        paths, pieces = digit_strings(work)
    if row in ("digits", "basic_motions_segments", "digit_strings"):
        overrides += [f"data.{s}={p}" for s, p in paths.items()]
    cfg = load_config(f"configs/{row}.yaml", overrides)
    t0 = time.perf_counter()
    run = train(cfg, overwrite=True)
    minutes = (time.perf_counter() - t0) / 60
    model = tandem.load(run / "best.pt", device="cpu")
    res = model.evaluate(split="test")
    structure = cfg.model.structure
    data = tandem.structures.get(structure).load(cfg)
    frames = sum(len(ex[0]) for ex in getattr(data, "train_examples", None) or data.train)
    state = model.train_state
    body = {"row": row, "structure": structure, "config": cfg.to_dict(),
            "train_minutes": round(minutes, 2), "best_step": state.get("best_step"),
            "train_frames_per_epoch": frames}
    if structure == "classify":
        body.update(test_accuracy=round(res["accuracy"], 4),
                    test_macro_f1=round(res["macro_f1"], 4), test_items=res["items"])
    elif structure == "tag":
        body.update(test_accuracy=round(res["token_acc"], 4), test_items=res["series"],
                    test_frames=res["frames"], metric="accuracy per frame")
    else:
        body.update(test_accuracy=round(res["exact_match"], 4), test_items=res["sentences"],
                    test_cer=round(res["cer"], 4), metric="exact match of the string")
    if row == "digits":
        acc, secs = svc(paths)
        body["baseline"] = {"name": "RBF SVC (scikit-learn defaults) on the 64 pixels",
                            "test_accuracy": round(acc, 4), "seconds": round(secs, 2)}
    elif row == "basic_motions_segments":
        acc, secs = segments_svc(paths)
        body["baseline"] = {"name": "RBF SVC on each frame's 15-frame window statistics",
                            "test_accuracy": round(acc, 4), "seconds": round(secs, 2)}
    elif row == "digit_strings":
        acc, secs = strings_svc(work, pieces)
        body["baseline"] = {"name": "RBF SVC digit by digit, true segmentation given",
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
    p.add_argument("rows", nargs="+", choices=["japanese_vowels", "basic_motions", "digits",
                                               "basic_motions_segments", "digit_strings"])
    p.add_argument("--runs", default="runs")
    p.add_argument("--work", default="data/frames", help="where generated splits are written")
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
