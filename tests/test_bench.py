"""The speed benchmark: FLOPs per sentence counted from the layer sizes, and its reference."""

from dataclasses import replace

import pytest
import torch

from tandem.bench import forward_flops
from tandem.bench_reference import TutorialSeq2Seq
from tandem.config import ModelConfig
from tandem.model.seq2seq import Seq2Seq


def test_forward_flops_by_hand_for_the_init_decoder():
    cfg = ModelConfig(cell="lstm", emb_size=2, hidden_size=4, bidirectional=False,
                      conditioning="init", bridge="linear")
    enc = 2 * 4 * 4 * (2 + 4)  # 2 x gates x hidden x (input + hidden), per source token
    dec = 2 * 4 * 4 * (2 + 4)
    gen = 2 * 4 * 10
    assert forward_flops(cfg, 3, 2, 10) == 3 * enc + 2 * (dec + gen)


def test_forward_flops_grow_with_attention_and_input_feeding():
    base = dict(cell="gru", emb_size=8, hidden_size=16, bidirectional=True)
    init = forward_flops(ModelConfig(**base, conditioning="init"), 5, 5, 20)
    att = forward_flops(ModelConfig(**base, conditioning="attention", attention="general"),
                        5, 5, 20)
    feed = forward_flops(ModelConfig(**base, conditioning="attention", attention="general",
                                     input_feeding=True), 5, 5, 20)
    assert init < att < feed
    # input feeding adds the attentional vector (hidden size) to each decoder step's input
    assert feed - att == 5 * 2 * 3 * 16 * 16


@pytest.mark.parametrize("enc_layers", [2, 1])
def test_the_reference_with_tandems_weights_is_the_same_model(enc_layers):
    """The benchmark's beam ratio decodes one model in both: the tutorial-style reference
    loaded with a tandem general + input feeding model's weights gives the same
    teacher-forced log-probabilities."""
    torch.manual_seed(0)
    cfg = ModelConfig(cell="lstm", emb_size=8, hidden_size=16, enc_layers=enc_layers,
                      dec_layers=2, bidirectional=True, conditioning="attention",
                      attention="general", input_feeding=True, bridge="linear", dropout=0.0)
    model = Seq2Seq(cfg, 11, 13).eval()
    ref = TutorialSeq2Seq(11, 13, 8, 16, enc_layers, 2).load_tandem(model)
    src = torch.randint(4, 11, (3, 6))
    tgt_in = torch.randint(4, 13, (3, 5))
    with torch.no_grad():
        want = torch.log_softmax(model(src, torch.full((3,), 6), tgt_in), -1)
        got = ref(src, tgt_in)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    other = Seq2Seq(replace(cfg, attention="additive"), 11, 13)
    with pytest.raises(ValueError, match="general attention"):
        TutorialSeq2Seq(11, 13, 8, 16, enc_layers, 2).load_tandem(other)
