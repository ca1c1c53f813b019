"""End to end: the model really learns a task in a fixed number of steps (however fast or
loaded the machine: speed belongs in benchmarks/), and the faster CPU inference modes (int8
quantization, bfloat16 autocast) keep what it learned."""

import pytest
import torch

from tandem.config import from_dict
from tandem.data.tasks import make_splits
from tandem.evaluate import evaluate_outputs, group_references
from tandem.structures.translator import load
from tandem.train.trainer import train

STEPS = 600  # seeds 1-3 reach 97.9-98.7% held-out exact match here; the bar is 95%


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A GRU attention model trained on `reverse` (lengths 1..15) for STEPS updates."""
    cfg = from_dict({
        "name": "reverse-test",
        "run_dir": str(tmp_path_factory.mktemp("learning") / "run"),
        "data": {"task": "reverse", "task_min_len": 1, "task_max_len": 15},
        "model": {"cell": "gru", "emb_size": 64, "hidden_size": 128, "dropout": 0.0,
                  "conditioning": "attention", "attention": "additive"},
        "train": {"batch_tokens": 2000, "lr": 0.005, "lr_schedule": "cosine",
                  "max_steps": STEPS, "valid_every": STEPS, "valid_metric": "loss",
                  "progress": False, "keep_last": 0, "tensorboard": False},
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
def test_reverse_with_attention_reaches_95_percent_in_a_fixed_number_of_steps(reverse_run,
                                                                              held_out):
    best = load(reverse_run / "best.pt")
    assert best.train_state["step"] == STEPS
    em = exact_match(best, held_out, beam=1)
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
