"""model/bridge.py: the semantic vector c."""


import torch

from conftest import padded_batch, tiny_model
from tandem.config import ModelConfig


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


def _combo(cell, bridge, cond, **kw):
    return tiny_model(cell=cell, bridge=bridge, conditioning=cond, **kw)


def test_bridge_max_is_the_transform_of_the_per_feature_maximum_over_real_states():
    model = tiny_model(cell="lstm", bridge="max", conditioning="every_step").eval()
    src, lens = padded_batch([5, 2], pad_to=7)
    enc = model.encode(src, lens)
    h, c = model.init_state(enc).hidden
    bridge = model.bridge
    for b, n in enumerate(lens.tolist()):
        top = enc.states[b, :n].amax(0)  # the real positions only
        want_h = torch.tanh(bridge.proj[0](top))
        want_c = torch.tanh(bridge.proj[1](top))
        torch.testing.assert_close(h[:, b].reshape(-1), want_h)
        torch.testing.assert_close(c[:, b].reshape(-1), want_c)
    # padding does not change it
    enc2 = model.encode(src[:, :5], lens)
    torch.testing.assert_close(model.init_state(enc2).hidden[0], h)
