"""Tests for tandem.metrics; expected values are worked out by hand in the comments."""

import math

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.config import STRUCTURE_METRICS, default_valid_metric
from tandem.errors import ConfigError
from tandem.metrics import (
    METRICS,
    classification_scores,
    edit_distance,
    higher_is_better,
    lm_scores,
    sacrebleu_signature,
    score,
    tagging_scores,
)


def naive_distance(a, b) -> int:
    """Textbook full-matrix Levenshtein DP, the oracle for the fast implementation."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return d[len(a)][len(b)]


# --- edit distance -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([], [], 0),
        ([], ["a", "b"], 2),  # two insertions
        (["a", "b", "c"], [], 3),  # three deletions
        (["a", "b", "c"], ["a", "b", "c"], 0),
        (["a", "c"], ["a", "b", "c"], 1),  # insert b
        (["a", "b", "c"], ["a", "c"], 1),  # delete b
        (["a", "b", "c"], ["a", "x", "c"], 1),  # substitute b -> x
        (list("kitten"), list("sitting"), 3),  # k->s, e->i, insert g
        ("kitten", "sitting", 3),  # plain strings work over characters
        (list("flaw"), list("lawn"), 2),  # delete f, insert n
        (["the", "cat", "sat"], ["a", "cat", "sat", "down"], 2),  # the->a, insert down
    ],
)
def test_edit_distance_cases(a, b, expected):
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected


def test_edit_distance_long_sequences():
    # More than 64 tokens so the bit vectors span several machine words.
    a = [str(i % 7) for i in range(150)]
    b = [str(i % 5) for i in range(130)]
    assert edit_distance(a, b) == naive_distance(a, b)


tokens = st.lists(st.sampled_from("abcd"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(tokens, tokens, tokens)
def test_edit_distance_properties(a, b, c):
    d = edit_distance(a, b)
    assert d == naive_distance(a, b)
    assert d == edit_distance(b, a)
    assert edit_distance(a, a) == 0
    assert edit_distance(a, c) <= d + edit_distance(b, c)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


# --- sentence-level metrics ----------------------------------------------------------------


def test_g2p_multi_reference_wer_per():
    hyps = [["K", "AE", "T"], ["R", "IY", "D"], ["D", "AA", "G"]]
    refs = [
        [["K", "AE", "T"]],  # cat: exact: 0 edits, ref length 3
        [["R", "EH", "D"], ["R", "IY", "D"]],  # read: matches the 2nd variant: 0 edits, length 3
        [["D", "AO", "G"]],  # dog: AA -> AO: 1 edit, length 3
    ]
    result = score(hyps, refs, ["exact_match", "seq_error_rate", "token_error_rate"])
    assert result["exact_match"] == pytest.approx(200 / 3)  # 2 of 3 words correct
    assert result["seq_error_rate"] == pytest.approx(100 / 3)  # G2P "WER"
    assert result["token_error_rate"] == pytest.approx(100 / 9)  # PER = 1 edit / 9 phonemes


def test_per_uses_length_of_closest_reference():
    # ["a","b","c","d"] is 2 edits away, ["a","x"] only 1: PER = 1 / len(["a","x"]) = 50 %.
    result = score([["a", "b"]], [[["a", "b", "c", "d"], ["a", "x"]]], ["token_error_rate"])
    assert result["token_error_rate"] == pytest.approx(50.0)


def test_closest_reference_tie_goes_to_shorter():
    # Both refs are 1 edit away; the shorter ["a"] is chosen.
    # PER = 1/1 = 100 %; token_acc = 1 matching position / max(2, 1) = 50 %.
    result = score([["a", "b"]], [[["a", "b", "c"], ["a"]]], ["token_error_rate", "token_acc"])
    assert result == {"token_error_rate": pytest.approx(100.0), "token_acc": pytest.approx(50.0)}


def test_token_acc():
    # Sentence 1: a=a, b!=x, c=c -> 2 matches over max(3, 4) = 4 positions.
    # Sentence 2: 1 match over 1 position. Corpus: 3 / 5 = 60 %.
    hyps = [["a", "b", "c"], ["p"]]
    refs = [[["a", "x", "c", "d"]], [["p"]]]
    assert score(hyps, refs, ["token_acc"])["token_acc"] == pytest.approx(60.0)


def test_empty_sequences():
    both_empty = score([[]], [[[]]], ["exact_match", "token_acc", "token_error_rate", "cer"])
    assert both_empty == {
        "exact_match": 100.0,
        "token_acc": 100.0,
        "token_error_rate": 0.0,
        "cer": 0.0,
    }
    empty_ref = score([["a"]], [[[]]], ["token_acc", "token_error_rate", "cer"])
    assert empty_ref == {"token_acc": 0.0, "token_error_rate": 100.0, "cer": 100.0}


def test_cer():
    # "ab cd" vs "ab ce": 1 substitution over 5 characters = 20 %.
    assert score([["ab", "cd"]], [[["ab", "ce"]]], ["cer"])["cer"] == pytest.approx(20.0)
    # Detokenised strings take precedence: "abcd" vs "abce" = 1 / 4 = 25 %.
    result = score([["ab", "cd"]], [[["ab", "ce"]]], ["cer"], ["abcd"], [["abce"]])
    assert result["cer"] == pytest.approx(25.0)
    # Closest of several references: "abcd" matches the second exactly.
    result = score([["x"]], [[["y"]]], ["cer"], ["abcd"], [["abcx", "abcd"]])
    assert result["cer"] == 0.0


# --- BLEU and chrF -------------------------------------------------------------------------

SENTS = [
    "the quick brown fox jumps over the lazy dog",
    "a journey of a thousand miles begins with one step",
]


def test_bleu_and_chrf_identical_corpus():
    toks = [s.split() for s in SENTS]
    result = score(toks, [[t] for t in toks], ["bleu", "chrf"])
    assert result == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}


def test_bleu_matches_sacrebleu_single_reference():
    hyps = ["the quick brown fox jumped over a lazy dog", "a journey of miles begins with a step"]
    result = score([h.split() for h in hyps], [[s.split()] for s in SENTS], ["bleu", "chrf"])
    expected_bleu = sacrebleu.corpus_bleu(hyps, [SENTS]).score
    expected_chrf = sacrebleu.corpus_chrf(hyps, [SENTS]).score
    assert 0.0 < result["bleu"] < 100.0
    assert result["bleu"] == pytest.approx(expected_bleu)
    assert result["chrf"] == pytest.approx(expected_chrf)


def test_bleu_variable_number_of_references():
    # Sentence 1 has two references and the hypothesis equals the second; sentence 2 has one.
    hyps = [SENTS[0].split(), SENTS[1].split()]
    refs = [[["a", "fast", "brown", "fox", "leaps"], SENTS[0].split()], [SENTS[1].split()]]
    assert score(hyps, refs, ["bleu"])["bleu"] == pytest.approx(100.0)
    # Reference order does not matter.
    swapped = [refs[0][::-1], refs[1]]
    assert score(hyps, swapped, ["bleu"])["bleu"] == pytest.approx(100.0)


def test_bleu_lowercased():
    hyps = [s.capitalize() for s in SENTS]  # "The quick ..." vs "the quick ..."
    result = score([h.split() for h in hyps], [[s.split()] for s in SENTS], ["bleu", "bleu_lc"])
    assert result["bleu"] < 100.0
    assert result["bleu_lc"] == pytest.approx(100.0)


def test_sacrebleu_signature():
    sig = sacrebleu_signature()
    assert set(sig) == {"bleu", "bleu_lc", "chrf"}
    assert "tok:13a" in sig["bleu"] and "case:mixed" in sig["bleu"]
    assert "case:lc" in sig["bleu_lc"]
    assert "nc:6" in sig["chrf"]


# --- API behaviour -------------------------------------------------------------------------


def test_default_metrics_and_order():
    result = score([["a"]], [[["a"]]])
    assert tuple(result) == METRICS
    assert result["exact_match"] == 100.0 and result["seq_error_rate"] == 0.0


def test_unknown_metric_raises_config_error():
    with pytest.raises(ConfigError, match=r"allowed: .*exact_match"):
        score([["a"]], [[["a"]]], ["exact_match", "meteor"])


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="no sentences"):
        score([], [])
    with pytest.raises(ValueError):
        score([["a"]], [[["a"]], [["b"]]])
    with pytest.raises(ValueError):
        score([["a"]], [[]])  # a sentence without references


def test_higher_is_better():
    for metric in ("exact_match", "token_acc", "bleu", "bleu_lc", "chrf"):
        assert higher_is_better(metric)
    for metric in ("seq_error_rate", "token_error_rate", "cer", "loss", "ppl"):
        assert not higher_is_better(metric)
    with pytest.raises(ConfigError):
        higher_is_better("meteor")


# --- classification, tagging, language models ----------------------------------------------


def test_classification_scores_by_hand():
    # gold 0 0 0 1 1 2, predicted 0 0 1 1 2 2: 4 of 6 right
    # label 0: tp 2, gold 3, predicted 2 -> F1 = 4/5 = 80
    # label 1: tp 1, gold 2, predicted 2 -> F1 = 2/4 = 50
    # label 2: tp 1, gold 1, predicted 2 -> F1 = 2/3 = 66.67
    # label 3 occurs nowhere: left out of the mean
    res = classification_scores([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 4)
    assert res["accuracy"] == pytest.approx(400 / 6)
    assert res["f1"] == pytest.approx([80.0, 50.0, 200 / 3, None])
    assert res["macro_f1"] == pytest.approx((80 + 50 + 200 / 3) / 3)
    assert res["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_macro_f1_weighs_a_rare_label_as_much_as_a_common_one():
    gold = [0] * 9 + [1]
    always_0 = classification_scores(gold, [0] * 10, 2)
    assert always_0["accuracy"] == 90.0
    # label 0: F1 = 2*9/(9+10) = 94.74; label 1 never predicted right: 0
    assert always_0["macro_f1"] == pytest.approx((1800 / 19) / 2)
    with pytest.raises(ValueError, match="no items"):
        classification_scores([], [], 2)


def test_tagging_scores_count_unseen_words_apart():
    gold = [[1, 2, 3], [1, 1]]
    pred = [[1, 2, 0], [0, 1]]
    unseen = [[False, False, True], [True, False]]
    res = tagging_scores(gold, pred, unseen)
    assert res["token_acc"] == pytest.approx(60.0)  # 3 of 5
    assert res["unseen_acc"] == 0.0 and res["unseen_tokens"] == 2.0  # both unseen wrong
    assert tagging_scores(gold, pred) == {"token_acc": pytest.approx(60.0)}
    assert tagging_scores([[1]], [[1]], [[False]])["unseen_acc"] == 100.0  # none unseen
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        tagging_scores(gold, [[1, 2, 3], [1]])


def test_lm_scores():
    # 4 tokens with a summed NLL of 4 ln 2 nats: 1 bit per token
    res = lm_scores(4 * math.log(2), 4, chars=8)
    assert res["loss"] == pytest.approx(math.log(2))
    assert res["ppl"] == pytest.approx(2.0)
    assert res["bpc"] == pytest.approx(0.5)  # 4 bits over 8 characters
    assert "bpc" not in lm_scores(1.0, 1)


def test_each_structure_has_its_metrics_and_a_default():
    assert default_valid_metric("seq2seq") == "exact_match"
    assert default_valid_metric("classify") == "accuracy"
    assert default_valid_metric("tag") == "token_acc"
    assert default_valid_metric("lm") == "ppl"
    assert default_valid_metric("generate") == "loss"
    for names in STRUCTURE_METRICS.values():
        for m in names:
            higher_is_better(m)  # every one has a direction
    assert higher_is_better("accuracy") and higher_is_better("macro_f1")
    assert higher_is_better("unseen_acc") and not higher_is_better("bpc")
