"""The scorer the searches share: length normalisation, coverage penalty and bans, each by
its formula."""

import pytest
import torch

from tandem.config import DecodeConfig
from tandem.data.vocab import UNK_ID
from tandem.decode.scoring import Scorer


def test_the_default_scorer_changes_nothing():
    s = Scorer()
    assert s.normalise(-3.5, 7) == -3.5
    assert not s.uses_coverage and not s.bans
    logp = torch.randn(2, 9)
    before = logp.clone()
    s.ban(logp, [[4, 4, 4], [5, 6, 5]])
    assert torch.equal(logp, before)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
@pytest.mark.parametrize("length", [1, 2, 5, 30])
def test_length_normalisation_by_its_formula(alpha, length):
    score = -4.2
    power = Scorer(length_penalty=alpha).normalise(score, length)
    gnmt = Scorer(length_penalty=alpha, length_norm="gnmt").normalise(score, length)
    assert power == pytest.approx(score / length ** alpha)
    assert gnmt == pytest.approx(score / ((5 + length) / 6) ** alpha)


def test_normalisation_favours_longer_outputs_as_alpha_grows():
    short, long = (-2.0, 2), (-3.0, 6)  # (score, length)
    raw = Scorer(length_penalty=0.0)
    assert raw.normalise(*short) > raw.normalise(*long)
    norm = Scorer(length_penalty=1.0)
    assert norm.normalise(*short) < norm.normalise(*long)


def test_coverage_penalty_by_its_formula():
    att = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])  # 2 steps over 3 source tokens
    got = Scorer(coverage_penalty=0.4).coverage(att)
    want = 0.4 * sum(torch.tensor(min(float(c), 1.0)).log().item() for c in att.sum(0))
    assert got == pytest.approx(want)
    assert Scorer(coverage_penalty=0.4).uses_coverage
    assert Scorer(coverage_penalty=3.0).coverage(torch.eye(3)) == 0.0  # fully covered


def test_forbidding_unk_bans_it_in_every_row():
    logp = torch.zeros(3, 8)
    Scorer(allow_unk=False).ban(logp, [[], [], []])
    assert torch.isinf(logp[:, UNK_ID]).all()
    assert torch.isfinite(logp[:, UNK_ID + 1:]).all()


def test_no_repeat_ngram_bans_per_row_only_what_would_repeat():
    history = [[4, 5, 6, 4], [7, 7, 8, 9], [4]]
    logp = torch.zeros(3, 12)
    Scorer(no_repeat_ngram_size=2).ban(logp, history)
    banned = [set(torch.isinf(row).nonzero().flatten().tolist()) for row in logp]
    assert banned == [{5}, set(), set()]  # row 0: "4 5" seen, last token 4; row 1: 9 is new
    logp = torch.zeros(3, 12)
    Scorer(no_repeat_ngram_size=1).ban(logp, history)
    assert [set(torch.isinf(row).nonzero().flatten().tolist()) for row in logp] == [
        {4, 5, 6}, {7, 8, 9}, {4}]
    logp = torch.zeros(1, 12)
    Scorer(no_repeat_ngram_size=3).ban(logp, [[4]])  # shorter than n - 1: nothing to repeat
    assert torch.isfinite(logp).all()


def test_from_options_reads_the_options():
    opts = DecodeConfig(length_penalty=0.3, length_norm="gnmt", coverage_penalty=0.1,
                        no_repeat_ngram_size=2, allow_unk=False)
    assert Scorer.from_options(opts) == Scorer(0.3, "gnmt", 0.1, 2, False)
    assert Scorer.from_options(opts).bans
