"""Multi30k translation: train a recipe, tune the length penalty on val, score test2016.

    .venv/bin/python benchmarks/recipes/multi30k.py [--config configs/multi30k_de_en.yaml]
        [--set key=value ...] [--resume | --no-train] [--average 5] [--beam 5]

Scores best.pt and (with --average N) the mean of the last N checkpoints on test2016 with
beam search, at the length penalty that gave the best val BLEU: sacreBLEU (cased, 13a, on
detokenised output against the raw references), lowercased BLEU and chrF, with the sacrebleu
signatures. Writes benchmarks/results/multi30k-<date>-<name>.json; a run stopped before its
time budget is marked "partial".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import recipe_parser, train_recipe, write_report

from tandem.data.dataset import load_splits
from tandem.evaluate import evaluate_outputs
from tandem.metrics import sacrebleu_signature
from tandem.structures.translator import load

METRICS = ["bleu", "bleu_lc", "chrf"]


def score(tr, pairs, beam: int, alpha: float) -> dict:
    srcs, refs = [s for s, _ in pairs], [[t] for _, t in pairs]
    t0 = time.time()
    hyps = tr.translate(srcs, beam=beam, length_penalty=alpha)
    seconds = time.time() - t0
    m = evaluate_outputs(tr.fields, hyps, refs, METRICS)
    return {**{k: round(v, 2) for k, v in m.items()}, "beam": beam, "length_penalty": alpha,
            "sentences": len(srcs), "decode_s": round(seconds, 1),
            "sentences_per_s": round(len(srcs) / seconds, 1), "first_outputs": hyps[:3]}


def main() -> int:
    p = recipe_parser("configs/multi30k_de_en.yaml", 5, __doc__.splitlines()[0])
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.6, 1.0, 1.4],
                   help="length penalties tried on val")
    a = p.parse_args()
    cfg, run, history, models = train_recipe(a)
    splits = load_splits(cfg.data)
    results = {}
    for name, path in models.items():
        tr = load(path)
        val = {alpha: score(tr, splits.dev, a.beam, alpha) for alpha in a.alphas}
        alpha = max(val, key=lambda x: val[x]["bleu"])
        results[name] = {"val_bleu_by_length_penalty": {str(k): v["bleu"] for k, v in
                                                       val.items()},
                         "length_penalty": alpha, "val": val[alpha],
                         "test2016": score(tr, splits.test, a.beam, alpha)}
    budget = cfg.train.max_minutes
    minutes = history[-1]["elapsed_s"] / 60
    best = max(history, key=lambda h: h.get("bleu", -1))
    body = {
        "config": cfg.to_dict(), "train_minutes": round(minutes, 1), "steps": history[-1]["step"],
        "partial": bool(budget and minutes < budget - 2
                        and history[-1]["step"] < cfg.train.max_steps),
        "best_val_greedy": {k: best[k] for k in ("step", "elapsed_s", "bleu") if k in best},
        "sacrebleu_signatures": sacrebleu_signature(),
        "length_norm": cfg.decode.length_norm,
        "dev_curve": [{k: h[k] for k in ("step", "elapsed_s", "bleu")} for h in history],
        "results": results,
    }
    out = write_report(a.results, "multi30k", f"-{cfg.name}", body)
    for name, r in results.items():
        t = r["test2016"]
        print(f"{name:<18} test2016 BLEU {t['bleu']:.2f}  lc {t['bleu_lc']:.2f}  chrF "
              f"{t['chrf']:.2f}  (beam {t['beam']}, lp {r['length_penalty']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
