"""benchmarks/ab/sweep.py: variant parsing, the per-variant summary, and one tiny sweep end to
end."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sweep", ROOT / "benchmarks" / "ab" / "sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["sweep"] = sweep  # dataclasses look their module up while the class is built
_spec.loader.exec_module(sweep)


def test_parse_variant():
    assert sweep.parse_variant("base:") == ("base", [])
    assert sweep.parse_variant("w:model.hidden_size=512;train.lr=0.002") == (
        "w", ["model.hidden_size=512", "train.lr=0.002"])
    # a list value keeps its commas
    assert sweep.parse_variant("d:data.task_sizes=[10,2,2]") == ("d", ["data.task_sizes=[10,2,2]"])


@pytest.mark.parametrize("bad", ["nocolon", ":x=1", "a/b:x=1", "v:model.hidden_size"])
def test_parse_variant_refuses(bad):
    with pytest.raises(SystemExit):
        sweep.parse_variant(bad)


def _valid(tmp_path, rows):
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summarise_picks_best_by_direction(tmp_path):
    _valid(tmp_path, [{"step": 10, "elapsed_s": 30.0, "seq_error_rate": 30.0, "exact_match": 70},
                      {"step": 20, "elapsed_s": 60.0, "seq_error_rate": 25.0, "exact_match": 75},
                      {"step": 30, "elapsed_s": 90.0, "seq_error_rate": 26.0, "exact_match": 77}])
    low = sweep.summarise("v", ["a=1"], tmp_path, 100.0, 0, "seq_error_rate")
    assert low["best"] == {"step": 20, "seq_error_rate": 25.0, "elapsed_s": 60.0}
    assert low["steps"] == 30 and low["steps_per_min"] == 20.0
    high = sweep.summarise("v", [], tmp_path, 100.0, 0, "exact_match")
    assert high["best"]["step"] == 30


def test_summarise_without_validations(tmp_path):
    out = sweep.summarise("v", [], tmp_path, 1.0, 1, "exact_match")
    assert out["validations"] == [] and "best" not in out and out["exit_code"] == 1


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path):
    out = tmp_path / "sw"
    rc = sweep.main([
        str(ROOT / "configs" / "reverse.yaml"), "--out", str(out), "--parallel", "2",
        "--device", "cpu", "--set", "data.task_sizes=[64,16,16]", "--set", "train.max_steps=4",
        "--set", "train.valid_every=2", "--set", "train.threads=1",
        "--set", "model.hidden_size=16", "--set", "model.emb_size=8",
        "a:", "b:model.cell=lstm"])
    assert rc == 0, (out / "a.log").read_text()[-2000:]
    result = json.loads((out / "sweep.json").read_text())
    assert sorted(v["name"] for v in result["variants"]) == ["a", "b"]
    for v in result["variants"]:
        assert v["exit_code"] == 0 and v["steps"] == 4
        assert [r["step"] for r in v["validations"]] == [2, 4]
        assert "exact_match" in v["best"]
        assert not list((out / v["name"]).glob("*.pt"))  # checkpoints removed by default
    lstm = next(v for v in result["variants"] if v["name"] == "b")
    assert "model.cell=lstm" in lstm["overrides"]
    assert "cell: lstm" in (out / "b" / "config.yaml").read_text()
    assert "cell: gru" in (out / "a" / "config.yaml").read_text()


def test_unknown_metric_is_refused_before_training(tmp_path):
    with pytest.raises(SystemExit, match="--metric: unknown metric 'nope'"):
        sweep.main([str(ROOT / "configs" / "reverse.yaml"), "--out", str(tmp_path / "sw"),
                    "--metric", "nope", "a:"])
    assert not (tmp_path / "sw").exists()
