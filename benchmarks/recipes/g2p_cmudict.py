"""CMUdict G2P: train a recipe, score it on the standard test set, write JSON.

    .venv/bin/python benchmarks/recipes/g2p_cmudict.py [--config configs/g2p_cmudict.yaml]
        [--set train.max_minutes=58 ...] [--no-train] [--average 5] [--beam 5]

Trains (unless --no-train), then scores best.pt and, with --average N, the mean of the last N
checkpoints, on cmudict.g014b2b.test.ref (12,000 words, all references): WER (% of words whose
output matches no reference) and PER (edit distance to the closest reference / its length).
Also reports the training time at which dev WER first fell below Phonetisaurus' 24.5%.
Writes benchmarks/results/g2p-<date>-<name>.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import recipe_parser, train_recipe, write_report

from tandem.data.dataset import load_splits
from tandem.evaluate import evaluate_outputs, group_references
from tandem.structures.translator import load

PHONETISAURUS_WER = 24.5


def score(paths: list[Path], test, beam: int, rescore: list[Path] | None = None) -> dict:
    """WER/PER of one model or an ensemble, its beam candidates optionally reranked with
    `rescore` models (e.g. right-to-left ones)."""
    tr = load(*paths)
    if rescore:
        tr.rescore_with(*rescore)
    srcs, refs = group_references(test)
    t0 = time.time()
    hyps = tr.translate(srcs, beam=beam)
    decode_s = time.time() - t0
    m = evaluate_outputs(tr.fields, hyps, refs, ["seq_error_rate", "token_error_rate"])
    return {"models": [str(p) for p in paths], "rescore": [str(p) for p in rescore or []],
            "beam": beam, "words": len(srcs),
            "wer": round(m["seq_error_rate"], 2), "per": round(m["token_error_rate"], 2),
            "decode_s": round(decode_s, 1), "words_per_s": round(len(srcs) / decode_s, 1)}


def main() -> int:
    a = recipe_parser("configs/g2p_cmudict.yaml", 0, __doc__.splitlines()[0]).parse_args()
    cfg, run, history, models = train_recipe(a)
    first = next((h for h in history if h.get("seq_error_rate", 100) < PHONETISAURUS_WER), None)
    best = min(history, key=lambda h: h.get("seq_error_rate", 100))
    test = load_splits(cfg.data).test
    results = {name: score([path], test, a.beam) for name, path in models.items()}
    params = sum(t.numel() for k, t in torch.load(run / "best.pt", weights_only=True)["model"]
                 .items())
    body = {
        "config": cfg.to_dict(), "parameters": params,
        "train_minutes": round(history[-1]["elapsed_s"] / 60, 1), "steps": history[-1]["step"],
        "best_dev": {k: best[k] for k in ("step", "elapsed_s", "seq_error_rate",
                                          "token_error_rate") if k in best},
        "minutes_to_dev_wer_below_24.5": None if first is None else round(first["elapsed_s"] / 60,
                                                                          1),
        "dev_curve": [{k: h[k] for k in ("step", "elapsed_s", "seq_error_rate",
                                         "token_error_rate")} for h in history],
        "test": results,
    }
    out = write_report(a.results, "g2p", f"-{cfg.name}", body)
    for k, r in results.items():
        print(f"{k:<18} test WER {r['wer']:.2f}%  PER {r['per']:.2f}%  "
              f"({r['words_per_s']} words/s)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
