"""model/attention.py: masking and the published score formulas."""


import pytest
import torch

from tandem.model.attention import Attention


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_ignores_padding(kind):
    att = Attention(kind, 16, 16)
    keys = torch.randn(2, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    q = torch.randn(2, 4, 16)
    ctx, w = att(q, att.project_keys(keys)[0], keys, mask)
    assert ctx.shape == (2, 4, 16) and w.shape == (2, 4, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
    assert w[1, :, 3:].abs().max() == 0
    # garbage in the padded positions changes nothing
    keys2 = keys.clone()
    keys2[1, 3:] = 100.0
    ctx2, w2 = att(q, att.project_keys(keys2)[0], keys2, mask)
    torch.testing.assert_close(ctx2[1], ctx[1])
    torch.testing.assert_close(w2[1], w[1])


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_weights_follow_the_published_formulas(kind):
    """Bahdanau: softmax_j(v . tanh(W_q q + W_k k_j)); Luong general: softmax_j(q . W k_j);
    dot: softmax_j(q . k_j), gradients included (the fast kernels: tests/test_fast.py)."""
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
    _, got = att(q, att.project_keys(keys)[0], keys, mask)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    if kind == "additive":
        want_grads = torch.autograd.grad((want * torch.arange(6.0)).sum(), list(att.parameters()))
        got_grads = torch.autograd.grad((got * torch.arange(6.0)).sum(), list(att.parameters()))
        for g, w in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
