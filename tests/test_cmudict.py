"""The CMUdict G2P corpus reader and multi-reference scoring."""

from pathlib import Path

import pytest

from tandem.config import from_dict
from tandem.data.cmudict import TEST_REF, TRAIN, hold_out_by_word, standard_split
from tandem.data.corpora import read_references
from tandem.data.dataset import load_splits
from tandem.errors import DataError
from tandem.evaluate import group_references

TRAIN_EXCERPT = """AAA\tT R IH P AH L EY
AABERG\tAA B ER G
AACHEN\tAA K AH N
ABBE\tAE B IY
ABBE\tAE B EY
ABBOTT\tAE B AH T
ACHE\tEY K
ACHES\tEY K S
ACTION\tAE K SH AH N
ADA\tEY D AH
"""
TEST_EXCERPT = "ABADI\tAH B AE D IY\nABACUS\tAE B AH K AH S\tAH B AE K AH S\n"


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    (tmp_path / TRAIN).write_text(TRAIN_EXCERPT)
    (tmp_path / TEST_REF).write_text(TEST_EXCERPT)
    return tmp_path


def test_standard_split_reads_train_dev_and_multireference_test(corpus_dir):
    train, dev, test = standard_split(corpus_dir, dev_words=3)
    assert len(train) + len(dev) == 10
    assert len({w for w, _ in dev}) == 3
    assert not {w for w, _ in train} & {w for w, _ in dev}
    srcs, refs = group_references(test)
    assert srcs == ["ABADI", "ABACUS"]
    assert refs[1] == ["AE B AH K AH S", "AH B AE K AH S"]


def test_hold_out_keeps_variants_together_and_is_deterministic():
    pairs = [tuple(line.split("\t")) for line in TRAIN_EXCERPT.splitlines()]
    for n in range(1, 9):
        train, dev = hold_out_by_word(pairs, n)
        dev_words = {w for w, _ in dev}
        assert len(dev_words) == n
        assert not dev_words & {w for w, _ in train}
        assert sorted(train + dev) == sorted(pairs)
        # the choice depends on the words, not on their order in the file
        _, dev_rev = hold_out_by_word(pairs[::-1], n)
        assert {w for w, _ in dev_rev} == dev_words
    _, dev = hold_out_by_word(pairs, 9)
    assert sum(w == "ABBE" for w, _ in dev) in (0, 2)


def test_config_names_the_corpus(corpus_dir):
    cfg = from_dict({"data": {"corpus": "cmudict", "corpus_dir": str(corpus_dir),
                              "corpus_dev_words": 2, "tgt_tokenizer": "word"}})
    splits = load_splits(cfg.data)
    assert len({w for w, _ in splits.dev}) == 2 and len(splits.test) == 3


def test_missing_corpus_says_where_to_point(tmp_path):
    with pytest.raises(DataError, match="corpus_dir"):
        standard_split(tmp_path)


def test_read_references_splits_tabs_into_references(tmp_path):
    p = tmp_path / "t.ref"
    p.write_text("A\tx y\tx z\nB\tq\n")
    assert read_references(str(p)) == [("A", "x y"), ("A", "x z"), ("B", "q")]
