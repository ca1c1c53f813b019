"""The speed benchmark's arithmetic: FLOPs per sentence counted from the layer sizes."""

from tandem.bench import forward_flops
from tandem.config import ModelConfig


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
