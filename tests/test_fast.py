"""tandem.model.fast: the kernels chosen once by `prepare`, each held to the textbook model's
outputs and gradients; the config switch turns them off."""

import itertools

import pytest
import torch

from conftest import padded_batch, tiny_model
from tandem.config import DecodeConfig
from tandem.decode import search
from tandem.model import fast
from tandem.model.attention import Attention, ProjectedQuery, TanhScores
from tandem.model.decoder import plain_rnn
from tandem.model.encoder import Encoder, make_rnn, packed_rnn
from tandem.model.loss import token_nll

CELLS = ["rnn", "gru", "lstm"]


# --- the plan: chosen once, from device, mode and precision ---------------------------------
@pytest.mark.parametrize("native", [False, True])
def test_plan_is_the_documented_table(monkeypatch, native):
    monkeypatch.setattr(fast, "native_bf16", lambda: native)
    P = fast.Plan
    assert fast.plan("cpu", "train") == P("by_length", "sliced", "cell_kernels", False)
    assert fast.plan("cpu", "infer") == P("packed", "cached_exp", "fused_cells", False, "keys")
    assert fast.plan("cpu", "infer", "int8") == P("packed", "cached_exp", "int8_cells", False,
                                                  "keys")
    assert fast.plan("cuda", "train") == P("packed", "sigmoid", "cell_kernels", False)
    assert fast.plan("cuda", "infer", "bf16") == P("packed", "sigmoid", "cell_kernels", False,
                                                   "keys")
    # bf16 on a CPU: the recurrence in float32 unless the CPU has bf16 instructions
    assert fast.plan("cpu", "train", "bf16") == P("by_length", "sigmoid", "cell_kernels",
                                                  not native)
    assert fast.plan("cpu", "infer", "bf16").decoder == ("fused_cells" if native
                                                         else "cell_kernels")
    # the switch: textbook kernels everywhere, only the float32 recurrence bf16 needs
    for device, mode in itertools.product(["cpu", "cuda"], ["train", "infer"]):
        assert fast.plan(device, mode, enabled=False) == fast.TEXTBOOK
    assert fast.plan("cpu", "train", "bf16", enabled=False).float32_rnn is not native


def _kernels(model):
    att = model.decoder.attention
    return (model.encoder.run_rnn, None if att is None else att.additive, model.decoder.run_rnn,
            None if att is None else att.general)


def test_prepare_sets_the_planned_kernels_and_the_switch_restores_the_textbook():
    model = tiny_model(attention="additive")
    enc, add, dec, gen = _kernels(model)
    assert enc is packed_rnn and type(add) is TanhScores and dec is plain_rnn  # as built
    assert type(gen) is ProjectedQuery
    fast.prepare(model, "cpu", "train")
    enc, add, dec, gen = _kernels(model)
    assert isinstance(enc, fast.ByLength) and isinstance(add, fast.SlicedScores)
    assert isinstance(dec, fast.CellKernelSteps) and type(gen) is ProjectedQuery
    fast.prepare(model, "cpu", "infer")
    enc, add, dec, gen = _kernels(model)
    assert enc is packed_rnn and isinstance(add, fast.CachedExpScores)
    assert isinstance(dec, fast.FusedSteps) and isinstance(gen, fast.ProjectedKeys)
    fast.prepare(model, "cpu", "infer", enabled=False)
    enc, add, dec, gen = _kernels(model)
    assert enc is packed_rnn and type(add) is TanhScores and dec is plain_rnn
    assert type(gen) is ProjectedQuery


@pytest.mark.pins("model.fast_kernels")
def test_trainer_and_translator_use_the_switch(tmp_path):
    """model.fast_kernels reaches both places that prepare a model."""
    from tandem.config import from_dict
    from tandem.structures.translator import Translator
    from tandem.train.trainer import Trainer

    for on in (True, False):
        cfg = from_dict({"run_dir": str(tmp_path / f"r{on}"),
                         "data": {"task": "reverse", "task_sizes": [60, 10, 10]},
                         "model": {"emb_size": 8, "hidden_size": 16, "attention": "additive",
                                   "fast_kernels": on},
                         "train": {"progress": False, "device": "cpu", "tensorboard": False}})
        trainer = Trainer.from_config(cfg)
        assert isinstance(trainer.model.decoder.attention.additive, fast.SlicedScores) is on
        tr = Translator(trainer.model, trainer.fields, cfg)
        assert isinstance(tr.model.decoder.run_rnn, fast.FusedSteps) is on
        assert (tr.model.decoder.run_rnn is plain_rnn) is not on


