"""Write the CMU Pronouncing Dictionary that tandem ships (`src/tandem/lexicons/`) from the
shared copy of the dictionary's own release (../shared/data/cmudict_full, BSD-style licence).

    .venv/bin/python scripts/pack_cmudict.py [--source ../shared/data/cmudict_full]

The output, `cmudict.tsv`, is one line per word, `word<TAB>pron<TAB>pron...`, the
pronunciations in the dictionary's order (`word`, `word(2)`, ...), comments dropped, sorted by
the word's UTF-8 bytes, so `tandem.data.lexicon.Lexicon` finds a word by binary search over the
file as read, with nothing parsed up front. The licence is copied beside it unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "tandem" / "lexicons"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--source", type=Path, default=Path("../shared/data/cmudict_full"))
    a = p.parse_args()
    sums = dict(reversed(line.split()) for line in
                (a.source / "SHA256SUMS").read_text().splitlines() if line.strip())
    for name in ("cmudict.dict", "LICENSE"):
        digest = hashlib.sha256((a.source / name).read_bytes()).hexdigest()
        if sums.get(f"./{name}") != digest:
            sys.exit(f"{a.source / name}: sha256 does not match {a.source / 'SHA256SUMS'}")
    words: dict[str, list[str]] = {}
    for line in (a.source / "cmudict.dict").read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        word = parts[0]
        if word.endswith(")") and "(" in word:  # alternates: word(2), word(3), ...
            word = word[: word.rindex("(")]
        words.setdefault(word, []).append(" ".join(parts[1:]))
    OUT.mkdir(parents=True, exist_ok=True)
    rows = sorted(words.items(), key=lambda kv: kv[0].encode("utf-8"))
    (OUT / "cmudict.tsv").write_text("".join(f"{w}\t{chr(9).join(p)}\n" for w, p in rows),
                                     encoding="utf-8")
    shutil.copyfile(a.source / "LICENSE", OUT / "LICENSE.cmudict")
    print(f"wrote {OUT / 'cmudict.tsv'}: {len(rows)} words, "
          f"{sum(len(p) for _, p in rows)} pronunciations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
