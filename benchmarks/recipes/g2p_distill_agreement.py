"""How often the distillation teacher's output for a training word matches none of the word's
references (the teacher's WER on its students' training words):

    python benchmarks/recipes/g2p_distill_agreement.py [--distilled runs/distill/distilled.tsv]
        [--references runs/distill/train.tsv]

Writes benchmarks/results/g2p-distill-agreement-<date>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

from tandem.data.corpora import read_references
from tandem.evaluate import group_references


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--distilled", default="runs/distill/distilled.tsv")
    p.add_argument("--references", default="runs/distill/train.tsv")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    words, refs = group_references(read_references(a.references))
    known = dict(zip(words, (set(r) for r in refs), strict=True))
    outputs = dict(read_references(a.distilled))
    wrong = sum(out not in known[w] for w, out in outputs.items())
    body = {"words": len(outputs), "matching_no_reference": wrong,
            "percent": round(100 * wrong / len(outputs), 2)}
    out = write_report(a.results, "g2p-distill-agreement", "", body)
    print(f"{wrong} of {len(outputs)} words ({body['percent']}%) match no reference; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
