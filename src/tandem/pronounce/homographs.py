"""Homographs in context: which pronunciation (`wordid`) a spelling such as `read`, `record` or
`lead` has in its sentence, chosen by a tandem classifier (`model.structure: classify`) trained
on the Wikipedia Homograph Data (benchmarks/recipes/homographs.py, card in
docs/homograph_model.md).

The model reads a window of the sentence around the homograph with the homograph itself
replaced by one marker token (`[[read]]`), so the same classifier serves every homograph; its
answer is restricted to that homograph's own wordids (`choose`). Each wordid maps to one ARPAbet
pronunciation (`wordid_pronunciations`): the CMU dictionary variant closest to the data's IPA.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.data.lexicon import VOWELS
from tandem.errors import DataError
from tandem.metrics import edit_distance
from tandem.pronounce.text import Token, context_words, tokenize

WINDOW = 16
"""Tokens of context the model reads on each side of the homograph."""

PACKAGE_MODEL = Path(__file__).resolve().parent.parent / "models" / "homographs_en"
"""The shipped homograph model (an export run by the lean runtime) and its wordid table."""


@dataclass(frozen=True)
class Example:
    """One sentence of the data: the homograph, its wordid (the answer), the sentence and the
    homograph's character span in it."""

    homograph: str
    wordid: str
    sentence: str
    start: int
    end: int


def marker(homograph: str) -> str:
    """The token that stands for `homograph` in the model's input."""
    return f"[[{homograph.lower()}]]"


def model_input(tokens: list[Token], index: int, window: int = WINDOW) -> str:
    """The classifier's input for the homograph at tokens[index]: up to `window` tokens either
    side as `context_words` reads them, the homograph as its marker, preceded by `<cap>` when
    it is capitalised anywhere but at the start of its sentence (a name: Bass, Reading)."""
    words = context_words(tokens)
    left = words[max(0, index - window):index]
    right = words[index + 1:index + 1 + window]
    mid = [marker(words[index])]
    t = tokens[index]
    if t.text[:1].isupper() and index > 0 and tokens[index - 1].text not in ".!?\"'(":
        mid.insert(0, "<cap>")
    return " ".join(left + mid + right)


def example_input(ex: Example, window: int = WINDOW) -> str:
    """The classifier's input for one data example (the token whose span is the example's)."""
    tokens = tokenize(ex.sentence)
    for i, t in enumerate(tokens):
        if t.start <= ex.start < t.end or (ex.start <= t.start < ex.end):
            return model_input(tokens, i, window)
    raise DataError(f"{ex.homograph!r} at {ex.start}: no token there in {ex.sentence!r}")


def read_examples(folder: str | Path) -> list[Example]:
    """Every example of a Wikipedia Homograph Data split folder (one TSV per homograph, a
    quoted header, `start`/`end` byte offsets into the UTF-8 sentence, turned into character
    offsets here); a span that does not hold the homograph is refused naming file and line."""
    folder = Path(folder)
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise DataError(f"{folder}: no .tsv files (a Wikipedia Homograph Data split folder "
                        "holds one per homograph)")
    out = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter="\t")
            header = next(rows, None)
            if header != ["homograph", "wordid", "sentence", "start", "end"]:
                raise DataError(f"{path}:1: header {header!r}; expected homograph, wordid, "
                                "sentence, start, end")
            for line, row in enumerate(rows, 2):
                if len(row) != 5:
                    raise DataError(f"{path}:{line}: {len(row)} fields; expected 5")
                h, wid, sentence, a, b = row
                raw = sentence.encode("utf-8")
                a, b = int(a), int(b)
                if raw[a:b].decode("utf-8", "replace").lower() != h.lower():
                    raise DataError(f"{path}:{line}: bytes {a}-{b} hold "
                                    f"{raw[a:b].decode('utf-8', 'replace')!r}, not {h!r}")
                start = len(raw[:a].decode("utf-8"))
                out.append(Example(h.lower(), wid, sentence, start,
                                   start + len(raw[a:b].decode("utf-8"))))
    return out


@dataclass(frozen=True)
class WordId:
    """One pronunciation of a homograph as the data names it: id, label (noun, verb, past...),
    the data's IPA, and the ARPAbet it maps to with where that came from (`dictionary`: a CMU
    variant; `ipa`: converted from the IPA when no variant matches)."""

    wordid: str
    homograph: str
    label: str
    ipa: str
    arpabet: str
    source: str


def read_wordids(path: str | Path) -> list[tuple[str, str, str, str]]:
    """(homograph, wordid, label, ipa) of each row of the data's wordids.tsv."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][:4] != ["homograph", "wordid", "label", "pronunciation"]:
        raise DataError(f"{path}:1: expected the header homograph, wordid, label, "
                        "pronunciation, ...")
    return [(r[0].lower(), r[1], r[2], r[3]) for r in rows[1:]]


@functools.cache
def shipped_table() -> dict[str, WordId]:
    """wordid -> WordId for the shipped model (its `wordids.tsv`, made by the recipe)."""
    return load_table(PACKAGE_MODEL / "wordids.tsv")


def load_table(path: str | Path) -> dict[str, WordId]:
    """A wordid table as `write_table` writes it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no wordid table there (a homograph model folder holds one)")
    out = {}
    with path.open(encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if line == 1:
                continue
            if len(row) != 6:
                raise DataError(f"{path}:{line}: {len(row)} fields; expected 6")
            out[row[0]] = WordId(*row)
    return out


def write_table(path: str | Path, table: dict[str, WordId]) -> None:
    """Write a wordid table (TSV with a header)."""
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["wordid", "homograph", "label", "ipa", "arpabet", "source"])
        for wid in sorted(table):
            t = table[wid]
            w.writerow([t.wordid, t.homograph, t.label, t.ipa, t.arpabet, t.source])


