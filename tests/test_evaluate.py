"""Scoring outputs against references (tandem/evaluate.py)."""

from __future__ import annotations

import pytest

from tandem import metrics
from tandem.config import DataConfig
from tandem.data.dataset import build_fields
from tandem.evaluate import evaluate_outputs, group_references


def test_group_references_merges_sources_in_order_of_first_appearance():
    pairs = [("read", "R IY D"), ("lead", "L IY D"), ("read", "R EH D"), ("a", "AH"),
             ("lead", "L EH D")]
    srcs, refs = group_references(pairs)
    assert srcs == ["read", "lead", "a"]
    assert refs == [["R IY D", "R EH D"], ["L IY D", "L EH D"], ["AH"]]


def test_any_reference_counts_as_a_match():
    fields = build_fields(DataConfig(task="copy"), [("abc", "abc"), ("de", "ed")])
    srcs, refs = group_references([("x", "abc"), ("x", "abd"), ("y", "ed")])
    res = evaluate_outputs(fields, ["abd", "de"], refs, ["exact_match"])
    assert srcs == ["x", "y"] and res == {"exact_match": pytest.approx(50.0)}


def test_character_targets_score_bleu_on_characters():
    """One-word outputs: word BLEU would be 0 for a near miss; character BLEU is not."""
    fields = build_fields(DataConfig(task="copy"), [("abcdefgh", "abcdefgh")])
    hyps, refs = ["abcdefgx"], [["abcdefgh"]]
    res = evaluate_outputs(fields, hyps, refs, ["bleu"])
    chars = metrics.score([list("abcdefgx")], [[list("abcdefgh")]], ["bleu"])
    words = metrics.score([["abcdefgx"]], [[["abcdefgh"]]], ["bleu"],
                          detok_hyps=hyps, detok_refs=refs)
    assert res == chars and res["bleu"] > 50.0 and words["bleu"] < 1.0


def test_word_targets_score_bleu_on_the_detokenised_text():
    pairs = [("a b c d", "the cat sat on the mat")]
    fields = build_fields(DataConfig(task="copy", src_tokenizer="word", tgt_tokenizer="word"),
                          pairs)
    hyps, refs = ["the cat sat on a mat"], [["the cat sat on the mat"]]
    res = evaluate_outputs(fields, hyps, refs, ["bleu", "token_error_rate"])
    toks = [h.split() for h in hyps], [[r.split() for r in rs] for rs in refs]
    assert res == metrics.score(*toks, ["bleu", "token_error_rate"], detok_hyps=hyps,
                                detok_refs=refs)
    assert res["token_error_rate"] == pytest.approx(100 / 6)  # one word of six replaced
