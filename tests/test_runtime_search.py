"""The runtime's numpy searches equal the PyTorch searches: driven by the same model (a torch
model seen through numpy arrays), over many random decoding configurations, they return the
same hypotheses, in the same order, with the same scores."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tandem.config import DecodeConfig, ModelConfig
from tandem.decode import search as torch_search
from tandem.model.seq2seq import Seq2Seq
from tandem.runtime import search as numpy_search


class NumpyState:
    """A torch DecoderState behind the numpy searches' state interface."""

    def __init__(self, state):
        self.state = state

    def expand(self, k):
        return NumpyState(self.state.expand(k))

    def reorder(self, idx):
        return NumpyState(self.state.reorder(torch.from_numpy(np.asarray(idx))))

    def keep(self, sentences):
        return NumpyState(self.state.keep(torch.from_numpy(np.asarray(sentences))))


class NumpyModel:
    """A torch Seq2Seq seen through numpy arrays, for the numpy searches."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def encode(self, src, src_len):
        m = self.model
        return NumpyState(m.init_state(m.encode(torch.from_numpy(src), torch.from_numpy(src_len))))

    @torch.no_grad()
    def decode_step(self, prev, state):
        logp, new, att = self.model.decode_step(torch.from_numpy(prev), state.state)
        return logp.numpy(), NumpyState(new), None if att is None else att.numpy()


def random_options(rng: random.Random) -> DecodeConfig:
    return DecodeConfig(
        beam=rng.choice([1, 1, 2, 3, 5, 8]), nbest=1, max_len_a=rng.choice([0.0, 1.0, 2.0]),
        max_len_b=rng.randint(1, 12), length_penalty=rng.choice([0.0, 0.6, 1.0, 2.0]),
        length_norm=rng.choice(["power", "gnmt"]),
        coverage_penalty=rng.choice([0.0, 0.0, 0.4]),
        no_repeat_ngram_size=rng.choice([0, 0, 1, 2, 3]), allow_unk=rng.random() < 0.7)


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3))])
def test_the_numpy_searches_equal_the_torch_searches(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cfg = ModelConfig(structure="seq2seq", cell=rng.choice(["gru", "lstm", "rnn"]),
                      emb_size=8, hidden_size=12, dropout=0.0,
                      attention=rng.choice(["additive", "general", "dot"]),
                      input_feeding=rng.random() < 0.5)
    # a small target vocabulary and sharp distributions, so searches branch and end early
    model = Seq2Seq(cfg, 20, 9).eval()
    with torch.no_grad():
        model.decoder.generator.weight.mul_(6.0)
    wrapped = NumpyModel(model)
    lengths = torch.tensor([rng.randint(1, 7) for _ in range(5)])
    src = torch.randint(4, 20, (5, int(lengths.max())))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    for _ in range(25):
        opts = random_options(rng)
        opts = DecodeConfig(**{**opts.__dict__, "nbest": rng.randint(1, opts.beam)})
        attention = rng.random() < 0.3
        want = torch_search.run(model, src, lengths, opts, attention=attention)
        got = numpy_search.run(wrapped, src.numpy(), lengths.numpy(), opts,
                               attention=attention)
        for w, g in zip(want, got, strict=True):
            assert [h.tokens for h in g] == [h.tokens for h in w], opts
            assert [h.ended for h in g] == [h.ended for h in w]
            assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=1e-5)
            assert [h.norm_score for h in g] == pytest.approx([h.norm_score for h in w],
                                                              abs=1e-5)
            if attention and w[0].attention is not None:
                assert np.allclose(g[0].attention, w[0].attention.numpy(), atol=1e-6)


def test_numpy_sampling_repeats_with_a_seed_and_respects_top_k():
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(structure="seq2seq", emb_size=8, hidden_size=12, dropout=0.0),
                    20, 9).eval()
    wrapped = NumpyModel(model)
    src, lengths = np.full((3, 4), 5, np.int64), np.array([4, 4, 4])
    opts = DecodeConfig(sample=True, top_k=1, temperature=3.0, max_len_b=6)
    greedy = numpy_search.run(wrapped, src, lengths, DecodeConfig(beam=1, max_len_b=6))
    drawn = numpy_search.run(wrapped, src, lengths, opts, rng=np.random.default_rng(1))
    assert [h[0].tokens for h in drawn] == [h[0].tokens for h in greedy]  # top_k 1 = argmax
    opts = DecodeConfig(sample=True, temperature=5.0, max_len_b=6)
    a = numpy_search.run(wrapped, src, lengths, opts, rng=np.random.default_rng(7))
    b = numpy_search.run(wrapped, src, lengths, opts, rng=np.random.default_rng(7))
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]
