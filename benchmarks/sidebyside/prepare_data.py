#!/usr/bin/env python3
"""Data for the side-by-side benchmark (tandem vs Joey NMT vs OpenNMT-py); standard library only.

Reads the standard CMUdict g014b2b split (lines `WORD<TAB>P1 P2 ...`) and writes line-aligned
plain-text files that all three toolkits read unchanged:

  train.src / train.tgt   character-level source ("P H O E N I X"), phoneme target ("F IY N IH K S")
  dev.src   / dev.tgt     3,000 words held out of the train file, chosen exactly like tandem's
                          corpus: cmudict (the words whose SHA-1 sorts first; all variants kept
                          together), so every toolkit trains on the same 110k-odd pairs tandem's
                          g2p_cmudict recipe trains on
  dev500.src / dev500.tgt the first 500 dev lines (small validation set the toolkits need to start)
  test1000.src / .tgt     the first N test words (one line per word, first reference), N = 1000
  test50.src   / .tgt     the first 50 (smoke tests)
  vocab.src / vocab.tgt   one token per line, by frequency (for reference; each toolkit builds its
                          own vocabulary from train.*)
  stats.json              line and token counts (used by run.py to convert target-only token rates)

Usage: python3 prepare_data.py [--corpus-dir DIR] [--out DIR] [--test-words N]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
from pathlib import Path

TRAIN, TEST_REF = "cmudict.g014b2b.train", "cmudict.g014b2b.test.ref"


def read_pairs(path: Path) -> list[tuple[str, list[str]]]:
    """[(word, [pron, ...])] in file order; a .train/.test line holds one pronunciation, a .ref
    line all of them (tab separated)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:  # tolerate "WORD  P1 P2" with spaces instead of a tab
                word, _, pron = line.strip().partition(" ")
                parts = [word, pron]
            word = parts[0].strip()
            prons = [" ".join(p.split()) for p in parts[1:] if p.strip()]
            if not word or not prons:
                raise SystemExit(f"{path}:{lineno}: expected WORD<TAB>PHONEMES, got {line!r}")
            out.append((word, prons))
    return out


def chars(word: str) -> str:
    return " ".join(word)


def hold_out_by_word(pairs, n_words):
    """Same rule as tandem.data.cmudict.hold_out_by_word (kept in sync by hand)."""
    words = list(dict.fromkeys(w for w, _ in pairs))
    dev_words = set(sorted(words, key=lambda w: hashlib.sha1(w.encode("utf-8")).hexdigest())
                    [:n_words])
    return ([p for p in pairs if p[0] not in dev_words], [p for p in pairs if p[0] in dev_words])


def write(out: Path, name: str, pairs) -> dict:
    src_tok = tgt_tok = 0
    with open(out / f"{name}.src", "w", encoding="utf-8") as fs, \
            open(out / f"{name}.tgt", "w", encoding="utf-8") as ft:
        for word, pron in pairs:
            fs.write(chars(word) + "\n")
            ft.write(pron + "\n")
            src_tok += len(word)
            tgt_tok += len(pron.split())
    return {"lines": len(pairs), "src_tokens": src_tok, "tgt_tokens": tgt_tok}


def main() -> None:
    here = Path(__file__).resolve()
    default_corpus = here.parents[3] / "shared" / "data" / "cmudict_split"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus-dir", default=str(default_corpus))
    ap.add_argument("--out", default="/work/sbs/data")
    ap.add_argument("--dev-words", type=int, default=3000)
    ap.add_argument("--test-words", type=int, default=1000)
    a = ap.parse_args()
    corpus, out = Path(a.corpus_dir), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    train_raw = [(w, p[0]) for w, p in read_pairs(corpus / TRAIN)]
    train, dev = hold_out_by_word(train_raw, a.dev_words)
    test = [(w, prons[0]) for w, prons in read_pairs(corpus / TEST_REF)]  # one line per word

    stats = {"corpus_dir": str(corpus), "dev_words": a.dev_words}
    stats["train"] = write(out, "train", train)
    stats["dev"] = write(out, "dev", dev)
    stats["dev500"] = write(out, "dev500", dev[:500])
    stats[f"test{a.test_words}"] = write(out, f"test{a.test_words}", test[:a.test_words])
    stats["test50"] = write(out, "test50", test[:50])
    for side, idx in (("src", 0), ("tgt", 1)):
        counts = collections.Counter()
        for word, pron in train:
            counts.update(list(word) if idx == 0 else pron.split())
        (out / f"vocab.{side}").write_text(
            "".join(f"{t}\n" for t, _ in counts.most_common()), encoding="utf-8")
        stats[f"vocab_{side}"] = len(counts)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
