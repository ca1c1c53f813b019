"""benchmarks/speed/reference.py: the tutorial-style model the speed comparison times is the same
model as tandem's `general` + input feeding, doing the same matrix work."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tandem.bench import forward_flops
from tandem.config import ModelConfig
from tandem.model.seq2seq import Seq2Seq

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_reference",
                                               ROOT / "benchmarks" / "speed" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def _cfg(enc_layers: int = 2, dec_layers: int = 2, hidden: int = 16) -> ModelConfig:
    return ModelConfig(cell="lstm", emb_size=8, hidden_size=hidden, enc_layers=enc_layers,
                       dec_layers=dec_layers, bidirectional=True, conditioning="attention",
                       attention="general", input_feeding=True, bridge="linear", dropout=0.0)


@pytest.mark.parametrize("enc_layers", [2, 1])
def test_the_reference_with_tandems_weights_is_the_same_model(enc_layers):
    """The benchmark's beam ratio decodes one model in both: the tutorial-style reference
    loaded with a tandem general + input feeding model's weights gives the same
    teacher-forced log-probabilities."""
    torch.manual_seed(0)
    cfg = _cfg(enc_layers)
    model = Seq2Seq(cfg, 11, 13).eval()
    ref = reference.TutorialSeq2Seq(11, 13, 8, 16, enc_layers, 2).load_tandem(model)
    src = torch.randint(4, 11, (3, 6))
    tgt_in = torch.randint(4, 13, (3, 5))
    with torch.no_grad():
        want = torch.log_softmax(model(src, torch.full((3,), 6), tgt_in), -1)
        got = ref(src, None, tgt_in)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    other = Seq2Seq(replace(cfg, attention="additive"), 11, 13)
    with pytest.raises(ValueError, match="general attention"):
        reference.TutorialSeq2Seq(11, 13, 8, 16, enc_layers, 2).load_tandem(other)


def _flops(fn) -> dict[str, int]:
    """Matrix FLOPs per aten op of one call (nn.LSTM's fused recurrence is not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("train", [False, True])
def test_the_reference_does_the_matrix_work_of_tandems_model(train):
    """Keys made once per batch, the decoder state projected at each step: the reference's
    decoder side costs what `tandem.bench.forward_flops` counts for tandem's model, and its
    attention products (mm: the projection, bmm: scores and context) equal tandem's own.
    Projecting every encoder state at every step, as many tutorials do, adds
    S x 2 x H x H per step and fails both."""
    torch.manual_seed(0)
    B, S, T, V, H, L = 3, 7, 5, 13, 16, 2
    cfg = _cfg(hidden=H)
    model = Seq2Seq(cfg, V, V).train(train)
    ref = reference.TutorialSeq2Seq(V, V, 8, H, 2, L).load_tandem(model).train(train)
    src = torch.randint(4, V, (B, S))  # no padding: both then see the same positions
    tgt_in = torch.randint(4, V, (B, T))
    with torch.set_grad_enabled(train):
        got = _flops(lambda: ref(src, None, tgt_in))
        ours = _flops(lambda: model(src, torch.full((B,), S), tgt_in))
    decoder_side = forward_flops(cfg, S, T, V) - forward_flops(cfg, S, 0, V)
    bridge = 2 * L * 2 * H * H  # tanh(Linear) of the encoder's final h and c, per layer
    assert sum(got.values()) == B * (decoder_side + bridge)
    assert got["aten.mm"] == ours["aten.mm"] == B * T * 2 * H * H
    assert got["aten.bmm"] == ours["aten.bmm"] == B * T * 4 * S * H
