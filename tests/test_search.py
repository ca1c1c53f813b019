"""Greedy, beam and sampling: correctness against the model's own probabilities."""

import pytest
import torch

from conftest import padded_batch, tiny_model
from tandem.config import DecodeConfig
from tandem.data.vocab import BOS_ID, EOS_ID, UNK_ID
from tandem.decode import search
from tandem.decode.scoring import Scorer


def opts(**kw) -> DecodeConfig:
    """Decoding options: DecodeConfig's defaults with `kw`."""
    return DecodeConfig(**kw)

VARIANTS = [
    dict(cell="lstm", conditioning="attention", attention="general"),
    dict(cell="gru", conditioning="attention", attention="additive", input_feeding=True),
    dict(cell="rnn", conditioning="every_step", bridge="pooled"),
    dict(cell="gru", conditioning="init", bridge="last"),
]


def _trained_ish(variant, eos_bias: float = 0.5):
    """A random model with peaked output distributions and a raised eos logit, so outputs
    end at varied lengths."""
    model = tiny_model(**variant).eval()
    with torch.no_grad():
        model.decoder.generator.weight *= 6.0
        model.decoder.generator.bias[EOS_ID] += eos_bias
    return model


def forced_logprob(model, src, src_len, tokens: list[int], ended: bool = True) -> float:
    """The model's log-probability of `tokens` (+ eos) for one source, fed the gold tokens."""
    state = model.init_state(model.encode(src, src_len))
    seq = [BOS_ID] + tokens + ([EOS_ID] if ended else [])
    total = 0.0
    for prev, nxt in zip(seq[:-1], seq[1:], strict=True):
        logp, state, _ = model.decode_step(torch.tensor([prev]), state)
        total += float(logp[0, nxt])
    return total


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_one_equals_greedy(variant, alpha):
    model = _trained_ish(variant)
    src, lens = padded_batch([6, 3, 5, 1, 7])
    g = search.greedy(model, src, lens, opts(length_penalty=alpha))
    b = search.beam_search(model, src, lens, opts(beam=1, length_penalty=alpha))
    assert [h[0].tokens for h in g] == [h[0].tokens for h in b]
    for x, y in zip(g, b, strict=True):
        assert x[0].score == pytest.approx(y[0].score, abs=1e-5)
    assert len({len(h[0].tokens) for h in g}) > 1  # the case is not trivial


@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_scores_are_the_models_log_probabilities(variant):
    model = _trained_ish(variant, eos_bias=1.5)
    src, lens = padded_batch([5, 2, 4])
    out = search.beam_search(model, src, lens, opts(beam=4, nbest=3, length_penalty=0.6,
                                                    max_len_a=3.0, max_len_b=10))
    ended = 0
    with torch.no_grad():
        for i, nbest in enumerate(out):
            assert len(nbest) == 3
            assert [h.norm_score for h in nbest] == sorted((h.norm_score for h in nbest),
                                                           reverse=True)
            for h in nbest:
                n = lens[i : i + 1]
                ref = forced_logprob(model, src[i : i + 1, : int(n)], n, h.tokens, h.ended)
                assert h.score == pytest.approx(ref, abs=1e-4)
                length = len(h.tokens) + h.ended
                assert h.norm_score == pytest.approx(h.score / length**0.6, abs=1e-5)
                ended += h.ended
    assert ended > 0


@pytest.mark.parametrize("variant", VARIANTS[:2])
def test_beam_finds_at_least_the_greedy_score(variant):
    model = _trained_ish(variant, eos_bias=1.0)
    src, lens = padded_batch([6, 4, 5, 3])
    g = search.greedy(model, src, lens, opts(max_len_a=3.0, max_len_b=10))
    b = search.beam_search(model, src, lens, opts(beam=5, length_penalty=0.0, max_len_a=3.0,
                                                  max_len_b=10))
    for x, y in zip(g, b, strict=True):
        assert y[0].score >= x[0].score - 1e-5


def test_beam_result_does_not_depend_on_batch():
    model = _trained_ish(VARIANTS[0])
    src, lens = padded_batch([6, 3, 5, 2, 7, 4])
    batched = search.beam_search(model, src, lens, opts(beam=4, nbest=2))
    for i in range(len(lens)):
        n = lens[i : i + 1]
        alone = search.beam_search(model, src[i : i + 1, : int(n)], n, opts(beam=4, nbest=2))
        assert [h.tokens for h in alone[0]] == [h.tokens for h in batched[i]]
        for x, y in zip(alone[0], batched[i], strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)