# --- the whole model: fast == textbook ------------------------------------------------------
MODELS = [dict(cell=c, attention=a, input_feeding=f, enc_layers=2, dec_layers=2)
          for c, a, f in itertools.product(CELLS, ["additive", "general"], [False, True])]


def _loss_and_grads(model, src, lens, tgt):
    model.zero_grad()
    logits = model(src, lens, tgt[:, :-1])
    loss, n = token_nll(logits, tgt[:, 1:])
    (loss / n).backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("kw", MODELS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_training_kernels_give_the_textbook_outputs_and_gradients(kw):
    model = tiny_model(**kw)
    src, lens = padded_batch([6, 2, 4, 6, 3])  # 4 distinct lengths: the by-length encoder
    tgt, _ = padded_batch([5, 5, 5, 5, 5], vocab=25)
    tgt[:, 0] = 2
    fast.prepare(model, "cpu", "train", enabled=False)
    want, want_grads = _loss_and_grads(model, src, lens, tgt)
    fast.prepare(model, "cpu", "train")
    got, got_grads = _loss_and_grads(model, src, lens, tgt)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kw", MODELS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_inference_kernels_give_the_textbook_searches(kw):
    model = tiny_model(**kw).eval()
    src, lens = padded_batch([6, 2, 4])

    def run():
        with torch.no_grad():
            state = model.init_state(model.encode(src, lens))
            steps = []
            prev = torch.full((3,), 2)
            for _ in range(4):
                logp, state, _ = model.decode_step(prev, state)
                steps.append(logp)
                prev = logp.argmax(-1)
            beams = search.beam_search(model, src, lens, DecodeConfig(beam=3, nbest=2))
        return torch.stack(steps), [[h.tokens for h in b] for b in beams]

    fast.prepare(model, "cpu", "infer", enabled=False)
    want_steps, want_beams = run()
    fast.prepare(model, "cpu", "infer")
    got_steps, got_beams = run()
    torch.testing.assert_close(got_steps, want_steps, atol=1e-5, rtol=1e-4)
    assert got_beams == want_beams


def test_general_attention_with_projected_keys_gives_the_textbook_context():
    """q . (W^T k) computed once per batch equals (W q) . k at every step, beams folded in;
    a quantized projection (no weight tensor) keeps the textbook form."""
    torch.manual_seed(0)
    att = Attention("general", 12, 10)
    values = torch.randn(3, 7, 10)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    query = torch.randn(6, 1, 12)  # 2 beams per sentence
    keys, cache = att.project_keys(values)
    assert cache is None
    want = att(query, keys, values, mask, 2, cache)
    att.general = fast.ProjectedKeys()
    keys, cache = att.project_keys(values)
    assert cache.shape == (3, 7, 12)
    got = att(query, keys, values, mask, 2, cache)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(att.query_proj),
                                                       {torch.nn.Linear}, dtype=torch.qint8)[0]
    assert att.general.keys(values, quantized)[1] is None


def test_int8_model_is_prepared_with_its_own_step_cells():
    """quantize_int8 prepares the copy's kernels (its closeness: tests/test_precision.py);
    with the switch off, the quantized RNN modules run the steps themselves."""
    model = tiny_model(hidden_size=160, dec_layers=2).eval()
    q = fast.quantize_int8(model)
    assert isinstance(q.decoder.run_rnn, fast.Int8Steps)
    assert q.decoder.run_rnn.cells is q.decoder.step_cells
    plain = fast.quantize_int8(model, enabled=False)
    assert "step_cells" not in dict(plain.decoder.named_children())
    assert plain.decoder.run_rnn is plain_rnn
    src, lens = padded_batch([5, 3])
    with torch.no_grad():
        a = q.decode_step(torch.tensor([2, 2]), q.init_state(q.encode(src, lens)))[0]
        b = plain.decode_step(torch.tensor([2, 2]), plain.init_state(plain.encode(src, lens)))[0]
    assert (a.exp() - b.exp()).abs().max() < 0.01


