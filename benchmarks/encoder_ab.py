"""Same-process A/B of a CPU change, the code as it is against the way before it.
--change encoder: one RNN call over a packed sequence (PyTorch runs it step by step on a CPU)
against one fused call per distinct source length (`tandem.model.encoder.MAX_LENGTH_GROUPS`).
--change additive: additive attention's scores through autograd's graph against their own
backward (`tandem.model.attention._AdditiveScores`). Training steps of a `tandem bench`
model on its workload, or with --config of a training config on its own data (the trainer's
batches and train step); the two modes alternate, so both see the same machine.
--change slices: additive attention's (B, T, S, A) tensor built whole (in training, the
forward saving it for the backward, as before) against in slices of
`tandem.model.attention.SLICE_BYTES`; training steps, or with --decode beam 5 at batches of
64 as `tandem bench` decodes (its model after 10 training steps), float32 and int8.

    python benchmarks/encoder_ab.py [--change encoder] [--size base] [--variant general]
    python benchmarks/encoder_ab.py --config configs/g2p_cmudict.yaml [--set key=value ...]
    python benchmarks/encoder_ab.py --change additive --variant additive
    python benchmarks/encoder_ab.py --change slices --variant additive [--decode]

Writes benchmarks/results/<change>-ab-<date>-<size>-<variant | the config's name>.json (ms
per training step), or <change>-decode-ab-... (sentences/s), every pass.
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

from tandem.bench import SIZES, VARIANTS, time_decoding, time_training, workload, write_report
from tandem.config import load_config
from tandem.cpu import quantize_int8
from tandem.data.batching import collate, token_batches
from tandem.model import attention, encoder
from tandem.model.seq2seq import Seq2Seq
from tandem.train.loss import token_nll
from tandem.train.trainer import Trainer

# each change: (name of the old way, name of the new way)
CHANGES = {"encoder": ("packed", "by_length"), "additive": ("autograd", "own_backward"),
           "slices": ("whole", "sliced")}
_OWN_BACKWARD = attention._AdditiveScores.apply
_GROUPS = encoder.MAX_LENGTH_GROUPS
_SLICE = attention.SLICE_BYTES


def _autograd_scores(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What CPU training computed before `_AdditiveScores`: autograd's graph of the same."""
    return ((q + k).sigmoid() @ v.unsqueeze(-1)).squeeze(-1)


class _WholeScores(torch.autograd.Function):
    """`_AdditiveScores` before the slices: the whole (B, T, S, A) sigmoid, saved for the
    backward."""

    @staticmethod
    def forward(ctx, q, k, v):
        s = (q + k).sigmoid_()
        ctx.save_for_backward(s, v)
        return torch.matmul(s, v.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        s, v = ctx.saved_tensors
        dv = (g.reshape(1, -1) @ s.reshape(-1, s.size(-1))).squeeze(0)
        dz = torch.addcmul(s, s, s, value=-1)
        dz.mul_(g.unsqueeze(-1)).mul_(v)
        return dz.sum(2, keepdim=True), dz.sum(1, keepdim=True), dv


def use(change: str, new: bool) -> None:
    """Switch one change on (the code as it is) or off (the way before it)."""
    if change == "encoder":
        encoder.MAX_LENGTH_GROUPS = _GROUPS if new else 0
    elif change == "slices":
        attention.SLICE_BYTES = _SLICE if new else 1 << 62  # one slice: the whole tensor
        attention._AdditiveScores.apply = _OWN_BACKWARD if new else _WholeScores.apply
    else:
        attention._AdditiveScores.apply = _OWN_BACKWARD if new else _autograd_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--change", default="encoder", choices=CHANGES,
                    help="encoder: packed vs one call per source length; additive: autograd "
                         "vs the own backward of additive attention's scores; slices: "
                         "additive attention's (B, T, S, A) tensor whole vs in slices "
                         "(training steps, or searches with --decode)")
    ap.add_argument("--size", default="base", choices=SIZES)
    ap.add_argument("--variant", default="general", choices=VARIANTS)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-tokens", type=int, default=4000)
    ap.add_argument("--config", help="a training config instead of a bench model")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config overrides, as for tandem train")
    ap.add_argument("--decode", action="store_true",
                    help="--change slices only: time beam search instead of training steps")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    if a.decode:
        if a.change != "slices":
            ap.error("--decode measures --change slices only")
        return decode_ab(a)
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


def decode_ab(a) -> None:
    """--change slices --decode: sentences/s of beam 5 at batch 64, float32 and int8."""
    vocab, examples = workload(2000)
    torch.manual_seed(0)
    model = Seq2Seq(replace(SIZES[a.size], **VARIANTS[a.variant]), len(vocab), len(vocab))
    time_training(model, examples, a.batch_tokens, a.steps)  # as tandem bench's model
    models = {"fp32": model, "int8": quantize_int8(model)}
    old, new = CHANGES[a.change]
    sps: dict[str, dict[str, list[float]]] = {p: {old: [], new: []} for p in models}
    try:
        for _ in range(a.reps):
            for mode in (old, new):
                use(a.change, mode == new)
                for p, m in models.items():
                    sps[p][mode].append(round(time_decoding(m, examples, 64, 5, 192)[0], 1))
    finally:
        use(a.change, True)
    body = {"change": a.change, "size": a.size, "variant": a.variant, "beam": 5,
            "batch": 64, "sentences": 192, "sent_s": sps, "slice_bytes": _SLICE}
    for p in models:
        med = {m: statistics.median(v) for m, v in sps[p].items()}
        body[f"median_sent_s_{p}"] = med
        body[f"speedup_{new}_{p}"] = round(med[new] / med[old], 2)
    body["int8_speedup"] = {m: round(body["median_sent_s_int8"][m]
                                     / body["median_sent_s_fp32"][m], 2) for m in (old, new)}
    path = write_report(a.out, f"{a.change}-decode-ab", f"-{a.size}-{a.variant}", body)
    print(f"{new} vs {old}: float32 {body[f'speedup_{new}_fp32']}x, int8 "
          f"{body[f'speedup_{new}_int8']}x; int8/float32 {body['int8_speedup']}; wrote {path}")


if __name__ == "__main__":
    main()
