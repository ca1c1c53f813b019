"""model/encoder.py: padding never changes the states; the uniform-mask dropout."""


import pytest
import torch

from conftest import padded_batch
from tandem.model.encoder import Encoder

CELLS = ["rnn", "gru", "lstm"]


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