# --- each kernel against the textbook -------------------------------------------------------
@pytest.mark.parametrize("kernel", [fast.SigmoidScores, fast.SlicedScores, fast.CachedExpScores])
def test_additive_kernels_follow_bahdanau(kernel):
    """softmax_j(v . tanh(W_q q + W_k k_j)), gradients too where the kernel has them."""
    torch.manual_seed(0)
    att = Attention("additive", 16, 16)
    keys = torch.randn(2, 6, 16) * 3
    mask = torch.ones(2, 6, dtype=torch.bool)
    q = torch.randn(2, 4, 16) * 3
    e = att.v(torch.tanh(att.query_proj(q).unsqueeze(2) + att.key_proj(keys).unsqueeze(1)))
    want = torch.softmax(e.squeeze(-1), -1)
    att.additive = kernel()
    with torch.set_grad_enabled(kernel is not fast.CachedExpScores):
        k, cache = att.project_keys(keys)
        _, got = att(q, k, keys, mask, cache=cache)
    torch.testing.assert_close(got, want.detach() if not got.requires_grad else want,
                               atol=1e-6, rtol=1e-5)
    if got.requires_grad:
        want_grads = torch.autograd.grad((want * torch.arange(6.0)).sum(), list(att.parameters()))
        got_grads = torch.autograd.grad((got * torch.arange(6.0)).sum(), list(att.parameters()))
        for g, w in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale", [3.0, 60.0])
@pytest.mark.parametrize("slice_bytes", [None, 1, 2000])
def test_cached_exp_scores_equal_the_sigmoid_form(scale, slice_bytes):
    """1 / (1 + exp(-q) exp(-k)) with exp(-k) cached per batch gives the sigmoid form's
    weights, beams folded; at scale 60 some doubled queries pass EXP_LIMIT and that step
    must fall back. In slices over the batch: one (default), one sentence each (1 byte), or
    2 + 1 sentences (2000 bytes; a sentence's slice is 2 x 7 x 16 floats)."""
    torch.manual_seed(0)
    att = Attention("additive", 16, 16)
    keys = torch.randn(3, 7, 16) * 3
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    q = torch.randn(6, 1, 16) * scale  # 3 sentences x 2 beams, one step
    with torch.no_grad():
        att.additive = fast.SigmoidScores()
        want_ctx, want = att(q, att.project_keys(keys)[0], keys, mask, group=2)
        att.additive = fast.CachedExpScores(slice_bytes)
        k, cache = att.project_keys(keys)
        assert cache is not None
        ctx, got = att(q, k, keys, mask, group=2, cache=cache)
        assert bool((att.query_proj(q).abs() * 2 > fast.EXP_LIMIT).any()) == (scale > 10)
        assert att.project_keys(keys * 100)[1] is None  # keys beyond the limit: no cache
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ctx, want_ctx, atol=1e-6, rtol=1e-5)
    assert float(got[2:4, 0, 5:].sum()) == 0.0  # sentence 1's beams: padding gets none


@pytest.mark.parametrize("slice_bytes", [fast.SLICE_BYTES, 1, 500])
def test_additive_scores_backward_is_the_true_gradient(slice_bytes):
    """The hand-written backward: gradcheck (finite differences, float64) for q, k and v, and
    equal to autograd's graph of the same expression in float32; in one slice, one sentence
    each (1 byte), or at 500 bytes 2 + 1 sentences in float32 (a sentence's 3 x 4 x 5 floats
    are 240 bytes) and one each in float64 (480 bytes)."""
    torch.manual_seed(0)
    q = torch.randn(3, 3, 1, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: fast.additive_scores(*t, slice_bytes), (q, k, v))
    q, k, v = (t.detach().float().requires_grad_() for t in (q, k, v))
    g = torch.randn(3, 3, 4)
    got = torch.autograd.grad((fast.additive_scores(q, k, v, slice_bytes) * g).sum(), (q, k, v))
    want = torch.autograd.grad((((q + k).sigmoid() @ v) * g).sum(), (q, k, v))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional,layers", [(True, 2), (False, 1), (True, 1)])
