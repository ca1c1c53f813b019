"""Same-process A/B of a CPU training change, the code as it is against the way before it.
--change encoder: one RNN call over a packed sequence (PyTorch runs it step by step on a CPU)
against one fused call per distinct source length (`tandem.model.encoder.MAX_LENGTH_GROUPS`).
--change additive: additive attention's scores through autograd's graph against their own
backward (`tandem.model.attention._AdditiveScores`). Training steps of a `tandem bench`
model on its workload, or with --config of a training config on its own data (the trainer's
batches and train step); the two modes alternate, so both see the same machine.

    python benchmarks/encoder_ab.py [--change encoder] [--size base] [--variant general]
    python benchmarks/encoder_ab.py --config configs/g2p_cmudict.yaml [--set key=value ...]
    python benchmarks/encoder_ab.py --change additive --variant additive

Writes benchmarks/results/<change>-ab-<date>-<size>-<variant | the config's name>.json (ms
per training step, every pass).
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
from tandem.model import attention, encoder
from tandem.model.seq2seq import Seq2Seq
from tandem.train.loss import token_nll
from tandem.train.trainer import Trainer

# each change: (name of the old way, name of the new way)
CHANGES = {"encoder": ("packed", "by_length"), "additive": ("autograd", "own_backward")}
_OWN_BACKWARD = attention._AdditiveScores.apply
_GROUPS = encoder.MAX_LENGTH_GROUPS


def _autograd_scores(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What CPU training computed before `_AdditiveScores`: autograd's graph of the same."""
    return ((q + k).sigmoid() @ v.unsqueeze(-1)).squeeze(-1)


def use(change: str, new: bool) -> None:
    """Switch one change on (the code as it is) or off (the way before it)."""
    if change == "encoder":
        encoder.MAX_LENGTH_GROUPS = _GROUPS if new else 0
    else:
        attention._AdditiveScores.apply = _OWN_BACKWARD if new else _autograd_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--change", default="encoder", choices=CHANGES,
                    help="encoder: packed vs one call per source length; additive: autograd "
                         "vs the own backward of additive attention's scores")
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
    old, new = CHANGES[a.change]
    ms: dict[str, list[float]] = {old: [], new: []}
    try:
        for _ in range(a.reps):
            for mode in ms:
                use(a.change, mode == new)
                t = time.perf_counter()
                for b in timed:
                    step(b)
                ms[mode].append(round((time.perf_counter() - t) / len(timed) * 1000, 1))
    finally:
        use(a.change, True)
    med = {m: statistics.median(v) for m, v in ms.items()}
    body = {"change": a.change, **what, "steps_per_pass": len(timed), "ms_per_step": ms,
            "median_ms_per_step": med, f"speedup_{new}": round(med[old] / med[new], 2)}
    if a.change == "encoder":
        body["distinct_source_lengths_per_batch"] = [len(torch.unique(b.src_len))
                                                     for b in timed]
    name = what["name"] if a.config else f"{a.size}-{a.variant}"
    path = write_report(a.out, f"{a.change}-ab", f"-{name}", body)
    print(f"{old} {med[old]} ms/step, {new} {med[new]} ms/step "
          f"({body[f'speedup_{new}']}x); wrote {path}")

if __name__ == "__main__":
    main()
