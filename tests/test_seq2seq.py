"""model/seq2seq.py and decoder.py: shapes, padding, teacher forcing against decode_step,
and learning, for every encoder/bridge/decoder combination."""

import itertools

import pytest
import torch

from conftest import padded_batch, tiny_model
from tandem.model.loss import token_nll
from tandem.model.seq2seq import NEVER_OUTPUT

CELLS = ["rnn", "gru", "lstm"]
BRIDGES = ["last", "linear", "pooled", "max", "zero"]
CONDITIONINGS = ["init", "every_step", "attention"]
VALID = [(c, b, k) for c, b, k in itertools.product(CELLS, BRIDGES, CONDITIONINGS)
         if not (b == "zero" and k != "attention")]


def _search_logprobs(logits):
    """What decode_step returns: log-softmax with pad and bos excluded."""
    logits = logits.clone()
    logits[..., NEVER_OUTPUT] = float("-inf")
    return torch.log_softmax(logits, -1)


def _combo(cell, bridge, cond, **kw):
    return tiny_model(cell=cell, bridge=bridge, conditioning=cond, **kw)


@pytest.mark.parametrize("cell,bridge,cond", VALID)
def test_padded_batch_equals_each_sentence_alone(cell, bridge, cond):
    model = _combo(cell, bridge, cond, input_feeding=cond == "attention", enc_layers=2,
                   dec_layers=2).eval()
    src, lens = padded_batch([6, 2, 4])
    tgt_lens = [5, 3, 4]
    tgt, _ = padded_batch(tgt_lens, vocab=25)
    tgt[:, 0] = 2
    logits = model(src, lens, tgt)
    assert logits.shape == (3, 5, 25)
    for i in range(3):
        alone = model(src[i : i + 1, : lens[i]], lens[i : i + 1], tgt[i : i + 1, : tgt_lens[i]])
        torch.testing.assert_close(logits[i, : tgt_lens[i]], alone[0], atol=1e-5, rtol=1e-4)


# input feeding needs attention: the other conditionings run without it only
@pytest.mark.parametrize("cond, feed", [(c, False) for c in CONDITIONINGS] + [("attention", True)])
def test_parallel_forward_equals_stepwise_decoding(cond, feed):
    """Teacher forcing in one call gives the same log-probs as decode_step, step by step."""
    model = _combo("lstm", "linear", cond, input_feeding=feed).eval()
    src, lens = padded_batch([5, 3])
    tgt, _ = padded_batch([4, 4], vocab=25)
    tgt[:, 0] = 2
    full = _search_logprobs(model(src, lens, tgt))
    state = model.init_state(model.encode(src, lens))
    for t in range(4):
        logp, state, _ = model.decode_step(tgt[:, t], state)
        torch.testing.assert_close(logp, full[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("cell,bridge,cond", VALID)
def test_every_combination_learns(cell, bridge, cond):
    model = _combo(cell, bridge, cond)
    src, lens = padded_batch([6, 5, 4, 6], vocab=12)
    tgt = torch.cat([torch.full((4, 1), 2), src.flip(1)[:, :5].clamp(min=4)], 1)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(25):
        loss, n = token_nll(model(src, lens, tgt_in), tgt_out)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
        losses.append(float(loss.detach()) / n)
    assert losses[-1] < 0.5 * losses[0], losses


def test_scheduled_sampling_feeds_own_predictions():
    model = _combo("gru", "linear", "attention").eval()
    src, lens = padded_batch([5, 4])
    tgt, _ = padded_batch([6, 6], vocab=25)
    tgt[:, 0] = 2
    gold = model(src, lens, tgt, teacher_forcing=1.0)
    own = model(src, lens, tgt, teacher_forcing=0.0)
    torch.testing.assert_close(own[:, 0], gold[:, 0])  # the first input is always bos
    assert not torch.allclose(own[:, 2:], gold[:, 2:])
    # with ratio 0, the input at step t+1 is the argmax at step t: check by hand
    state = model.init_state(model.encode(src, lens))
    prev = tgt[:, 0]
    for t in range(6):
        logp, state, _ = model.decode_step(prev, state)
        torch.testing.assert_close(logp, _search_logprobs(own[:, t]), atol=1e-5, rtol=1e-4)
        prev = logp.argmax(-1)


def test_tied_embeddings_share_weights():
    model = tiny_model(tie_embeddings=True, emb_size=8, hidden_size=16)
    assert model.decoder.generator.weight is model.decoder.embed.weight
    src, lens = padded_batch([3, 2])
    tgt = torch.full((2, 3), 5)
    assert model(src, lens, tgt).shape == (2, 3, 25)
