"""`tandem g2p --text` on running English text, beside espeak-ng on the same sentences in the
same run (each round runs the tools in a rotated order):

    .venv/bin/python benchmarks/speed/g2p_text.py [--sentences 10000] [--rounds 3]

- the sentences: the first --sentences lines of the English side of Multi30k's training set
  (../shared/data/multi30k/raw/train.en.gz), written to a file;
- tandem: `tandem g2p --text --input FILE` (the shipped dictionary, homograph model and G2P
  model, all in the lean runtime), and `--no-homographs` to show what the homograph model costs;
- espeak-ng (the Debian package): `espeak-ng -q -x -f FILE`, its own phoneme mnemonics. Its
  phone set and text rules differ from tandem's (ARPAbet), so only its time and memory are
  comparable, not its output.

Writes benchmarks/results/g2p-text-<date>.json: sentences/s (from the median wall time),
first output, peak memory, the homographs met and the command.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report
from g2p_tools import median_row, timed_rounds

MULTI30K = "../shared/data/multi30k/raw/train.en.gz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=10000)
    p.add_argument("--source", default=MULTI30K)
    p.add_argument("--tools", nargs="+", default=["tandem", "tandem-no-homographs", "espeak-ng"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tmp", default="/tmp/tandem-g2p-text")
    p.add_argument("--tag", default="")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    with gzip.open(a.source, "rt", encoding="utf-8") as f:
        lines = [line.strip() for _, line in zip(range(a.sentences), f, strict=False)]
    path = tmp / "sentences.txt"
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    tandem = [sys.executable, "-m", "tandem", "g2p", "--text", "--input", str(path)]
    commands = {"tandem": tandem, "tandem-no-homographs": [*tandem, "--no-homographs"],
                "espeak-ng": ["espeak-ng", "-q", "-x", "-f", str(path)]}
    runs = timed_rounds(a.tools, commands, a.rounds, lambda _: len(lines))  # sentences here
    rows = []
    for t in a.tools:
        row = median_row(runs[t])
        if row.get("ran"):
            row["sentences"] = row.pop("words")
            row["sentences_per_s"] = row.pop("words_per_s")
            row["sentences_per_s_all"] = row.pop("words_per_s_all")
        rows.append(row)
    from tandem.pronounce.sentences import TextG2P

    homographs = sum(s.source == "homograph" for spoken in
                     TextG2P().pronounce_lines(lines) for s in spoken)
    body = {"sentences": len(lines), "source": a.source, "rounds": a.rounds,
            "homographs_in_the_sentences": homographs, "rows": rows,
            "note": "espeak-ng writes its own phoneme mnemonics; only time and memory compare"}
    print(write_report(a.results, "g2p-text", f"-{a.tag}" if a.tag else "", body))


if __name__ == "__main__":
    main()
