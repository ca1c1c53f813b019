"""Speed against a tutorial-style reference: everything `tandem bench` times, then per size
the reference of benchmarks/speed/reference.py (the same model written as a per-step loop, searched
one sentence at a time) with tandem's ratios to it, and how much of the real training loop's
time goes to waiting for batches. Writes
benchmarks/results/speed-<date>[-device][-quick][-TAG].json with the command that made it.

    .venv/bin/python benchmarks/speed/speed.py [--sizes small base] [--quick] [--tag r10]

On a GPU (--device cuda) the reference (written for the CPU) is left out.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report
from reference import TutorialSeq2Seq, time_search

from tandem.bench import (
    SIZES,
    VARIANTS,
    result_suffix,
    run,
    settings,
    time_decoding,
    time_training,
    workload,
)
from tandem.cpu import configure
from tandem.model import fast
from tandem.model.seq2seq import Seq2Seq


def reference_row(size: str, V: int, examples, batch_tokens: int, steps: int, quick: bool,
                  n64: int) -> dict:
    """The tutorial-style reference (CPU), and tandem's ratios to it from the same run.

    Training ratios: the reference and tandem's `general` (with and without input feeding)
    train in alternating passes, medians of 3 each, so a slow minute on a shared machine
    falls on all three alike."""
    ref = TutorialSeq2Seq(V, V, SIZES[size].emb_size, SIZES[size].hidden_size,
                          SIZES[size].enc_layers, SIZES[size].dec_layers)
    torch.manual_seed(0)
    ours_models = {name: Seq2Seq(replace(SIZES[size], **VARIANTS[name]), V, V)
                   for name in ("general", "general+feed")}
    for m in ours_models.values():
        fast.prepare(m, "cpu", "train")
    n_steps = max(2, steps // 2)
    passes: dict[str, list[tuple[float, float]]] = {"ref": [], **{k: [] for k in ours_models}}
    for _ in range(1 if quick else 3):
        passes["ref"].append(time_training(ref, examples, batch_tokens, n_steps)[:2])
        for name, m in ours_models.items():
            passes[name].append(time_training(m, examples, batch_tokens, n_steps)[:2])
    med = {k: statistics.median(t for t, _ in v) for k, v in passes.items()}
    r_tok_s = med["ref"]
    r_ms = statistics.median(ms for _, ms in passes["ref"])
    # Beam 5 with one model: the reference takes tandem's general+feed weights, so the two
    # search the same model; tandem decodes the rows' n64 sentences in batches of 64, the
    # reference every 8th of them by length (the same length mix), one sentence at a time.
    ours = ours_models["general+feed"]
    ref.load_tandem(ours)
    fast.prepare(ours, "cpu", "infer")
    ours_sps, _ = time_decoding(ours, examples, 64, 5, n64)
    subset = sorted(examples[:n64], key=lambda e: len(e[0]))[::8]
    r_sps, _ = time_search(ref, subset, 5, "beam_search")
    r_hyp_sps, _ = time_search(ref, subset, 5, "beam_search_per_hyp")
    return {"size": size, "variant": "reference (tutorial, general+feed)",
            "train_tok_s": round(r_tok_s), "train_ms_step": round(r_ms, 1),
            "decode_b5_bs1_sent_s": round(r_sps, 2),
            "decode_b5_per_hyp_sent_s": round(r_hyp_sps, 2),
            "same_model_tandem_b5_bs64_sent_s": round(ours_sps, 1),
            "alternating_train_tok_s": {k: [round(t) for t, _ in v] for k, v in passes.items()},
            "ratio_train_same_model": round(med["general+feed"] / r_tok_s, 2),
            "ratio_train_general_no_feed": round(med["general"] / r_tok_s, 2),
            "ratio_beam5_bs64_vs_batched_beams": round(ours_sps / r_sps, 2),
            "ratio_beam5_bs64_vs_per_hyp": round(ours_sps / r_hyp_sps, 2)}


def format_reference_row(r: dict) -> str:
    """One printed line of a `reference_row`."""
    return (f"{r['size']:<6} {r['variant']:<36} train {r['train_tok_s']:>7} tok/s  "
            f"beam5 {r['decode_b5_bs1_sent_s']:>6} sent/s (per-hyp "
            f"{r['decode_b5_per_hyp_sent_s']}) | tandem/ref: train "
            f"{r['ratio_train_same_model']}x (no feed {r['ratio_train_general_no_feed']}x), "
            f"beam5 bs64 {r['ratio_beam5_bs64_vs_batched_beams']}x "
            f"(vs per-hyp {r['ratio_beam5_bs64_vs_per_hyp']}x)")


def trainer_data_wait(size: str, steps: int, batch_tokens: int, device: str = "cpu") -> dict:
    """The real training loop (`tandem train`) on the same workload for a few steps: how much
    of the wall time goes to waiting for batches rather than computing."""
    from tandem.config import from_dict
    from tandem.train.trainer import Trainer

    m = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = from_dict({
            "run_dir": tmp,
            "data": {"task": "reverse", "task_sizes": [2000, 20, 20], "task_min_len": 5,
                     "task_max_len": 50},
            "model": {**{k: getattr(m, k) for k in ("cell", "emb_size", "hidden_size",
                                                     "enc_layers", "dec_layers",
                                                     "bidirectional", "dropout")},
                      **VARIANTS["general"]},
            "train": {"batch_tokens": batch_tokens, "max_steps": steps, "valid_every": steps,
                      "valid_metric": "loss", "progress": False, "keep_last": 0,
                      "device": device},
        })
        trainer = Trainer.from_config(cfg)
        trainer.train()
    busy = trainer.data_wait + trainer.step_time
    return {"size": size, "steps": steps, "data_wait_s": round(trainer.data_wait, 3),
            "train_s": round(busy, 2), "data_wait_pct": round(100 * trainer.data_wait / busy, 2)}


def _tag(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a tag may hold letters, digits, '_', '.' and '-' only")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """`tandem bench`'s options, results written under benchmarks/results by default."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["small", "base"], choices=list(SIZES))
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="default: all (the reference row needs general and general+feed)")
    p.add_argument("--quick", action="store_true", help="fewer steps and sentences")
    p.add_argument("--steps", type=int, help="timed training steps per model")
    p.add_argument("--sentences", type=int, help="sentences decoded per search rate")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tag", type=_tag, help="appended to the file name")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-tokens", type=int, default=4000)
    a = p.parse_args(argv)
    for name in ("steps", "sentences", "batch_tokens"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')}: a whole number >= 1 is needed")
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write its JSON; returns the exit status."""
    a = parse_args(argv)
    configure()
    started = time.time()
    res = run(a.sizes, a.quick, a.variants, a.device, a.batch_tokens, a.steps, a.sentences)
    steps, _, n64 = settings(a.quick, a.steps, a.sentences)
    gpu = res["device"].startswith("cuda")
    if not gpu and (not a.variants or {"general", "general+feed"} <= set(a.variants)):
        vocab, examples = workload(2000)
        for size in a.sizes:
            row = reference_row(size, len(vocab), examples, a.batch_tokens, steps, a.quick, n64)
            res["rows"].append(row)
            print(format_reference_row(row), flush=True)
    res["data_wait"] = [trainer_data_wait(size, 4 if a.quick else 20, a.batch_tokens,
                                          res["device"]) for size in a.sizes]
    for w in res["data_wait"]:
        print(f"{w['size']:<6} tandem train: {w['data_wait_pct']}% of {w['train_s']} s spent "
              f"waiting for batches", flush=True)
    body = {"minutes": round((time.time() - started) / 60, 1), **res}
    path = write_report(a.out, "speed", result_suffix(a.device, a.quick, a.tag or ""), body)
    print(f"matmul peak {res['matmul_peak_gflops']} GFLOP/s on {res['threads']} threads; "
          f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
