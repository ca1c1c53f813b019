"""`tandem bench`: FLOPs per sentence counted from the layer sizes, its options, and one tiny
run end to end."""

import json

import pytest

from tandem import bench
from tandem.bench import forward_flops
from tandem.cli import build_parser, main
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


def test_bench_options():
    """--variants offers exactly the variants bench times; counts must be >= 1."""
    parser = build_parser()
    args = parser.parse_args(["bench", "--variants", *bench.VARIANTS])
    assert args.variants == list(bench.VARIANTS)
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--variants", "nope"])
    a = parser.parse_args(["bench", "--steps", "2", "--sentences", "3"])
    assert (a.steps, a.sentences, a.out) == (2, 3, ".")
    assert bench.settings(False, a.steps, a.sentences) == (2, 3, 3)
    assert bench.settings(True) == (3, 8, 64) and bench.settings(False) == (10, 24, 192)


@pytest.mark.parametrize("flag", ["--steps", "--sentences", "--batch-tokens"])
def test_bench_refuses_counts_below_one(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", flag, "0"])
    assert f"argument {flag}: '0': a whole number >= 1 is needed" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.pins("bench --sizes", "bench --variants", "bench --quick", "bench --steps",
                  "bench --sentences", "bench --batch-tokens", "bench --out", "bench --tag")
def test_tandem_bench_end_to_end(tmp_path, monkeypatch):
    """The whole command on its smallest settings, with the `small` size swapped for a tiny
    model so that it stays quick: one JSON file with the command, the machine, a row per
    variant with positive rates, and bfloat16 for `general`."""
    monkeypatch.setitem(bench.SIZES, "small", ModelConfig(
        cell="lstm", emb_size=8, hidden_size=16, enc_layers=1, dec_layers=1,
        bidirectional=True, dropout=0.0))
    rc = main(["bench", "--sizes", "small", "--variants", "init", "general", "--quick",
               "--steps", "1", "--sentences", "2", "--batch-tokens", "300",
               "--out", str(tmp_path), "--tag", "t1"])
    assert rc == 0
    [path] = tmp_path.glob("speed-*-quick-t1.json")
    res = json.loads(path.read_text())
    assert res["command"] == ("tandem bench --sizes small --quick --variants init general "
                              "--batch-tokens 300 --steps 1 --sentences 2 --tag t1")
    assert res["machine"]["cpus"] >= 1 and res["threads"] >= 1
    assert res["matmul_peak_gflops"] > 0
    assert res["workload"]["timed_steps"] == 1
    assert res["workload"]["sentences_bs1"] == res["workload"]["sentences_bs64"] == 2
    assert [(r["size"], r["variant"]) for r in res["rows"]] == [("small", "init"),
                                                                ("small", "general")]
    for row in res["rows"]:
        rates = ["train_tok_s", "peak_rss_mb", "int8_decode_b5_bs1_sent_s",
                 "int8_decode_b5_bs64_sent_s",
                 *(f"decode_b{b}_bs{n}_{u}" for b in (1, 5) for n in (1, 64)
                   for u in ("sent_s", "tok_s"))]
        assert all(row[k] > 0 for k in rates), row
        assert row["params"] > 0 and row["tokens_per_step"] > 0
        # a batch holds at most --batch-tokens tokens, source and target counted (with the
        # default, 4000, a step of this workload holds far more)
        assert row["tokens_per_step"] <= 300
        # a tiny model's share of the peak may round to 0: check how it is made instead
        assert row["train_gflops"] == pytest.approx(
            3 * row["fwd_flops_per_token"] * row["train_tok_s"] / 1e9, abs=0.01)
        assert row["utilisation"] == pytest.approx(
            row["train_gflops"] / res["matmul_peak_gflops"], abs=0.002)
    assert "bf16_train_tok_s" not in res["rows"][0]
    general = res["rows"][1]
    assert general["bf16_train_tok_s"] > 0 and general["bf16_decode_b5_bs64_sent_s"] > 0
    assert not any("reference" in r["variant"] for r in res["rows"])  # benchmarks/speed/speed.py
