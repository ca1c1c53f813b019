"""End to end: the model really learns a task within a fixed training budget."""

import pytest

from tandem.config import from_dict
from tandem.data.tasks import make_splits
from tandem.decode.translator import load
from tandem.train.trainer import evaluate_outputs, group_references, train


@pytest.mark.slow
def test_reverse_with_attention_reaches_95_percent_in_two_minutes(tmp_path):
    cfg = from_dict({
        "name": "reverse-test",
        "run_dir": str(tmp_path / "run"),
        "data": {"task": "reverse", "task_min_len": 1, "task_max_len": 15},
        "model": {"cell": "gru", "emb_size": 64, "hidden_size": 128, "dropout": 0.0,
                  "conditioning": "attention", "attention": "additive"},
        "train": {"batch_tokens": 4000, "lr": 0.003, "lr_schedule": "cosine", "max_steps": 900,
                  "max_minutes": 2.0, "valid_every": 300, "progress": False, "keep_last": 0},
    })
    run = train(cfg)
    tr = load(run / "best.pt")
    test = make_splits("reverse", (20000, 1000, 1000), seed=1, min_len=1, max_len=15)["test"]
    srcs, refs = group_references(test)
    hyps = tr.translate(srcs, beam=1)
    scores = evaluate_outputs(tr.fields, hyps, refs, ["exact_match"])
    print(f"held-out exact match: {scores['exact_match']:.1f}%")
    assert scores["exact_match"] >= 95.0
