"""The lean runtime against the PyTorch path at batch 1 and batch 64, float32 and int8, and
whether a long decode keeps memory flat.

    .venv/bin/python benchmarks/speed/runtime_batches.py [--words 1000] [--rounds 3]
        [--lines 10000 100000]

- Batches: the shipped G2P model (its release checkpoint on the PyTorch path, with PyTorch's
  dynamic int8 for int8; its float32 and int8 exports in the runtime) decodes --words of its
  held-out words with beam 5 at `batch_size` 1 and 64; words/s, median of --rounds passes in
  rotating order after one warm-up, 2 threads each.
- Memory: `tandem translate --model src/tandem/models/g2p_en --input FILE` (the CLI streams
  its input in chunks) over FILE of each --lines count (the held-out words repeated, upper
  case), one process each: peak RSS polled from /proc, and the wall time.
Writes benchmarks/results/runtime-batches-<date>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import rotated, watched, write_report

import tandem
import tandem.runtime
from tandem.data.cmudict import hold_out_by_word, package_dictionary
from tandem.evaluate import group_references
from tandem.pronounce import PACKAGE_MODEL, PACKAGE_MODEL_INT8

RELEASE = Path("models/g2p_en.pt")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--words", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lines", type=int, nargs="+", default=[10000, 100000])
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    held = group_references(hold_out_by_word(package_dictionary(True), 3000)[1])[0]
    words = held[: a.words]
    models = {"pytorch": tandem.load(RELEASE, device="cpu"),
              "pytorch-int8": tandem.load(RELEASE, device="cpu").quantize("int8"),
              "runtime": tandem.runtime.load(PACKAGE_MODEL, threads=2),
              "runtime-int8": tandem.runtime.load(PACKAGE_MODEL_INT8, threads=2)}
    cases = [(name, bs) for name in models for bs in (1, 64)]
    rates: dict[str, list[float]] = {f"{n}@{bs}": [] for n, bs in cases}
    for n, bs in cases:
        models[n].translate(words[:64], beam=5, batch_size=bs)
    for r in range(a.rounds):
        for n, bs in rotated(cases, r):
            t0 = time.perf_counter()
            models[n].translate(words, beam=5, batch_size=bs)
            rates[f"{n}@{bs}"].append(len(words) / (time.perf_counter() - t0))
    batches = {k: {"words_per_s": round(statistics.median(v), 1),
                   "all": [round(x, 1) for x in v]} for k, v in rates.items()}
    for bs in (1, 64):
        for kind in ("", "-int8"):
            batches[f"runtime{kind}@{bs}"]["over_pytorch" + kind] = round(
                batches[f"runtime{kind}@{bs}"]["words_per_s"]
                / batches[f"pytorch{kind}@{bs}"]["words_per_s"], 3)
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.lines:
            path = Path(tmp) / f"{n}.txt"
            path.write_text("".join(held[i % len(held)] + "\n" for i in range(n)))
            cmd = [sys.executable, "-m", "tandem", "translate", "--model", str(PACKAGE_MODEL),
                   "--input", str(path)]
            t0 = time.perf_counter()
            proc, peak, _ = watched(cmd)
            memory[str(n)] = {"ok": proc.returncode == 0, "peak_rss_mb": round(peak),
                              "wall_s": round(time.perf_counter() - t0, 1),
                              "output_lines": len(proc.stdout.splitlines())}
            print(n, memory[str(n)], flush=True)
    body = {"words": len(words), "beam": 5, "rounds": a.rounds, "batches": batches,
            "stream_memory": memory}
    out = write_report(a.results, "runtime-batches", "", body)
    for k, v in batches.items():
        print(f"{k:<20} {v['words_per_s']:8.1f} words/s")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
