"""Same-process A/B of tandem's fast kernels (tandem.model.fast) against the textbook ones.

Each pass times the same `tandem bench` model (size, variant) with one hot spot's kernel
swapped: A = textbook, B = fast; the passes alternate, so both see the same machine.

--kernel encoder   training steps; Encoder.run_rnn: packed sequence | ByLength
--kernel additive  training steps; Attention.additive: SigmoidScores (autograd) | SlicedScores
--kernel steps     beam 5 at batches of 64; Decoder.run_rnn: CellKernelSteps | FusedSteps
--kernel all       training steps and beam 5: fast.prepare(enabled=False) | the plan

    python benchmarks/ab/kernels_ab.py --kernel all --size base --variant general

Writes benchmarks/results/kernels-ab-<date>-<kernel>-<size>-<variant>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

from tandem.bench import SIZES, VARIANTS, time_decoding, time_training, workload
from tandem.model import fast
from tandem.model.attention import Attention
from tandem.model.decoder import Decoder
from tandem.model.encoder import Encoder, packed_rnn
from tandem.model.seq2seq import Seq2Seq


def use(model: Seq2Seq, kernel: str, mode: str, new: bool) -> None:
    """Prepare `model` for `mode`, then put the A (textbook) or B (fast) kernel in place."""
    if kernel == "all":
        fast.prepare(model, "cpu", mode, enabled=new)
        return
    fast.prepare(model, "cpu", mode)
    for m in model.modules():
        if kernel == "encoder" and isinstance(m, Encoder):
            m.run_rnn = fast.ByLength() if new else packed_rnn
        elif kernel == "additive" and isinstance(m, Attention):
            m.additive = fast.SlicedScores() if new else fast.SigmoidScores()
        elif kernel == "steps" and isinstance(m, Decoder):
            m.run_rnn = fast.FusedSteps() if new else fast.CellKernelSteps()


def main() -> None:
    """Parse the arguments, alternate A and B passes, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="all", choices=["encoder", "additive", "steps", "all"])
    ap.add_argument("--size", default="base", choices=SIZES)
    ap.add_argument("--variant", default="general", choices=VARIANTS)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, default=4000)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = dataclasses.replace(SIZES[a.size], **VARIANTS[a.variant])
    vocab, examples = workload(4000)
    model = Seq2Seq(cfg, len(vocab), len(vocab))
    train = a.kernel in ("encoder", "additive", "all")
    decode = a.kernel in ("steps", "all")
    runs: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for _ in range(a.reps):
        for side, new in (("A", False), ("B", True)):
            if train:
                use(model, a.kernel, "train", new)
                _, ms, _ = time_training(model, examples, a.batch_tokens, a.steps)
                runs[side].setdefault("train_ms_per_step", []).append(ms)
            if decode:
                use(model, a.kernel, "infer", new)
                with torch.no_grad():
                    sps, _ = time_decoding(model, examples, 64, 5, a.sentences)
                runs[side].setdefault("beam5_sent_per_s", []).append(sps)
            print(side, {k: round(v[-1], 2) for k, v in runs[side].items()}, flush=True)
    med = {s: {k: statistics.median(v) for k, v in r.items()} for s, r in runs.items()}
    speedup = {k: (med["A"][k] / med["B"][k] if k.endswith("ms_per_step")
                   else med["B"][k] / med["A"][k]) for k in med["A"]}
    body = {"kernel": a.kernel, "size": a.size, "variant": a.variant,
            "model": dataclasses.asdict(cfg), "A": "textbook", "B": "fast", "runs": runs,
            "medians": med, "speedup_B_over_A": speedup}
    path = write_report(a.out, "kernels-ab", f"-{a.kernel}-{a.size}-{a.variant}", body)
    print(path, {k: round(v, 3) for k, v in speedup.items()})


if __name__ == "__main__":
    main()
