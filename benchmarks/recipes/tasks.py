"""Train each built-in task with attention and report held-out exact match and training time.

    .venv/bin/python benchmarks/recipes/tasks.py [--tasks reverse sort addition dates] \
        [--minutes 10]

Writes benchmarks/results/tasks-<date>.json. Each task: a GRU encoder-decoder with general
attention, trained until dev exact match stops improving (patience) or the time budget ends;
the test split (generated from a different seed stream, disjoint from train) is decoded with
beam 5.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

from tandem.config import apply_overrides, from_dict
from tandem.data.tasks import make_splits
from tandem.evaluate import evaluate_outputs, group_references
from tandem.structures.translator import load
from tandem.train.scalars import read_validations
from tandem.train.trainer import train

# Per-task settings; everything else is shared (sources of 1..15 characters for every task).
# sort needs more data than 50k pairs to generalise and runs faster with `general` attention
# than with `additive` (no tanh over every query x key pair). Addition's decoder writes the sum
# right to left (data.reverse_target; the output is returned in reading order), so each digit
# needs only the carry of the digit written just before it: 100% test, where the best
# left-to-right recipe (the same without reverse_target) reaches 97%; the other recipes tried
# are in benchmarks/results/tasks-2026-11-2*.json and sweep-*.json.
TASKS = {
    "reverse": {"model": {"cell": "gru", "hidden_size": 256}},
    "sort": {"model": {"cell": "gru", "hidden_size": 256, "attention": "general"},
             "data": {"task_sizes": [200000, 1000, 1000]}, "train": {"lr": 0.003}},
    "addition": {"model": {"cell": "lstm", "hidden_size": 256, "enc_hidden_size": 512},
                 "data": {"task_max_len": 15, "task_sizes": [100000, 1000, 1000],
                          "reverse_target": True},
                 "train": {"lr": 0.003, "lr_schedule": "cosine", "lr_horizon": "minutes",
                           "batch_tokens": 2000, "patience": 20}},
    "dates": {"model": {"cell": "gru", "hidden_size": 256}},
}


def config(task: str, minutes: float, out: Path) -> dict:
    base = {
        "name": f"bench-{task}",
        "run_dir": str(out / task),
        "data": {"task": task, "task_sizes": [50000, 1000, 1000]},
        "model": {"emb_size": 64, "dropout": 0.0, "bridge": "linear",
                  "conditioning": "attention", "attention": "additive"},
        "train": {"batch_tokens": 6000, "lr": 0.002, "max_steps": 100000,
                  "max_minutes": minutes, "valid_every": 500, "patience": 6,
                  "lr_schedule": "plateau", "lr_patience": 2, "keep_last": 0,
                  "progress": False},
        "decode": {"beam": 5, "max_len_a": 1.5, "max_len_b": 12},
    }
    for section, values in TASKS[task].items():
        base[section].update(values)
    return base


def run_task(task: str, minutes: float, out: Path, overrides: list[str] | None = None) -> dict:
    cfg = from_dict(apply_overrides(config(task, minutes, out), overrides or []))
    t0 = time.time()
    run = train(cfg, overwrite=True)
    train_s = time.time() - t0
    history = read_validations(run)
    first99 = next((h for h in history if h.get("exact_match", 0) >= 99.0), None)
    tr = load(run / "best.pt")
    d = cfg.data
    test = make_splits(task, tuple(d.task_sizes), d.task_seed, d.task_min_len,
                       d.task_max_len)["test"]
    srcs, refs = group_references(test)
    t1 = time.time()
    hyps = tr.translate(srcs, beam=5)
    decode_s = time.time() - t1
    scores = evaluate_outputs(tr.fields, hyps, refs, ["exact_match", "token_error_rate"])
    return {
        "task": task, "test_sentences": len(srcs), "beam": 5,
        "test_exact_match": round(scores["exact_match"], 2),
        "test_token_error_rate": round(scores["token_error_rate"], 3),
        "train_minutes": round(train_s / 60, 2), "steps": history[-1]["step"],
        "best_dev_exact_match": max(h.get("exact_match", 0) for h in history),
        "minutes_to_dev_99": None if first99 is None else round(first99["elapsed_s"] / 60, 2),
        "decode_sentences_per_s": round(len(srcs) / decode_s, 1),
        "data_wait_s": history[-1].get("data_wait_s"),
        "dev_curve": [{k: h.get(k) for k in ("step", "elapsed_s", "exact_match")}
                      for h in history],
        "parameters": tr.model.n_params(),
        **{k: v for k, v in cfg.to_dict().items() if k in ("model", "data", "train")},
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per task")
    p.add_argument("--out", default="runs/bench-tasks")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the recipe of every task run, e.g. --set train.lr=0.003")
    p.add_argument("--tag", default="", help="added to the results file name")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = [run_task(t, a.minutes, Path(a.out), a.set) for t in a.tasks]
    for r in results:
        print(f"{r['task']:<10} test exact match {r['test_exact_match']:6.2f}%  "
              f"trained {r['train_minutes']:5.1f} min  dev>=99% after {r['minutes_to_dev_99']} min")
    tag = ("" if a.tasks == list(TASKS) else "-" + "-".join(a.tasks)) + (
        f"-{a.tag}" if a.tag else "")
    path = write_report(a.results, "tasks", tag, {"results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
