"""The files of the G2P distillation recipe (docs/benchmarks.md, "Distilled G2P models"),
written from the standard CMUdict split exactly as `data.corpus: cmudict` splits it:

    python benchmarks/recipes/g2p_distill_data.py [--out runs/distill] [--corpus-dir DIR]
        [--dev-words 3000]

- train.tsv        the training pairs (dev words held out), every variant: the references;
- train_words.txt  each training word once, in first-seen order: what the teachers decode;
- dev.tsv          the dev pairs (3,000 words held out by hash, all their variants);
- test.tsv         the standard test words, one line per reference pronunciation.

Then (all commands in docs/benchmarks.md):

    tandem distill --teacher L2R.pt --rescore R2L.pt --data OUT/train_words.txt \\
        --out OUT/distilled.tsv --beam 5
    cat OUT/distilled.tsv OUT/train.tsv > OUT/distilled_and_references.tsv

and students train with benchmarks/recipes/g2p_cmudict.py --set data.corpus=null
--set data.train=OUT/distilled.tsv --set data.dev=OUT/dev.tsv --set data.test=OUT/test.tsv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tandem.data.cmudict import DEFAULT_DIR, standard_split


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    """source<TAB>target lines."""
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/distill"))
    p.add_argument("--corpus-dir", default=DEFAULT_DIR)
    p.add_argument("--dev-words", type=int, default=3000)
    a = p.parse_args()
    train, dev, test = standard_split(a.corpus_dir, a.dev_words)
    a.out.mkdir(parents=True, exist_ok=True)
    write_pairs(a.out / "train.tsv", train)
    words = list(dict.fromkeys(s for s, _ in train))
    (a.out / "train_words.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    write_pairs(a.out / "dev.tsv", dev)
    write_pairs(a.out / "test.tsv", test)
    print(f"{a.out}: {len(train)} training pairs of {len(words)} words, {len(dev)} dev pairs, "
          f"{len(test)} test references")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
