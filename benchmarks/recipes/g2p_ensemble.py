"""CMUdict G2P: score an ensemble of trained models (log-probabilities averaged at every step)
on the dev words and on the standard test set, and write JSON.

    .venv/bin/python benchmarks/recipes/g2p_ensemble.py --models runs/a/best.pt runs/b/best.pt \
        [--rescore runs/r2l/best.pt ...] [--beam 5] [--name 2x-58min]

The models must share vocabularies (runs of one config with different seeds do). With
--rescore, the ensemble's beam candidates are also reranked by the mean of its score and the
rescoring models' scores (right-to-left models, trained with data.reverse_target, which cannot
join the step-by-step ensemble). Writes benchmarks/results/g2p-<date>-ensemble-<name>.json with
each model's, the ensemble's and the reranked ensemble's dev and test WER/PER, so the gain of
each step is measured in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report
from g2p_cmudict import score

from tandem.data.dataset import load_splits
from tandem.structures.translator import load


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, type=Path)
    p.add_argument("--rescore", nargs="+", default=[], type=Path,
                   help="models that rerank the ensemble's beam candidates")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--dev-only", action="store_true",
                   help="score the dev words only (for choosing a recipe; no test figure)")
    p.add_argument("--name", default="")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    splits = load_splits(load(a.models[0], device="cpu").config.data)
    sets = {"dev": splits.dev} if a.dev_only else {"dev": splits.dev, "test": splits.test}
    members = {str(m): {k: score([m], v, a.beam) for k, v in sets.items()}
               for m in [*a.models, *a.rescore]}
    ensemble = {k: score(a.models, v, a.beam) for k, v in sets.items()}
    body = {"members": members, "ensemble": ensemble}
    if a.rescore:
        body["reranked"] = {k: score(a.models, v, a.beam, a.rescore) for k, v in sets.items()}
    name = (a.name or f"{len(a.models)}-models") + ("-dev" if a.dev_only else "")
    out = write_report(a.results, "g2p", f"-ensemble-{name}", body)
    rows = [*members.items(), ("ensemble", ensemble)] + (
        [("ensemble reranked", body["reranked"])] if a.rescore else [])
    for m, r in rows:
        print(f"{m:<40} " + "  ".join(f"{k} WER {v['wer']:.2f}% PER {v['per']:.2f}%"
                                        for k, v in r.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
