"""Scoring given outputs (Translator.score) and reranking n-best lists with other models."""

import dataclasses

import pytest

from tandem.decode.rescore import rerank
from tandem.decode.scoring import Scorer
from tandem.errors import DataError
from tandem.structures.translator import Result, Translator, load
from test_cli import assert_user_error

TEXTS = ["abcde", "fab", "edcba", "cc"]


def test_score_equals_the_searchs_own_score_of_each_candidate(attention_checkpoint):
    for tr in (load(attention_checkpoint, device="cpu"),
               load(attention_checkpoint, attention_checkpoint, device="cpu")):
        nbest = tr.translate_full(TEXTS, beam=4, nbest=4)
        pairs = [(t, c.tokens) for t, cands in zip(TEXTS, nbest, strict=True) for c in cands]
        got = tr.score([s for s, _ in pairs], [c for _, c in pairs])
        want = [c.score for cands in nbest for c in cands]
        assert got == pytest.approx(want, abs=1e-4)
        # texts are tokenized like training data: the same scores
        assert tr.score(TEXTS[:1], [nbest[0][0].text]) == pytest.approx(want[:1], abs=1e-4)


def test_a_right_to_left_model_scores_the_tokens_in_its_own_order(attention_checkpoint):
    plain = load(attention_checkpoint, device="cpu")
    r2l = Translator(plain.model, dataclasses.replace(plain.fields, reverse_target=True),
                     plain.config)
    tokens = [list("edc"), list("bbf")]
    assert r2l.score(TEXTS[:2], tokens) == pytest.approx(
        plain.score(TEXTS[:2], [t[::-1] for t in tokens]), abs=1e-5)


def test_score_refuses_mismatched_or_empty_inputs(attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    with pytest.raises(DataError, match="2 sources but 1 targets"):
        tr.score(["ab", "cd"], ["ba"])
    with pytest.raises(DataError, match="source 2 is empty"):
        tr.score(["ab", ""], ["ba", "x"])


def _result(text: str, score: float) -> Result:
    return Result(text, list(text), score, score / (len(text) + 1))


def test_rerank_orders_by_the_mean_score_length_normalised():
    cands = [_result("ab", -1.0), _result("abc", -2.0)]
    # the rescorer prefers the second candidate strongly: mean -3.5 / 3 vs -2.0 / 4
    ranked = rerank(cands, [(-6.0,), (-2.0,)], Scorer(length_penalty=1.0))
    assert [r.text for r in ranked] == ["abc", "ab"]
    assert ranked[0].score == pytest.approx(-2.0) and ranked[1].score == pytest.approx(-3.5)
    assert ranked[0].norm_score == pytest.approx(-0.5)
    # with no preference from the rescorer, the search's order stands
    again = rerank([_result("ab", -1.0), _result("abc", -2.0)], [(-1.0,), (-2.0,)],
                   Scorer(length_penalty=1.0))
    assert [r.text for r in again] == ["ab", "abc"]


def test_rescoring_with_the_same_model_keeps_its_outputs(attention_checkpoint):
    tr = load(attention_checkpoint, device="cpu")
    plain = tr.translate_full(TEXTS + [""], beam=4, nbest=2)
    tr.rescore_with(load(attention_checkpoint, device="cpu"))
    got = tr.translate_full(TEXTS + [""], beam=4, nbest=2)
    assert [[r.text for r in nb] for nb in got] == [[r.text for r in nb] for nb in plain]
    assert [len(nb) for nb in got] == [2] * 5


def test_cli_rescore_translates_and_names_a_missing_model(tmp_path, cli, attention_checkpoint):
    ok = cli(tmp_path, "translate", "--model", str(attention_checkpoint), "--rescore",
             str(attention_checkpoint), "--beam", "3", stdin="abc\nfed\n")
    assert ok.returncode == 0, ok.stderr
    plain = cli(tmp_path, "translate", "--model", str(attention_checkpoint), "--beam", "3",
                stdin="abc\nfed\n")
    assert ok.stdout == plain.stdout and len(ok.stdout.splitlines()) == 2
    bad = cli(tmp_path, "translate", "--model", str(attention_checkpoint), "--rescore",
              str(tmp_path / "nope.pt"), stdin="abc\n")
    assert_user_error(bad, "nope.pt")
