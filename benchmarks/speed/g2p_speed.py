"""CMUdict G2P: decoding speed of several trained models side by side, in one run.

    .venv/bin/python benchmarks/speed/g2p_speed.py --model teacher=runs/t/best.pt+runs/r2l/best.pt \
        --model student=runs/s/avg5.pt [--words 3000] [--rounds 3] [--beam 5] [--name students]

A model is NAME=PATH, or NAME=PATH+RESCORE to rerank its beam candidates with a second
(right-to-left) model, as the distillation teacher does. Each round decodes the same first
--words words of the standard test set with every model in turn (the order rotating from round
to round, after one warm-up pass each); the figure is the median words/s over rounds, with the
spread. Accuracy is not measured here: each recipe is scored once on test by g2p_cmudict.py or
g2p_ensemble.py (benchmarks/recipes/). Writes benchmarks/results/g2p-speed-<date>-<name>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import rotated, write_report

from tandem.data.dataset import load_splits
from tandem.evaluate import group_references
from tandem.structures.translator import load


def parameters(path: str) -> int:
    """Number of weights in a checkpoint's model."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return sum(t.numel() for t in state.values())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True,
                   help="NAME=PATH or NAME=PATH+RESCORE_PATH (repeatable)")
    p.add_argument("--words", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="models")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    specs = {}
    for m in a.model:
        name, sep, paths = m.partition("=")
        if not sep or not paths:
            p.error(f"--model {m!r}: expected NAME=PATH or NAME=PATH+RESCORE_PATH")
        specs[name] = paths.split("+")
    models = {}
    for name, paths in specs.items():
        tr = load(paths[0], device="cpu")
        if len(paths) > 1:
            tr.rescore_with(*paths[1:])
        models[name] = tr
    first = next(iter(models.values()))
    srcs, _ = group_references(load_splits(first.config.data).test)
    srcs = srcs[:a.words]
    for tr in models.values():
        tr.translate(srcs[:256], beam=a.beam)
    rates: dict[str, list[float]] = {n: [] for n in models}
    names = list(models)
    for r in range(a.rounds):
        for name in rotated(names, r):
            t0 = time.perf_counter()
            models[name].translate(srcs, beam=a.beam)
            rates[name].append(len(srcs) / (time.perf_counter() - t0))
    body = {"words": len(srcs), "beam": a.beam, "threads": a.threads, "rounds": a.rounds,
            "models": {n: {"paths": specs[n], "parameters": sum(parameters(x) for x in specs[n]),
                           "words_per_s_median": round(statistics.median(v), 1),
                           "words_per_s_all": [round(x, 1) for x in v]}
                       for n, v in rates.items()}}
    out = write_report(a.results, "g2p-speed", f"-{a.name}", body)
    for n, m in body["models"].items():
        print(f"{n:<20} {m['parameters']:>10,} params  {m['words_per_s_median']:>8} words/s "
              f"(rounds: {m['words_per_s_all']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
