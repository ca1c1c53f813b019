"""Pronunciation lexicons read without parsing them up front: a sorted `word<TAB>pron...` file
(the shipped CMU Pronouncing Dictionary, `tandem/lexicons/cmudict.tsv`, made by
scripts/pack_cmudict.py) is read as bytes once and searched by binary search over its lines,
so the first lookup costs a file read and a scan for line breaks, not a dictionary of 126,000
words built in Python.
"""

from __future__ import annotations

import bisect
import functools
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tandem.errors import DataError

CMUDICT = Path(__file__).resolve().parents[1] / "lexicons" / "cmudict.tsv"
"""The CMU Pronouncing Dictionary shipped in the package (BSD-style licence:
`lexicons/LICENSE.cmudict`): 126,052 words, 135,166 pronunciations with stress digits."""


class Lexicon:
    """word -> its pronunciations, in the file's order, from a file sorted by the words' UTF-8
    bytes (`word<TAB>pron<TAB>pron...` a line; words as the file writes them, lower case for
    the CMU dictionary)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as e:
            raise DataError(f"{self.path}: cannot read the lexicon ({e.strerror})") from None
        buf = np.frombuffer(self.data, np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else \
            np.zeros(0, np.int64)
        # 8 bytes a line in an array, not a Python int each: a few MB less for 126,000 words
        self.starts = array("q", starts.tobytes())
        # each word's first 8 bytes (zero-padded) as a big-endian number: sorted as the words
        # are, so one searchsorted narrows a lookup to the few words sharing those bytes;
        # built a byte position at a time to keep the temporaries small
        self.heads = np.zeros(len(starts), np.uint64)
        ended = np.zeros(len(starts), bool)
        for k in range(8 if len(starts) else 0):
            byte = buf[np.minimum(starts + k, len(buf) - 1)]
            ended |= byte == 9
            self.heads = (self.heads << np.uint64(8)) | np.where(ended, 0, byte).astype(np.uint64)

    def _word(self, start: int) -> bytes:
        return self.data[start: self.data.find(b"\t", start)]

    def get(self, word: str) -> list[str]:
        """The pronunciations of `word` as written (the CMU dictionary is lower case), or []."""
        key = word.encode("utf-8")
        head = np.uint64(int.from_bytes(key[:8].ljust(8, b"\0"), "big"))
        lo, hi = self.heads.searchsorted(head, "left"), self.heads.searchsorted(head, "right")
        i = bisect.bisect_left(self.starts, key, int(lo), int(hi), key=self._word)
        if i == hi or self._word(self.starts[i]) != key:
            return []
        start = self.starts[i]
        line = self.data[start: self.data.find(b"\n", start)].decode("utf-8")
        return line.split("\t")[1:]

    def __contains__(self, word: str) -> bool:
        return bool(self.get(word))

    def __len__(self) -> int:
        return len(self.starts)

    def items(self) -> Iterator[tuple[str, list[str]]]:
        """Every (word, pronunciations), in the file's order."""
        for line in self.data.decode("utf-8").splitlines():
            word, *prons = line.split("\t")
            yield word, prons


@functools.cache
def cmudict() -> Lexicon:
    """The shipped CMU Pronouncing Dictionary."""
    return Lexicon(CMUDICT)


ARPABET = frozenset(
    "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW "  # vowels: take a stress digit 0, 1 or 2
    "B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
"""The 39 phonemes of the CMU dictionary's ARPAbet."""
VOWELS = frozenset(p for p in ARPABET if p[0] in "AEIOU")


def check_phonemes(phonemes: str, where: str) -> str:
    """`phonemes` (ARPAbet separated by spaces) with its spacing normalised; a phoneme outside
    the set (a vowel may carry a stress digit 0, 1 or 2; a consonant none) is refused with a
    DataError naming `where` and the phoneme."""
    out = phonemes.split()
    if not out:
        raise DataError(f"{where}: no phonemes")
    for p in out:
        base = p[:-1] if p[-1:] in "012" else p
        if base not in ARPABET or (base != p and base not in VOWELS):
            raise DataError(f"{where}: unknown phoneme {p!r}; allowed: the 39 ARPAbet phonemes "
                            f"({' '.join(sorted(ARPABET))}), vowels with an optional stress "
                            "digit 0, 1 or 2")
    return " ".join(out)


def read_user_lexicon(path: str | Path) -> dict[str, list[str]]:
    """A user's pronunciations: `WORD<TAB>PHONEMES` (or the CMU format, `WORD  PHONEMES`) a
    line, blank lines and `#` comments skipped, several lines for one word giving its variants
    in order; words are matched without case. Every phoneme is checked (`check_phonemes`); a
    bad line is refused naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the lexicon ({e})") from None
    out: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, sep, pron = line.strip().partition("\t")
        if not sep:
            word, _, pron = line.strip().partition(" ")
        if not pron.strip():
            raise DataError(f"{path}:{n}: {line.strip()!r} has no phonemes; write WORD<TAB>"
                            "PHONEMES (ARPAbet separated by spaces)")
        out.setdefault(word.strip().lower(), []).append(
            check_phonemes(pron, f"{path}:{n} ({word.strip()})"))
    return out


def user_lexicon(lexicon: str | Path | dict[str, list[str]] | None) -> dict[str, list[str]]:
    """A user's pronunciations as lowercase word -> variants: a file read by
    `read_user_lexicon`, or a {word: [phonemes, ...]} whose every entry is checked the same
    way (`check_phonemes`, naming the word); None gives {}."""
    if lexicon is None:
        return {}
    if isinstance(lexicon, (str, Path)):
        return read_user_lexicon(lexicon)
    return {w.lower(): [check_phonemes(p, f"lexicon entry {w!r}") for p in prons]
            for w, prons in lexicon.items()}