def test_encoder_by_length_equals_the_packed_sequence(cell, bidirectional, layers):
    """One RNN call per distinct source length: the packed sequence's states, final states
    and gradients."""
    torch.manual_seed(0)
    enc = Encoder(cell, 30, 8, 12, layers, bidirectional, dropout=0.0)
    src, lens = padded_batch([5, 2, 5, 3, 1, 2])

    def run(kernel):
        enc.run_rnn = kernel
        enc.zero_grad()
        out = enc(src, lens)
        final = [out.final_h] + ([out.final_c] if out.final_c is not None else [])
        loss = (out.states * torch.arange(12.0)).sum() + sum((f ** 2).sum() for f in final)
        loss.backward()
        return [out.states, *final], [p.grad.clone() for p in enc.parameters()]

    want, want_grads = run(packed_rnn)
    got, got_grads = run(fast.ByLength(max_groups=8))  # 4 distinct lengths: one call each
    for g, w in zip(got + got_grads, want + want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert float(got[0][1, 2:].detach().abs().sum()) == 0.0  # zeros at padding, as before
    alone = enc(src[[0, 2]], lens[[0, 2]])  # one length: a single call, no regrouping
    torch.testing.assert_close(alone.states, got[0][[0, 2]], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.final_h, got[1][:, [0, 2]], atol=1e-5, rtol=1e-4)
    few, _ = run(fast.ByLength(max_groups=2))  # past the limit: the packed call
    torch.testing.assert_close(few[0], want[0])


def _hidden(cell, layers, n, size):
    h = torch.randn(layers, n, size)
    return (h, torch.randn(layers, n, size)) if cell == "lstm" else h


def _assert_same_step(cell, got, want):
    torch.testing.assert_close(got[0], want[0], atol=1e-6, rtol=1e-5)
    gh, wh = (got[1], want[1]) if cell == "lstm" else ([got[1]], [want[1]])
    for g, w in zip(gh, wh, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("kernel", [fast.CellKernelSteps, fast.FusedSteps])
def test_step_kernels_compute_what_the_rnn_module_does(cell, layers, given_state, kernel):
    torch.manual_seed(0)
    rnn = make_rnn(cell, 6, 8, layers, dropout=0.3).eval()
    x = torch.randn(5, 1, 6) * 3  # large inputs: the gates saturate too
    hidden = _hidden(cell, layers, 5, 8) if given_state else None
    with torch.no_grad():
        _assert_same_step(cell, kernel()(rnn, x, hidden), rnn(x, hidden))
        longer = torch.randn(5, 3, 6)  # more than one step: the module itself
        _assert_same_step(cell, kernel()(rnn, longer, hidden), rnn(longer, hidden))


def test_fused_steps_follow_the_weights_and_are_never_saved():
    """Validation during training decodes with the live weights: an optimizer step must
    rebuild the fused cells, and they stay out of the state dict."""
    model = tiny_model().eval()
    fast.prepare(model, "cpu", "infer")
    src, lens = padded_batch([5, 3])

    def step():
        with torch.no_grad():
            return model.decode_step(torch.tensor([2, 2]),
                                     model.init_state(model.encode(src, lens)))[0]

    before = step()
    with torch.no_grad():
        model.decoder.rnn.weight_hh_l0.add_(0.5)  # in place, as an optimizer step does
    changed = step()
    assert not torch.allclose(before, changed)
    fast.prepare(model, "cpu", "infer", enabled=False)
    torch.testing.assert_close(step(), changed, atol=1e-5, rtol=1e-4)
    assert not any("step" in k for k in model.state_dict())
