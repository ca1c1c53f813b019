"""Shapes, padding and learning for every encoder/bridge/decoder combination."""

import itertools

import pytest
import torch

from conftest import padded_batch, tiny_model
from tandem.config import ModelConfig
from tandem.model import attention
from tandem.model import encoder as encoder_module
from tandem.model.attention import EXP_LIMIT, Attention
from tandem.model.encoder import Encoder
from tandem.model.seq2seq import NEVER_OUTPUT
from tandem.train.loss import token_nll

CELLS = ["rnn", "gru", "lstm"]
BRIDGES = ["last", "linear", "pooled", "zero"]
CONDITIONINGS = ["init", "every_step", "attention"]
VALID = [(c, b, k) for c, b, k in itertools.product(CELLS, BRIDGES, CONDITIONINGS)
         if not (b == "zero" and k != "attention")]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_encoder_padding_does_not_change_states(cell, bidirectional):
    enc = Encoder(cell, 20, 8, 16, 2, bidirectional, 0.0).eval()
    src, lens = padded_batch([7, 3, 5])
    out = enc(src, lens)
    assert out.states.shape == (3, 7, 16) and out.final_h.shape == (2, 3, 16)
    assert out.mask.tolist()[1] == [True] * 3 + [False] * 4
    for i, n in enumerate(lens.tolist()):
        alone = enc(src[i : i + 1, :n], lens[i : i + 1])
        torch.testing.assert_close(out.states[i, :n], alone.states[0])
        torch.testing.assert_close(out.final_h[:, i], alone.final_h[:, 0])
        assert out.states[i, n:].abs().sum() == 0


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_ignores_padding(kind):
    att = Attention(kind, 16, 16)
    keys = torch.randn(2, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    q = torch.randn(2, 4, 16)
    ctx, w = att(q, att.project_keys(keys), keys, mask)
    assert ctx.shape == (2, 4, 16) and w.shape == (2, 4, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
    assert w[1, :, 3:].abs().max() == 0
    # garbage in the padded positions changes nothing
    keys2 = keys.clone()
    keys2[1, 3:] = 100.0
    ctx2, w2 = att(q, att.project_keys(keys2), keys2, mask)
    torch.testing.assert_close(ctx2[1], ctx[1])
    torch.testing.assert_close(w2[1], w[1])


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_weights_follow_the_published_formulas(kind):
    """Bahdanau: softmax_j(v . tanh(W_q q + W_k k_j)); Luong general: softmax_j(q . W k_j);
    dot: softmax_j(q . k_j). tandem computes the additive one through a sigmoid, which must
    give the same weights, gradients included."""
    torch.manual_seed(0)
    att = Attention(kind, 16, 16)
    keys = torch.randn(2, 6, 16) * 3
    mask = torch.ones(2, 6, dtype=torch.bool)
    q = torch.randn(2, 4, 16) * 3
    if kind == "additive":
        e = att.v(torch.tanh(att.query_proj(q).unsqueeze(2) + att.key_proj(keys).unsqueeze(1)))
        e = e.squeeze(-1)
    elif kind == "general":
        e = att.query_proj(q) @ keys.transpose(1, 2)
    else:
        e = q @ keys.transpose(1, 2)
    want = torch.softmax(e, -1)
    _, got = att(q, att.project_keys(keys), keys, mask)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    if kind == "additive":
        want_grads = torch.autograd.grad((want * torch.arange(6.0)).sum(), list(att.parameters()))
        got_grads = torch.autograd.grad((got * torch.arange(6.0)).sum(), list(att.parameters()))
        for g, w in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale", [3.0, 60.0])
@pytest.mark.parametrize("slice_bytes", [None, 1, 2000])
def test_search_time_additive_attention_equals_the_sigmoid_path(monkeypatch, scale,
                                                                 slice_bytes):
    """Searches on a CPU compute sigmoid(q + k) as 1 / (1 + exp(-q) exp(-k)) with exp(-k)
    cached per batch: the same weights as the training path, beams folded or not; at scale
    60 some doubled queries pass EXP_LIMIT and that step must fall back to the plain path.
    The cached path works in slices over the batch: one (default), one sentence each (1
    byte), or 2 + 1 sentences (2000 bytes; a sentence's slice is 2 x 7 x 16 floats)."""
    if slice_bytes is not None:
        monkeypatch.setattr(attention, "SLICE_BYTES", slice_bytes)
    torch.manual_seed(0)
    att = Attention("additive", 16, 16)
    keys = torch.randn(3, 7, 16) * 3
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    q = torch.randn(6, 1, 16) * scale  # 3 sentences x 2 beams, one step
    proj = att.project_keys(keys)
    want_ctx, want = att(q, proj, keys, mask, group=2)  # gradients on: the sigmoid path
    with torch.no_grad():
        exp_keys = att.exp_keys(proj)
        assert exp_keys is not None
        ctx, got = att(q, proj, keys, mask, group=2, exp_keys=exp_keys)
        assert bool((att.query_proj(q).abs() * 2 > EXP_LIMIT).any()) == (scale > 10)
        assert att.exp_keys(proj * 100) is None  # keys beyond the limit: no cache
    torch.testing.assert_close(got, want.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ctx, want_ctx.detach(), atol=1e-6, rtol=1e-5)
    assert float(got[2:4, 0, 5:].sum()) == 0.0  # sentence 1's beams: padding gets none


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional,layers", [(True, 2), (False, 1), (True, 1)])
def test_encoder_by_length_equals_the_packed_sequence(monkeypatch, cell, bidirectional,
                                                      layers):
    """On a CPU the encoder runs one RNN call per distinct source length instead of one
    call over a packed sequence: states, final states and gradients must be the same."""
    torch.manual_seed(0)
    enc = Encoder(cell, 30, 8, 12, layers, bidirectional, dropout=0.0)
    src, lens = padded_batch([5, 2, 5, 3, 1, 2])

    def run(max_groups):
        monkeypatch.setattr(encoder_module, "MAX_LENGTH_GROUPS", max_groups)
        enc.zero_grad()
        out = enc(src, lens)
        final = [out.final_h] + ([out.final_c] if out.final_c is not None else [])
        loss = (out.states * torch.arange(12.0)).sum() + sum((f ** 2).sum() for f in final)
        loss.backward()
        return [out.states, *final], [p.grad.clone() for p in enc.parameters()]

    want, want_grads = run(0)  # every batch packed
    got, got_grads = run(8)  # 4 distinct lengths: one call each
    for g, w in zip(got + got_grads, want + want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert float(got[0][1, 2:].detach().abs().sum()) == 0.0  # zeros at padding, as before
    alone = enc(src[[0, 2]], lens[[0, 2]])  # one length: a single call, no regrouping
    torch.testing.assert_close(alone.states, got[0][[0, 2]], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.final_h, got[1][:, [0, 2]], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("slice_bytes", [None, 1, 500])
def test_additive_scores_backward_is_the_true_gradient(monkeypatch, slice_bytes):
    """CPU training computes additive attention's scores with a hand-written backward:
    gradcheck (finite differences, float64) for q, k and v, and equal to autograd's graph of
    the same expression in float32. Forward and backward work in slices over the batch: one
    (default), one sentence each (1 byte), or at 500 bytes 2 + 1 sentences in float32 (a
    sentence's 3 x 4 x 5 floats are 240 bytes) and one each in float64 (480 bytes)."""
    from tandem.model.attention import _AdditiveScores

    if slice_bytes is not None:
        monkeypatch.setattr(attention, "SLICE_BYTES", slice_bytes)
    torch.manual_seed(0)
    q = torch.randn(3, 3, 1, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_AdditiveScores.apply, (q, k, v))
    q, k, v = (t.detach().float().requires_grad_() for t in (q, k, v))
    g = torch.randn(3, 3, 4)
    got = torch.autograd.grad((_AdditiveScores.apply(q, k, v) * g).sum(), (q, k, v))
    want = torch.autograd.grad((((q + k).sigmoid() @ v) * g).sum(), (q, k, v))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


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


@pytest.mark.parametrize("cond", CONDITIONINGS)
@pytest.mark.parametrize("feed", [False, True])
def test_parallel_forward_equals_stepwise_decoding(cond, feed):
    """Teacher forcing in one call gives the same log-probs as decode_step, step by step."""
    if feed and cond != "attention":
        pytest.skip("input feeding needs attention")
    model = _combo("lstm", "linear", cond, input_feeding=feed).eval()
    src, lens = padded_batch([5, 3])
    tgt, _ = padded_batch([4, 4], vocab=25)
    tgt[:, 0] = 2
    full = _search_logprobs(model(src, lens, tgt))
    state = model.init_state(model.encode(src, lens))
    for t in range(4):
        logp, state, _ = model.decode_step(tgt[:, t], state)
        torch.testing.assert_close(logp, full[:, t], atol=1e-5, rtol=1e-4)


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


def test_bridge_last_passes_the_final_state_through():
    model = tiny_model(cell="gru", bridge="last", conditioning="init").eval()
    src, lens = padded_batch([4, 2])
    enc = model.encode(src, lens)
    state = model.init_state(enc)
    torch.testing.assert_close(state.hidden, enc.final_h)
    torch.testing.assert_close(state.c, enc.final_h[-1])


def test_bridge_pooled_uses_all_states_not_padding():
    cfg = ModelConfig(cell="gru", bridge="pooled", conditioning="every_step", emb_size=8,
                      hidden_size=16, dropout=0.0)
    from tandem.model.seq2seq import Seq2Seq

    model = Seq2Seq(cfg, 20, 25).eval()
    src, lens = padded_batch([4, 2], pad_to=6)
    h1 = model.init_state(model.encode(src, lens)).c
    h2 = model.init_state(model.encode(src[:, :4], lens)).c  # less padding, same result
    torch.testing.assert_close(h1, h2)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("given_state", [False, True])
def test_single_step_kernel_equals_the_rnn_module(cell, layers, given_state):
    """Search steps go through the cell kernels; they must compute what the RNN module does."""
    from tandem.model.encoder import make_rnn, run_rnn

    rnn = make_rnn(cell, 6, 8, layers, dropout=0.3).eval()
    x = torch.randn(3, 1, 6)
    hidden = None
    if given_state:
        h = torch.randn(layers, 3, 8)
        hidden = (h, torch.randn(layers, 3, 8)) if cell == "lstm" else h
    want_out, want_h = rnn(x, hidden)
    got_out, got_h = run_rnn(rnn, x, hidden)
    torch.testing.assert_close(got_out, want_out, atol=1e-6, rtol=1e-5)
    for g, w in zip(got_h if cell == "lstm" else [got_h], want_h if cell == "lstm" else [want_h],
                    strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_step_cells_compute_what_the_decoder_rnn_does(cell):
    """The per-layer cells added for int8 inference are exact copies of the decoder RNN."""
    model = _combo(cell, "linear", "attention", input_feeding=True, dec_layers=2).eval()
    src, lens = padded_batch([5, 3])
    prev = torch.tensor([2, 2])
    want, _, _ = model.decode_step(prev, model.init_state(model.encode(src, lens)))
    model.decoder.add_step_cells()
    assert len(model.decoder.step_cells) == 2
    got, _, _ = model.decode_step(prev, model.init_state(model.encode(src, lens)))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_step_cells_compute_what_the_rnn_does(cell, layers):
    """Search steps without autograd go through fused step cells (one product per layer,
    tanh via sigmoid); they must compute what the RNN module does, state included."""
    from tandem.model.cells import StepCache
    from tandem.model.encoder import make_rnn, run_rnn

    torch.manual_seed(0)
    rnn = make_rnn(cell, 6, 8, layers, dropout=0.0).eval()
    x = torch.randn(5, 1, 6) * 3  # large inputs: the gates saturate too
    h = torch.randn(layers, 5, 8)
    hidden = (h, torch.randn(layers, 5, 8)) if cell == "lstm" else h
    with torch.no_grad():
        want_out, want_h = rnn(x, hidden)
        got_out, got_h = run_rnn(rnn, x, hidden, cache=StepCache())
    torch.testing.assert_close(got_out, want_out, atol=1e-6, rtol=1e-5)
    for g, w in zip(got_h if cell == "lstm" else [got_h], want_h if cell == "lstm" else [want_h],
                    strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


def test_step_cache_follows_the_weights_and_is_never_saved():
    """Validation during training decodes with the live weights: an optimizer step or a
    loaded checkpoint must rebuild the fused cells, and they stay out of the state dict."""
    model = _combo("lstm", "linear", "attention").eval()
    src, lens = padded_batch([5, 3])
    prev = torch.tensor([2, 2])

    def step():
        with torch.no_grad():
            return model.decode_step(prev, model.init_state(model.encode(src, lens)))[0]

    before = step()
    with torch.no_grad():
        model.decoder.rnn.weight_hh_l0.add_(0.5)  # in place, as an optimizer step does
    changed = step()
    assert not torch.allclose(before, changed)
    with torch.no_grad():  # the same weights through the cell kernels (no cache)
        cache, model.decoder.step_cache = model.decoder.step_cache, None
        torch.testing.assert_close(step(), changed, atol=1e-5, rtol=1e-4)
        model.decoder.step_cache = cache
    assert not any("step" in k for k in model.state_dict())


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_keeps_the_expected_value_and_drops_p(p):
    from tandem.model.encoder import Dropout

    torch.manual_seed(0)
    d = Dropout(p)
    x = torch.full((200, 500), 2.0)
    y = d(x)
    dropped = float((y == 0).float().mean())
    assert dropped == pytest.approx(p, abs=0.01)
    if p < 1.0:
        assert float(y.mean()) == pytest.approx(2.0, rel=0.02)  # survivors scaled by 1/(1-p)
        assert torch.isclose(y[y != 0], torch.tensor(2.0 / (1 - p))).all()
    assert torch.equal(d.eval()(x), x)  # off at inference
