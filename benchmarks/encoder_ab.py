"""Same-process A/B of the CPU encoder's two ways of running a batch: one RNN call over a
packed sequence (PyTorch runs it step by step on a CPU) against one fused call per distinct
source length (`tandem.model.encoder.MAX_LENGTH_GROUPS`). Training steps of a `tandem bench`
model on its workload, or with --config of a training config on its own data (the trainer's
batches and train step); the two modes alternate, so both see the same machine.

    python benchmarks/encoder_ab.py [--size base] [--variant general] [--reps 3] [--steps 10]
    python benchmarks/encoder_ab.py --config configs/g2p_cmudict.yaml [--set key=value ...]

Writes benchmarks/results/encoder-ab-<date>-<size>-<variant | the config's name>.json (ms per
training step, every pass).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from tandem.bench import SIZES, VARIANTS, workload, write_report
from tandem.config import load_config
from tandem.data.batching import collate, token_batches
from tandem.model import encoder
from tandem.model.seq2seq import Seq2Seq
from tandem.train.loss import token_nll
from tandem.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="base", choices=SIZES)
    ap.add_argument("--variant", default="general", choices=VARIANTS)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-tokens", type=int, default=4000)
    ap.add_argument("--config", help="a training config instead of a bench model")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config overrides, as for tandem train")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    if a.config:
        cfg = load_config(a.config, [*a.set, "run_dir=" + tempfile.mkdtemp(prefix="encoder-ab-"),
                                     "train.max_minutes=null", "train.lr_horizon=steps"])
        trainer = Trainer(cfg, overwrite=True)
        batches = list(itertools.islice(trainer.batches(), 2 + a.steps))
        what = {"config": a.config, "name": cfg.name, "overrides": a.set}

        def step(b) -> None:
            trainer.train_step(b)
    else:
        vocab, examples = workload(2000)
        torch.manual_seed(0)
        model = Seq2Seq(replace(SIZES[a.size], **VARIANTS[a.variant]), len(vocab),
                        len(vocab)).train()
        batches = [collate([examples[i] for i in idx], idx)
                   for idx in token_batches(examples, a.batch_tokens, random.Random(0))]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        what = {"size": a.size, "variant": a.variant}

        def step(b) -> None:
            loss, n = token_nll(model(b.src, b.src_len, b.tgt_in), b.tgt_out)
            opt.zero_grad()
            (loss / n).backward()
            opt.step()

    for b in batches[:2]:  # warm-up
        step(b)
    timed = batches[2:2 + a.steps]
    modes = {"packed": 0, "by_length": encoder.MAX_LENGTH_GROUPS}
    ms: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for _ in range(a.reps):
            for mode, groups in modes.items():
                encoder.MAX_LENGTH_GROUPS = groups
                t = time.perf_counter()
                for b in timed:
                    step(b)
                ms[mode].append(round((time.perf_counter() - t) / len(timed) * 1000, 1))
    finally:
        encoder.MAX_LENGTH_GROUPS = modes["by_length"]
    med = {m: statistics.median(v) for m, v in ms.items()}
    lengths = [len(torch.unique(b.src_len)) for b in timed]
    body = {**what, "steps_per_pass": len(timed),
            "distinct_source_lengths_per_batch": lengths, "ms_per_step": ms,
            "median_ms_per_step": med,
            "speedup_by_length": round(med["packed"] / med["by_length"], 2)}
    name = what["name"] if a.config else f"{a.size}-{a.variant}"
    path = write_report(a.out, "encoder-ab", f"-{name}", body)
    print(f"packed {med['packed']} ms/step, by length {med['by_length']} ms/step "
          f"({body['speedup_by_length']}x); wrote {path}")


if __name__ == "__main__":
    main()
