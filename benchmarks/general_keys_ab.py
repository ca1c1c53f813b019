"""Same-process A/B of general attention's two kernels in a search: the query projected at
every step (`ProjectedQuery`, the textbook) against the keys projected once per batch
(`fast.ProjectedKeys`, what searches use), on a real model, interleaved rounds.

    python benchmarks/general_keys_ab.py [--model src/tandem/models/g2p_en.pt] [--words 3000]
        [--rounds 5] [--beam 5]

The words are the first --words of the standard CMUdict test file. Writes
benchmarks/results/general-keys-ab-<date>.json with every round, the medians, the ratio and
whether the outputs are identical.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import write_report

from tandem.decode.translator import load
from tandem.model import fast
from tandem.model.attention import ProjectedQuery

TEST = "../shared/data/cmudict_split/cmudict.g014b2b.test"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="src/tandem/models/g2p_en.pt")
    p.add_argument("--words", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    words = [line.split("\t")[0] for line in open(TEST, encoding="utf-8")][:a.words]
    tr = load(a.model)
    att = tr.model.decoder.attention
    kernels = {"projected_query": ProjectedQuery, "projected_keys": fast.ProjectedKeys}
    seconds = {k: [] for k in kernels}
    outputs = {}
    for _ in range(a.rounds):
        for name, kernel in kernels.items():
            att.general = kernel()
            t = time.perf_counter()
            outputs[name] = tr.translate(words, beam=a.beam)
            seconds[name].append(round(time.perf_counter() - t, 3))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    body = {"model": a.model, "words": len(words), "beam": a.beam, "rounds": seconds,
            "median_s": med, "speedup": round(med["projected_query"] / med["projected_keys"], 3),
            "same_outputs": outputs["projected_query"] == outputs["projected_keys"]}
    print(body["median_s"], body["speedup"], body["same_outputs"])
    print(write_report(a.results, "general-keys-ab", "", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
