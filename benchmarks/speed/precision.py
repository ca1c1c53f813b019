"""int8 and bfloat16 inference against float32, on models trained by
benchmarks/recipes/tasks.py.

    .venv/bin/python benchmarks/speed/precision.py [--runs runs/bench-tasks] [--repeats 3]

For each task's best.pt: the held-out test split decoded with beam 5 (batches of 64) in
float32, with dynamic int8 quantization (`--quantize int8`) and with bfloat16 autocast
(`--bf16`); exact match and sentences/s (median of --repeats timed passes, all three modes
timed in the same run). Writes benchmarks/results/precision-<date>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

from tandem.cpu import configure
from tandem.data.tasks import make_splits
from tandem.evaluate import evaluate_outputs, group_references
from tandem.structures.translator import load

MODES = ("fp32", "int8", "bf16")


def measure(run: Path, repeats: int) -> dict:
    tr32 = load(run / "best.pt")
    d = tr32.config.data
    test = make_splits(d.task, tuple(d.task_sizes), d.task_seed, d.task_min_len,
                       d.task_max_len)["test"]
    srcs, refs = group_references(test)
    translators = {"fp32": tr32, "int8": load(run / "best.pt").quantize("int8"), "bf16": tr32}
    out = {"task": d.task, "sentences": len(srcs), "beam": 5, "batch": 64}
    times: dict[str, list[float]] = {m: [] for m in MODES}
    hyps: dict[str, list[str]] = {}
    for _ in range(repeats):
        for m in MODES:  # interleaved, so drifts in machine speed hit all modes alike
            t = time.perf_counter()
            hyps[m] = translators[m].translate(srcs, beam=5, batch_size=64, bf16=m == "bf16")
            times[m].append(time.perf_counter() - t)
    for m in MODES:
        em = evaluate_outputs(tr32.fields, hyps[m], refs, ["exact_match"])["exact_match"]
        out[m] = {"exact_match": round(em, 2),
                  "sent_s": round(len(srcs) / statistics.median(times[m]), 1),
                  "seconds": [round(x, 2) for x in times[m]]}
    for m in ("int8", "bf16"):
        out[m]["speedup_vs_fp32"] = round(out[m]["sent_s"] / out["fp32"]["sent_s"], 2)
        out[m]["exact_match_change"] = round(out[m]["exact_match"] - out["fp32"]["exact_match"],
                                             2)
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="runs/bench-tasks")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    configure()
    runs = sorted(x.parent for x in Path(a.runs).glob("*/best.pt"))
    if not runs:
        print(f"no trained models under {a.runs}; run benchmarks/recipes/tasks.py first",
              file=sys.stderr)
        return 2
    rows = []
    for run in runs:
        r = measure(run, a.repeats)
        rows.append(r)
        print(f"{r['task']:<10} fp32 {r['fp32']['exact_match']:6.2f}% {r['fp32']['sent_s']:7.1f}/s"
              f" | int8 {r['int8']['exact_match']:6.2f}% {r['int8']['speedup_vs_fp32']}x"
              f" | bf16 {r['bf16']['exact_match']:6.2f}% {r['bf16']['speedup_vs_fp32']}x",
              flush=True)
    path = write_report(a.results, "precision", "", {"results": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
