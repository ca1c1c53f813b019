"""`make demo`: train a small attention model on a built-in task, evaluate it on held-out data,
and show what it does. Runs in a few minutes on 2 CPU cores.

    python -m tandem.demo [--task dates] [--minutes 2.5] [--run-dir runs/demo-dates]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from tandem.config import from_dict
from tandem.data.tasks import TASKS, make_splits
from tandem.evaluate import evaluate_outputs, group_references
from tandem.structures.translator import load
from tandem.train.trainer import train

log = logging.getLogger("tandem")


def demo_config(task: str, minutes: float, run_dir: str) -> dict:
    """The demo's config as a dict: a small GRU attention model on built-in `task`, trained
    for at most `minutes` into `run_dir`."""
    return {
        "name": f"demo-{task}",
        "run_dir": run_dir,
        "data": {"task": task, "task_sizes": [20000, 1000, 1000]},
        "model": {"cell": "gru", "emb_size": 64, "hidden_size": 128, "dropout": 0.0,
                  "bridge": "linear", "conditioning": "attention", "attention": "general"},
        "train": {"batch_tokens": 4000, "lr": 0.003, "max_steps": 6000, "max_minutes": minutes,
                  "valid_every": 250, "patience": 4, "keep_last": 0},
        "decode": {"beam": 5, "max_len_a": 1.0, "max_len_b": 12},
    }


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate on the held-out test split, print examples and scores; returns 0."""
    p = argparse.ArgumentParser(prog="python -m tandem.demo")
    p.add_argument("--task", default="dates", choices=sorted(TASKS))
    p.add_argument("--minutes", type=float, default=2.5, help="training time budget")
    p.add_argument("--run-dir", default=None)
    a = p.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    cfg = from_dict(demo_config(a.task, a.minutes, a.run_dir or f"runs/demo-{a.task}"))
    print(f"== tandem demo: '{a.task}', GRU encoder-decoder with attention, "
          f"{a.minutes:g} min training budget")
    t0 = time.time()
    run = train(cfg, overwrite=True)
    minutes = (time.time() - t0) / 60
    tr = load(run / "best.pt")
    d = cfg.data
    test = make_splits(d.task, tuple(d.task_sizes), d.task_seed, d.task_min_len,
                       d.task_max_len)["test"]
    srcs, refs = group_references(test)
    t1 = time.time()
    hyps = tr.translate(srcs, beam=5)
    decode_s = time.time() - t1
    scores = evaluate_outputs(tr.fields, hyps, refs, ["exact_match", "token_error_rate", "cer"])
    print(f"\n== held-out test set ({len(srcs)} inputs never seen in training), beam 5:")
    for src, hyp, ref in list(zip(srcs, hyps, refs, strict=True))[:8]:
        mark = "ok " if hyp in ref else "ERR"
        print(f"  {mark} {src!r:42} -> {hyp!r}" + ("" if hyp in ref else f"  (want {ref[0]!r})"))
    print(f"\n  exact match {scores['exact_match']:.1f}%   token error rate "
          f"{scores['token_error_rate']:.2f}%   ({minutes:.1f} min training, "
          f"{len(srcs) / decode_s:.0f} sentences/s decoding)")
    print(f"\nmodel: {run / 'best.pt'}\ntry:   echo 'March 3rd, 1999' | .venv/bin/tandem translate "
          f"--model {run / 'best.pt'}" if a.task == "dates" else f"\nmodel: {run / 'best.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