def choose(probabilities: dict[str, float], homograph: str,
           table: dict[str, WordId]) -> tuple[str, float]:
    """The most probable of `homograph`'s own wordids, and its probability renormalised over
    them (the classifier's softmax covers every homograph's ids)."""
    own = {w: p for w, p in probabilities.items() if w in table
           and table[w].homograph == homograph}
    if not own:
        raise DataError(f"{homograph!r}: the homograph model has no wordid for it")
    best = max(own, key=own.get)
    total = sum(own.values())
    return best, own[best] / total if total > 0 else 1.0 / len(own)


def choose_rows(probabilities: Any, labels: list[str], homographs: list[str],
                table: dict[str, WordId]) -> list[tuple[str, float]]:
    """`choose` for each row of a classifier's probabilities (N, labels) and its homograph:
    only the columns of the homograph's own wordids are read."""
    column = {label: j for j, label in enumerate(labels)}
    own: dict[str, list[str]] = {}
    for w in table.values():
        if w.wordid in column:
            own.setdefault(w.homograph, []).append(w.wordid)
    return [choose({w: float(row[column[w]]) for w in own.get(h, [])}, h, table)
            for row, h in zip(probabilities, homographs, strict=True)]


_IPA = [  # longest first: diphthongs and long vowels before their parts
    ("eɪ", "EY"), ("aɪ", "AY"), ("ɔɪ", "OY"), ("aʊ", "AW"), ("oʊ", "OW"), ("əʊ", "OW"),
    ("iː", "IY"), ("uː", "UW"), ("ɑː", "AA"), ("ɔː", "AO"), ("ɜː", "ER"), ("ɝ", "ER"),
    ("ɚ", "ER"), ("ə", "AH"), ("ʌ", "AH"), ("ɪ", "IH"), ("ɛ", "EH"), ("æ", "AE"), ("ʊ", "UH"),
    ("ɑ", "AA"), ("ɒ", "AA"), ("ɔ", "AO"), ("i", "IY"), ("u", "UW"), ("e", "EY"), ("o", "OW"),
    ("a", "AA"), ("ʤ", "JH"), ("dʒ", "JH"), ("ʧ", "CH"), ("tʃ", "CH"), ("θ", "TH"),
    ("ð", "DH"), ("ʃ", "SH"), ("ʒ", "ZH"), ("ŋ", "NG"), ("ɹ", "R"), ("r", "R"), ("j", "Y"),
    ("ɡ", "G"), ("g", "G"), ("h", "HH"), ("p", "P"), ("b", "B"), ("t", "T"), ("d", "D"),
    ("k", "K"), ("f", "F"), ("v", "V"), ("s", "S"), ("z", "Z"), ("m", "M"), ("n", "N"),
    ("l", "L"), ("w", "W")]


def ipa_to_arpabet(ipa: str) -> str:
    """The data's IPA (`'` primary and `ˌ` secondary stress before a syllable) as ARPAbet with
    stress digits: each vowel gets the stress mark that last preceded it in its syllable, else
    0; length marks and characters outside the table are skipped."""
    out, stress, i = [], "0", 0
    while i < len(ipa):
        if ipa[i] in "'ˈ":
            stress, i = "1", i + 1
            continue
        if ipa[i] == "ˌ":
            stress, i = "2", i + 1
            continue
        for src, dst in _IPA:
            if ipa.startswith(src, i):
                if dst in VOWELS:
                    out.append(dst + stress)
                    stress = "0"
                else:
                    out.append(dst)
                i += len(src)
                break
        else:
            i += 1
    return " ".join(out)


def map_wordids(rows: list[tuple[str, str, str, str]], lookup) -> tuple[dict[str, WordId],
                                                                         list[str]]:
    """Each wordid -> the `lookup(homograph)` (CMU dictionary) variant closest to its IPA
    (edit distance without stress, then with stress); two wordids of one homograph never share
    a variant (the closer keeps it, the other takes its IPA converted). Returns the table and
    a line for every wordid not mapped to a dictionary variant, saying why."""
    from tandem.pronounce import strip_stress

    by_h: dict[str, list[tuple[str, str, str]]] = {}
    for h, wid, label, ipa in rows:
        by_h.setdefault(h, []).append((wid, label, ipa))
    table, notes = {}, []
    for h, ids in sorted(by_h.items()):
        variants = lookup(h)
        scored = []
        for wid, _label, ipa in ids:
            conv = ipa_to_arpabet(ipa)
            for v in variants:
                d = (edit_distance(strip_stress(conv).split(), strip_stress(v).split()),
                     edit_distance(conv.split(), v.split()))
                scored.append((d, wid, v))
        taken_w, taken_v = {}, set()
        for _d, wid, v in sorted(scored):
            if wid not in taken_w and v not in taken_v:
                taken_w[wid] = v
                taken_v.add(v)
        for wid, label, ipa in ids:
            conv = ipa_to_arpabet(ipa)
            if wid in taken_w:
                table[wid] = WordId(wid, h, label, ipa, taken_w[wid], "dictionary")
            else:
                table[wid] = WordId(wid, h, label, ipa, conv, "ipa")
                why = ("the dictionary lacks the word" if not variants else
                       f"the dictionary's {len(variants)} variant(s) went to the other "
                       "wordid(s)")
                notes.append(f"{wid} ({label}, /{ipa}/): {why}; converted from the IPA: {conv}")
    return table, notes
