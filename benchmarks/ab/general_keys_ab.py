"""Same-process A/B of general attention's search kernel on a real model, in interleaved
rounds: the query projected at every step (`ProjectedQuery`, the textbook) against the keys
projected once per batch (`fast.ProjectedKeys`, what tandem's searches use).

    python benchmarks/ab/general_keys_ab.py [--words 3000]
        [--model models/g2p_en.pt] [--rounds 5] [--beam 5]

The words are the first --words distinct words of the standard CMUdict test file; each kernel
decodes them once untimed first, and the order of the two alternates between rounds. Writes
benchmarks/results/<change>-ab-<date>.json (`--change general_keys`, the only choice:
general-keys-ab-<date>.json) with every round, the medians, the ratio and whether the outputs
are identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

from tandem.model import fast
from tandem.model.attention import ProjectedQuery
from tandem.structures.translator import load

TEST = "../shared/data/cmudict_split/cmudict.g014b2b.test"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--change", choices=["general_keys"], default="general_keys")
    p.add_argument("--model", default="models/g2p_en.pt")
    p.add_argument("--words", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    words = list(dict.fromkeys(line.split("\t")[0]
                               for line in open(TEST, encoding="utf-8")))[:a.words]
    tr = load(a.model)
    dec = tr.model.decoder
    kernels = {"projected_query": ProjectedQuery, "projected_keys": fast.ProjectedKeys}
    seconds = {k: [] for k in kernels}
    outputs = {k: [] for k in kernels}
    for kernel in kernels.values():  # warm-up: one untimed decode each
        dec.attention.general = kernel()
        tr.translate(words, beam=a.beam)
    for r in range(a.rounds):
        order = list(kernels.items())
        for name, kernel in order if r % 2 == 0 else order[::-1]:
            dec.attention.general = kernel()
            t = time.perf_counter()
            outputs[name].append(tr.translate(words, beam=a.beam))
            seconds[name].append(round(time.perf_counter() - t, 3))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    old, new = kernels
    body = {"change": a.change, "model": a.model, "words": len(words), "beam": a.beam,
            "rounds": seconds, "median_s": med, "speedup": round(med[old] / med[new], 3),
            "range_s": {k: [min(v), max(v)] for k, v in seconds.items()},
            "same_outputs": outputs[old] == outputs[new]}
    print(body["median_s"], body["speedup"], body["same_outputs"])
    print(write_report(a.results, a.change.replace("_", "-") + "-ab", "", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