def test_max_length_is_respected():
    model = tiny_model().eval()
    with torch.no_grad():
        model.decoder.generator.bias[EOS_ID] -= 100.0  # never ends by itself
    src, lens = padded_batch([4, 2])
    for hyps in (search.greedy(model, src, lens, opts(max_len_a=1.0, max_len_b=2)),
                 search.beam_search(model, src, lens, opts(beam=3, max_len_a=1.0, max_len_b=2))):
        assert [len(h[0].tokens) for h in hyps] == [6, 4]


def test_attention_is_returned_per_output_token():
    model = _trained_ish(VARIANTS[0])
    src, lens = padded_batch([5, 3])
    for hyps in (search.greedy(model, src, lens, opts(), attention=True),
                 search.beam_search(model, src, lens, opts(beam=3), attention=True)):
        for i, h in enumerate(hyps):
            a = h[0].attention
            assert a.shape == (len(h[0].tokens) + h[0].ended, int(lens[i]))
            torch.testing.assert_close(a.sum(-1), torch.ones(a.size(0)))


def test_sampling_is_seeded_and_top_k_restricts():
    model = _trained_ish(VARIANTS[0], eos_bias=0.0)
    src, lens = padded_batch([5, 4, 6])

    def run(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return [h[0].tokens for h in search.sample(model, src, lens, opts(**kw), generator=g)]

    assert run(1) == run(1)
    assert run(1) != run(2) or run(1) != run(3)
    # top_k=1 sampling is greedy
    assert run(5, top_k=1) == [h[0].tokens for h in search.greedy(model, src, lens, opts())]


def _ngrams(toks: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_size_forbids_repeats_in_greedy_and_beam(n):
    model = _trained_ish(VARIANTS[0], eos_bias=-4.0)  # long outputs: repeats are likely
    src, lens = padded_batch([6, 3, 5, 7])
    plain = search.greedy(model, src, lens, opts(max_len_a=3.0))
    assert any(len(set(_ngrams(h[0].tokens, n))) < len(_ngrams(h[0].tokens, n)) for h in plain)
    for out in (search.greedy(model, src, lens, opts(max_len_a=3.0, no_repeat_ngram_size=n)),
                search.beam_search(model, src, lens, opts(beam=3, nbest=3, max_len_a=3.0,
                                                          no_repeat_ngram_size=n))):
        for nb in out:
            for h in nb:
                grams = _ngrams(h.tokens, n)
                assert len(set(grams)) == len(grams), (n, h.tokens)


def test_forbid_unk_never_outputs_unk():
    from tandem.data.vocab import UNK_ID

    model = tiny_model(**VARIANTS[0]).eval()
    with torch.no_grad():
        model.decoder.generator.bias[UNK_ID] += 20.0  # <unk> would win everywhere
    src, lens = padded_batch([4, 6])
    assert UNK_ID in search.greedy(model, src, lens, opts())[0][0].tokens
    for out in (search.greedy(model, src, lens, opts(allow_unk=False)),
                search.beam_search(model, src, lens, opts(beam=3, nbest=2, allow_unk=False))):
        assert all(UNK_ID not in h.tokens for nb in out for h in nb)


def test_gnmt_length_norm_and_coverage_penalty_rank_by_their_formulas():
    model = _trained_ish(VARIANTS[0], eos_bias=1.5)
    src, lens = padded_batch([5, 3])
    alpha, beta = 0.8, 0.4
    out = search.beam_search(model, src, lens, opts(beam=4, nbest=4, length_penalty=alpha,
                                                    length_norm="gnmt", coverage_penalty=beta),
                             attention=True)
    for i, nb in enumerate(out):
        for h in nb:
            length = len(h.tokens) + h.ended
            want = h.score / ((5 + length) / 6) ** alpha
            cov = h.attention[:length, : int(lens[i])].sum(0).clamp(1e-6, 1.0).log().sum()
            assert h.norm_score == pytest.approx(want + beta * float(cov), abs=1e-4)
        assert [h.norm_score for h in nb] == sorted((h.norm_score for h in nb), reverse=True)
    assert Scorer(coverage_penalty=1.0).coverage(torch.tensor([[0.5, 1.0], [0.7, 0.5]])) == 0.0
    assert Scorer(coverage_penalty=2.0).coverage(torch.tensor([[0.5, 0.25]])) == pytest.approx(
        2 * (torch.tensor(0.5).log() + torch.tensor(0.25).log()).item())


@pytest.mark.parametrize("variant", VARIANTS)
def test_wide_beam_is_exact_search(variant):
    """A beam as wide as every possible prefix never prunes: its n-best must be the exact
    k best outputs found by enumerating all of them (here 3 real tokens, at most 3 steps).
    Covers the first step, which runs one row per sentence before the beams split."""
    import itertools

    model = _trained_ish(variant, eos_bias=1.0)
    real = list(range(4, 7))
    with torch.no_grad():  # only 3 real output tokens: the others (unk too) can never win
        model.decoder.generator.bias[7:] -= 1e4
        model.decoder.generator.bias[UNK_ID] -= 1e4
    src, lens = padded_batch([4, 2])
    out = search.beam_search(model, src, lens, opts(beam=40, nbest=5, length_penalty=0.0,
                                                    max_len_a=0.0, max_len_b=3))
    for i, nbest in enumerate(out):
        s, n = src[i:i + 1, : lens[i]], lens[i:i + 1]
        with torch.no_grad():
            every = [(forced_logprob(model, s, n, list(toks)), list(toks))
                     for length in range(3) for toks in itertools.product(real, repeat=length)]
            every += [(forced_logprob(model, s, n, list(toks), ended=False), list(toks))
                      for toks in itertools.product(real, repeat=3)]  # cut at the limit
        every.sort(key=lambda x: x[0], reverse=True)
        assert [h.tokens for h in nbest] == [toks for _, toks in every[:5]]
        for h, (score, _) in zip(nbest, every, strict=False):
            assert h.score == pytest.approx(score, abs=1e-4)


def _ranks(model, src, src_len, tokens: list[int]) -> list[int]:
    """For one source: the rank (0 = most likely) of each of `tokens` in the model's
    distribution at its step, fed the tokens before it."""
    state = model.init_state(model.encode(src, src_len))
    ranks = []
    for prev, nxt in zip([BOS_ID] + tokens[:-1], tokens, strict=True):
        logp, state, _ = model.decode_step(torch.tensor([prev]), state)
        ranks.append(int((logp[0] > logp[0, nxt]).sum()))
    return ranks


def test_top_k_two_samples_only_the_two_best_tokens_and_sometimes_the_second():
    model = _trained_ish(VARIANTS[0], eos_bias=-1.0)
    with torch.no_grad():
        model.decoder.generator.weight /= 6.0  # flat distributions: runner-ups get drawn
    src, lens = padded_batch([6, 3, 5, 7, 4, 6])
    g = torch.Generator().manual_seed(3)
    out = search.sample(model, src, lens, opts(top_k=2), generator=g)
    seen = []
    with torch.no_grad():
        for i, nb in enumerate(out):
            n = lens[i:i + 1]
            seen += _ranks(model, src[i:i + 1, : int(n)], n, nb[0].tokens)
    assert max(seen) <= 1  # never beyond the two best
    assert 1 in seen and 0 in seen  # the second best is drawn too: top_k=2 is not greedy


def test_temperature_sharpens_or_flattens_the_samples():
    """Same seed, same model: a low temperature draws the likely tokens, a high one unlikely
    tokens, so the mean log-probability per token falls as the temperature rises."""
    model = _trained_ish(VARIANTS[0], eos_bias=-1.0)
    src, lens = padded_batch([5, 4, 6, 3, 7, 5, 6, 4] * 4)

    def mean_logp(temperature: float) -> float:
        g = torch.Generator().manual_seed(11)
        hyps = search.sample(model, src, lens, opts(temperature=temperature), generator=g)
        return sum(h[0].score for h in hyps) / sum(len(h[0].tokens) + h[0].ended for h in hyps)

    cold, low, one, high = mean_logp(0.01), mean_logp(0.5), mean_logp(1.0), mean_logp(2.5)
    assert cold > low > one > high


def test_run_picks_the_search_the_options_ask_for():
    model = _trained_ish(VARIANTS[0])
    src, lens = padded_batch([5, 3])
    for o, want in ((opts(beam=1), search.greedy(model, src, lens, opts(beam=1))),
                    (opts(beam=3, nbest=2), search.beam_search(model, src, lens,
                                                               opts(beam=3, nbest=2)))):
        got = search.run(model, src, lens, o)
        assert [[h.tokens for h in nb] for nb in got] == [[h.tokens for h in nb] for nb in want]
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    got = search.run(model, src, lens, opts(sample=True, beam=3), generator=g1)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in search.sample(
        model, src, lens, opts(), generator=g2)]
