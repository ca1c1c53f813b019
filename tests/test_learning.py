"""End to end: the model really learns a task within a fixed training budget, and the faster
CPU inference modes (int8 quantization, bfloat16 autocast) keep what it learned."""

import pytest
import torch

from tandem.config import from_dict
from tandem.data.tasks import make_splits
from tandem.decode.translator import load
from tandem.train.trainer import evaluate_outputs, group_references, train


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A GRU attention model trained on `reverse` (lengths 1..15) for at most 2 minutes."""
    cfg = from_dict({
        "name": "reverse-test",
        "run_dir": str(tmp_path_factory.mktemp("learning") / "run"),
        "data": {"task": "reverse", "task_min_len": 1, "task_max_len": 15},
        "model": {"cell": "gru", "emb_size": 64, "hidden_size": 128, "dropout": 0.0,
                  "conditioning": "attention", "attention": "additive"},
        "train": {"batch_tokens": 4000, "lr": 0.003, "lr_schedule": "cosine", "max_steps": 900,
                  "max_minutes": 2.0, "valid_every": 300, "progress": False, "keep_last": 0},
    })
    return train(cfg)


@pytest.fixture(scope="module")
def held_out():
    test = make_splits("reverse", (20000, 1000, 1000), seed=1, min_len=1, max_len=15)["test"]
    return group_references(test)


def exact_match(tr, held_out, **options) -> float:
    srcs, refs = held_out
    hyps = tr.translate(srcs, **options)
    return evaluate_outputs(tr.fields, hyps, refs, ["exact_match"])["exact_match"]


@pytest.mark.slow
def test_reverse_with_attention_reaches_95_percent_in_two_minutes(reverse_run, held_out):
    em = exact_match(load(reverse_run / "best.pt"), held_out, beam=1)
    print(f"held-out exact match: {em:.1f}%")
    assert em >= 95.0


@pytest.mark.slow
def test_int8_quantized_model_stays_within_one_point(reverse_run, held_out):
    fp32 = exact_match(load(reverse_run / "best.pt"), held_out, beam=5)
    tr = load(reverse_run / "best.pt").quantize("int8")
    kinds = {type(m).__module__ for m in tr.model.modules()}
    assert any("quantized" in k for k in kinds), kinds  # the layers really were replaced
    int8 = exact_match(tr, held_out, beam=5)
    print(f"beam 5 exact match: fp32 {fp32:.2f}%, int8 {int8:.2f}%")
    assert abs(fp32 - int8) <= 1.0


@pytest.mark.slow
def test_bf16_decoding_runs_in_bf16_and_keeps_most_of_the_accuracy(reverse_run, held_out):
    tr = load(reverse_run / "best.pt")
    seen = []
    hook = tr.model.decoder.generator.register_forward_hook(
        lambda mod, inp, out: seen.append(out.dtype))
    bf16 = exact_match(tr, held_out, beam=5, bf16=True)
    hook.remove()
    fp32 = exact_match(tr, held_out, beam=5)
    print(f"beam 5 exact match: fp32 {fp32:.2f}%, bf16 {bf16:.2f}%")
    assert torch.bfloat16 in seen
    assert bf16 >= fp32 - 5.0  # bf16 has an 8-bit mantissa: a little loss is allowed
