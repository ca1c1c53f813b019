"""CMUdict G2P: score an ensemble of trained models (log-probabilities averaged at every step)
on the dev words and on the standard test set, and write JSON.

    .venv/bin/python benchmarks/g2p_ensemble.py --models runs/a/best.pt runs/b/best.pt \
        [--beam 5] [--name 2x-58min]

The models must share vocabularies (runs of one config with different seeds do). Writes
benchmarks/results/g2p-<date>-ensemble-<name>.json with each member's and the ensemble's
dev and test WER/PER, so the gain of ensembling is measured in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from g2p_cmudict import score  # noqa: E402

from tandem.bench import write_report  # noqa: E402
from tandem.data.dataset import load_splits  # noqa: E402
from tandem.decode.translator import load  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, type=Path)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--name", default="")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    splits = load_splits(load(a.models[0], device="cpu").config.data)
    sets = {"dev": splits.dev, "test": splits.test}
    members = {str(m): {k: score([m], v, a.beam) for k, v in sets.items()} for m in a.models}
    ensemble = {k: score(a.models, v, a.beam) for k, v in sets.items()}
    name = a.name or f"{len(a.models)}-models"
    out = write_report(a.results, "g2p", f"-ensemble-{name}",
                       {"members": members, "ensemble": ensemble})
    for m, r in members.items():
        print(f"{m:<40} dev WER {r['dev']['wer']:.2f}  test WER {r['test']['wer']:.2f}% "
              f"PER {r['test']['per']:.2f}%")
    print(f"{'ensemble':<40} dev WER {ensemble['dev']['wer']:.2f}  test WER "
          f"{ensemble['test']['wer']:.2f}% PER {ensemble['test']['per']:.2f}%")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
