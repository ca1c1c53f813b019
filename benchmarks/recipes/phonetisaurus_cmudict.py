"""Phonetisaurus on the standard CMUdict split, scored exactly as tandem's G2P models are.

    python benchmarks/recipes/phonetisaurus_cmudict.py [--venv /work/sbs/phon]
        [--model /work/sbs/phon_model/g014b2b.fst] [--note TEXT]

Phonetisaurus (the pip wheel `phonetisaurus` 0.3.0, which carries the OpenFst/MITLM tools;
Debian has no package) is installed in its own venv:

    python3.11 -m venv /work/sbs/phon && /work/sbs/phon/bin/pip install phonetisaurus==0.3.0

If --model does not exist it is trained first on cmudict.g014b2b.train with the wheel's own
recipe (`python -m phonetisaurus train`: phonetisaurus-train, joint n-gram of order 8,
`--seq2_del`), and the training time is recorded. Then every word of cmudict.g014b2b.test.ref
is pronounced with `phonetisaurus-apply` (1-best) and scored like benchmarks/recipes/g2p_cmudict.py:
WER = % words matching no reference, PER = edits to the closest reference / its length.
Writes benchmarks/results/phonetisaurus-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import phonetisaurus_env, write_report

from tandem import metrics
from tandem.data.corpora import read_references
from tandem.evaluate import group_references

SPLIT = Path("../shared/data/cmudict_split")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", type=Path, default=Path("/work/sbs/phon"))
    p.add_argument("--model", type=Path, default=Path("/work/sbs/phon_model/g014b2b.fst"))
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--note", default="", help="e.g. how an existing --model was trained")
    a = p.parse_args()
    train_s = None
    if not a.model.exists():
        t = time.time()
        subprocess.run([str(a.venv / "bin/python"), "-m", "phonetisaurus", "train",
                        "--model", str(a.model), str(SPLIT / "cmudict.g014b2b.train")],
                       check=True)
        train_s = time.time() - t
    env = phonetisaurus_env(a.venv)
    words, refs = group_references(read_references(str(SPLIT / "cmudict.g014b2b.test.ref")))
    refs = [[r.split() for r in rs] for rs in refs]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(words) + "\n")
    t = time.time()
    out = subprocess.run(["phonetisaurus-apply", "--model", str(a.model), "--word_list", f.name,
                          "--nbest", "1"], env=env, capture_output=True, text=True, check=True)
    decode_s = time.time() - t
    os.unlink(f.name)
    got: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        word, *phones = line.split()
        got.setdefault(word, phones)
    missing = [w for w in words if w not in got]
    hyps = [got.get(w, []) for w in words]
    m = metrics.score(hyps, refs, ["seq_error_rate", "token_error_rate"])
    body = {"tool": "phonetisaurus 0.3.0 (pip wheel)", "model": str(a.model),
            "model_bytes": a.model.stat().st_size,
            "train_s": None if train_s is None else round(train_s, 1), "note": a.note,
            "test": {"words": len(words), "no_output": len(missing),
                     "wer": round(m["seq_error_rate"], 2), "per": round(m["token_error_rate"], 2),
                     "decode_s": round(decode_s, 1),
                     "words_per_s": round(len(words) / decode_s, 1)}}
    print(body["test"], file=sys.stderr)
    print(write_report(a.results, "phonetisaurus", "", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
