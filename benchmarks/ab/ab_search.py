"""A/B of training and search speed between two source trees, with more samples than
`tandem bench --quick` takes: per round, each tree (A, B alternating, a fresh process each)
trains every `small` bench variant for a few steps and times greedy at batch 1 and beam 5 at
batches of 1 and 64, through its own `tandem.bench` functions. Writes
benchmarks/results/ab-search-<date>[-TAG].json with every run, medians and B/A ratios.

    .venv/bin/python benchmarks/ab/ab_search.py --a /work/before/src --b src --rounds 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

# Runs inside each tree's process; works with the bench API before and after the kernels
# moved to tandem.model.fast (prepared there as `tandem train` / `tandem translate` do).
PROBE = r'''
import json, torch
from dataclasses import replace
from tandem import bench
from tandem.model.seq2seq import Seq2Seq
fast = getattr(bench, "fast", None)
vocab, ex = bench.workload(2000)
out = {}
for variant in ["init", "every_step", "additive", "general", "general+feed"]:
    torch.manual_seed(0)
    cfg = replace(bench.SIZES["small"], **bench.VARIANTS[variant])
    model = Seq2Seq(cfg, len(vocab), len(vocab))
    if fast: fast.prepare(model, "cpu", "train")
    out[variant + " train_tok_s"] = bench.time_training(model, ex, 4000, 6)[0]
    if fast: fast.prepare(model, "cpu", "infer")
    for beam, batch, n in [(1, 1, 48), (5, 1, 24), (5, 64, 192)]:
        rate = bench.time_decoding(model, ex, batch, beam, n)[0]
        out[f"{variant} b{beam} bs{batch} sent_s"] = rate
print(json.dumps(out))
'''


def main() -> None:
    """Alternate the two trees' probes, then write medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for r in range(a.rounds):
        for side, tree in (("A", a.a), ("B", a.b)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            got = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                                 capture_output=True, text=True, cwd="/")
            runs[side].append(json.loads(got.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{a.rounds} {side} done", flush=True)
    keys = list(runs["A"][0])
    med = {s: {k: statistics.median(x[k] for x in runs[s]) for k in keys} for s in runs}
    ratio = {k: round(med["B"][k] / med["A"][k], 3) for k in keys}
    train = [v for k, v in ratio.items() if "train" in k]
    search = [v for k, v in ratio.items() if "train" not in k]
    geo = {"train": round(math.exp(statistics.mean(map(math.log, train))), 3),
           "search": round(math.exp(statistics.mean(map(math.log, search))), 3)}
    body = {"a": os.path.abspath(a.a), "b": os.path.abspath(a.b), "rounds": a.rounds,
            "runs": runs, "medians": med, "ratio_b_over_a": ratio, "geomean": geo}
    path = write_report(a.out, "ab-search", f"-{a.tag}" if a.tag else "", body)
    print(path, geo)


if __name__ == "__main__":
    main()
