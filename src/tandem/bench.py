"""`tandem bench`: training and decoding speed on a fixed synthetic workload, against the
machine's own matmul peak and a tutorial-style reference, all measured in one run.

    tandem bench [--quick] [--sizes small base] [--out benchmarks/results]
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from tandem.bench_reference import TutorialSeq2Seq
from tandem.config import ModelConfig
from tandem.cpu import autocast, native_bf16, quantize_int8, resolve_device, synchronize
from tandem.data.batching import collate, pad, token_batches
from tandem.data.tasks import generate
from tandem.data.vocab import Vocab
from tandem.decode import search
from tandem.model.seq2seq import Seq2Seq
from tandem.train.loss import token_nll

SIZES = {
    "small": ModelConfig(cell="lstm", emb_size=128, hidden_size=256, enc_layers=1, dec_layers=1,
                         bidirectional=True, dropout=0.0),
    "base": ModelConfig(cell="lstm", emb_size=256, hidden_size=512, enc_layers=2, dec_layers=2,
                        bidirectional=True, dropout=0.0),
}
VARIANTS = {
    "init": dict(conditioning="init", bridge="linear"),
    "every_step": dict(conditioning="every_step", bridge="linear"),
    "additive": dict(conditioning="attention", attention="additive"),
    "additive+feed": dict(conditioning="attention", attention="additive", input_feeding=True),
    "general": dict(conditioning="attention", attention="general"),
    "general+feed": dict(conditioning="attention", attention="general", input_feeding=True),
}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CPU = torch.device("cpu")


def rnn_flops(cell: str, inp: int, hidden: int) -> int:
    """Multiply-adds x2 of one RNN step: gates x hidden x (input + hidden)."""
    return 2 * GATES[cell] * hidden * (inp + hidden)


def forward_flops(cfg: ModelConfig, src_len: float, tgt_len: float, vocab: int) -> float:
    """Forward FLOPs of one sentence pair (matrix products only), from the layer sizes."""
    enc_out = cfg.enc_hidden_size or cfg.hidden_size
    dirs = 2 if cfg.bidirectional else 1
    per_dir = enc_out // dirs
    enc = 0
    for layer in range(cfg.enc_layers):
        inp = cfg.emb_size if layer == 0 else enc_out
        enc += dirs * rnn_flops(cfg.cell, inp, per_dir)
    H, E = cfg.hidden_size, cfg.emb_size
    dec_in = E + (H if cfg.conditioning == "every_step" else 0)
    dec_in += H if cfg.input_feeding else 0
    dec = sum(rnn_flops(cfg.cell, dec_in if i == 0 else H, H) for i in range(cfg.dec_layers))
    if cfg.conditioning == "attention":
        if cfg.attention == "additive":
            att = 2 * H * H + src_len * (4 * H) + 2 * src_len * enc_out
            keys = 2 * enc_out * H  # per source token, once per sentence
        else:
            att = (2 * H * enc_out if cfg.attention == "general" else 0) + 4 * src_len * enc_out
            keys = 0
        pre = 2 * (H + enc_out) * H
    elif cfg.conditioning == "every_step":
        att, keys, pre = 0, 0, 2 * (2 * H + E) * H
    else:
        att, keys, pre = 0, 0, 0
    gen = 2 * H * vocab
    return src_len * (enc + keys) + tgt_len * (dec + att + pre + gen)


def matmul_peak(seconds: float = 2.0, n: int = 2048,
                device: torch.device = CPU) -> float:
    """GFLOP/s of a large float32 matmul with the current thread count (best of repeats);
    on a GPU, an 8192-square one with torch's default float32 matmul precision."""
    if device.type == "cuda":
        n = 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    synchronize(device)
    best, end = 0.0, time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def workload(n: int, seed: int = 7):
    """Reverse pairs with lengths 5..50, as character ids."""
    pairs = generate("reverse", n, seed, min_len=5, max_len=50)
    vocab = Vocab.build([list(s) for s, _ in pairs])
    ex = [(vocab.encode(list(s)), vocab.encode(list(t), add_bos=True, add_eos=True))
          for s, t in pairs]
    return vocab, ex


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_training(model, examples, batch_tokens: int, steps: int, reference: bool = False,
                  bf16: bool = False, device: torch.device = CPU):
    batches = [collate([examples[i] for i in idx], idx)
               for idx in token_batches(examples, batch_tokens, random.Random(0))]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times, tokens = [], []
    for k in range(steps + 2):
        t = time.perf_counter()
        b = batches[k % len(batches)].to(device)  # copying to a GPU is part of a step
        if reference:
            logp = model(b.src, b.tgt_in)
            loss, n = token_nll(logp, b.tgt_out)
        else:
            with autocast(bf16, device.type):
                logits = model(b.src, b.src_len, b.tgt_in)
            loss, n = token_nll(logits, b.tgt_out)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
        synchronize(device)
        if k >= 2:  # the first two warm up
            times.append(time.perf_counter() - t)
            tokens.append(int(b.src_len.sum()) + n)
    return sum(tokens) / sum(times), statistics.median(times) * 1000, sum(tokens) / len(tokens)


def time_decoding(model, examples, batch: int, beam: int, n_sent: int, reference: str = "",
                  bf16: bool = False, device: torch.device = CPU):
    src_all = [e[0] for e in examples[:n_sent]]
    if batch > 1:  # as tandem translates a file: batches of similar length
        src_all.sort(key=len)
    model.eval()
    out_tokens = 0
    t = time.perf_counter()
    with torch.no_grad(), autocast(bf16, device.type):
        if reference:
            fn = getattr(model, reference)
            for s in src_all:
                out_tokens += len(fn(torch.tensor([s]), beam, len(s) + 5))
        else:
            for i in range(0, len(src_all), batch):
                chunk = src_all[i:i + batch]
                src = pad(chunk).to(device)
                lens = torch.tensor([len(s) for s in chunk], device=device)
                if beam == 1:
                    hyps = search.greedy(model, src, lens, max_len_a=1.0, max_len_b=5)
                else:
                    hyps = search.beam_search(model, src, lens, beam, max_len_a=1.0,
                                              max_len_b=5)
                out_tokens += sum(len(h[0].tokens) + 1 for h in hyps)
    synchronize(device)
    dt = time.perf_counter() - t
    return len(src_all) / dt, out_tokens / dt


def trainer_data_wait(size: str, steps: int, batch_tokens: int, device: str = "cpu") -> dict:
    """The real training loop (`tandem train`) on the same workload for a few steps: how much
    of the wall time goes to waiting for batches rather than computing."""
    import tempfile

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
        trainer = Trainer(cfg)
        trainer.train()
    busy = trainer.data_wait + trainer.step_time
    return {"size": size, "steps": steps, "data_wait_s": round(trainer.data_wait, 3),
            "train_s": round(busy, 2), "data_wait_pct": round(100 * trainer.data_wait / busy, 2)}


def _peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process, or on a GPU the peak it allocated."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_mb()


def run(sizes: list[str], quick: bool = False, variants: list[str] | None = None,
        device: str = "cpu", batch_tokens: int = 4000) -> dict:
    """On the CPU: everything the issue lists. On a GPU: training and decoding speed,
    utilisation of the GPU's float32 matmul peak and bf16 autocast; int8 (a CPU feature)
    and the tutorial reference (written for the CPU) are left out."""
    dev = resolve_device(device, "--device")
    gpu = dev.type == "cuda"
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    steps = 3 if quick else 10
    n1, n64 = (8, 64) if quick else (24, 192)  # sentences decoded at batch 1 and at 64
    vocab, examples = workload(2000)
    V = len(vocab)
    peak = matmul_peak(1.0 if quick else 3.0, device=dev)
    avg_src = statistics.mean(len(e[0]) for e in examples)
    avg_tgt = statistics.mean(len(e[1]) - 1 for e in examples)
    rows = []
    for size in sizes:
        for name in variants or list(VARIANTS):
            cfg = replace(SIZES[size], **VARIANTS[name])
            model = Seq2Seq(cfg, V, V).to(dev)
            if gpu:
                torch.cuda.reset_peak_memory_stats(dev)
            tok_s, ms, tok_per_step = time_training(model, examples, batch_tokens, steps,
                                                    device=dev)
            fpt = forward_flops(cfg, avg_src, avg_tgt, V) / (avg_src + avg_tgt)
            gflops = 3 * fpt * tok_s / 1e9  # forward + backward ~ 3x forward
            row = {"size": size, "variant": name, "params": model.n_params(),
                   "train_tok_s": round(tok_s), "train_ms_step": round(ms, 1),
                   "tokens_per_step": round(tok_per_step),
                   "fwd_flops_per_token": round(fpt), "train_gflops": round(gflops, 2),
                   "utilisation": round(gflops / peak, 3),
                   ("peak_gpu_mb" if gpu else "peak_rss_mb"): round(_peak_memory_mb(dev))}
            q = None if gpu else quantize_int8(copy.deepcopy(model))
            reps = 1 if quick else 3
            for beam in (1, 5):
                for batch, n in ((1, n1), (64, n64)):
                    # beam 5 on the CPU: float32 and int8 passes alternate, medians of `reps`
                    models = {"fp32": model,
                              **({"int8": q} if beam == 5 and q is not None else {})}
                    rates: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
                    for _ in range(reps if len(models) > 1 else 1):
                        for mode, m in models.items():
                            rates[mode].append(time_decoding(m, examples, batch, beam, n,
                                                             device=dev))
                    med = {k: [statistics.median(x) for x in zip(*v, strict=True)]
                           for k, v in rates.items()}
                    row[f"decode_b{beam}_bs{batch}_sent_s"] = round(med["fp32"][0], 1)
                    row[f"decode_b{beam}_bs{batch}_tok_s"] = round(med["fp32"][1])
                    if "int8" in med:
                        row[f"int8_decode_b5_bs{batch}_sent_s"] = round(med["int8"][0], 1)
                        row[f"int8_speedup_b5_bs{batch}"] = round(
                            med["int8"][0] / med["fp32"][0], 2)
            if name == "general":  # bfloat16 autocast, training and decoding
                b_tok_s, b_ms, _ = time_training(copy.deepcopy(model), examples, batch_tokens,
                                                 steps, bf16=True, device=dev)
                sps, _ = time_decoding(model, examples, 64, 5, n64, bf16=True, device=dev)
                row.update(bf16_train_tok_s=round(b_tok_s),
                           bf16_train_speedup=round(b_tok_s / tok_s, 2),
                           bf16_decode_b5_bs64_sent_s=round(sps, 1),
                           bf16_decode_speedup=round(sps / row["decode_b5_bs64_sent_s"], 2))
            rows.append(row)
            print(_fmt(row), flush=True)
        if gpu or (variants and not {"general", "general+feed"} <= set(variants)):
            continue
        rows.append(_reference_row(size, V, examples, batch_tokens, steps, quick, n64))
        print(_fmt(rows[-1]), flush=True)
    waits = [trainer_data_wait(size, 4 if quick else 20, batch_tokens, str(dev))
             for size in sizes]
    for w in waits:
        print(f"{w['size']:<6} tandem train: {w['data_wait_pct']}% of {w['train_s']} s spent "
              f"waiting for batches", flush=True)
    machine = {"device": str(dev)}
    if gpu:
        machine["gpu"] = torch.cuda.get_device_name(dev)
    return {"matmul_peak_gflops": round(peak, 1), "threads": threads, **machine,
            "native_bf16": native_bf16(), "rows": rows, "data_wait": waits,
            "workload": {"task": "reverse", "lengths": "5..50", "pairs": len(examples),
                         "batch_tokens": batch_tokens, "avg_src_len": round(avg_src, 1)}}


def _reference_row(size: str, V: int, examples, batch_tokens: int, steps: int,
                   quick: bool, n64: int) -> dict:
    """The tutorial-style reference (CPU), and tandem's ratios to it from the same run.

    Training ratios: the reference and tandem's `general` (with and without input feeding)
    train in alternating passes, medians of 3 each, so a slow minute on a shared machine
    falls on all three alike."""
    ref = TutorialSeq2Seq(V, V, SIZES[size].emb_size, SIZES[size].hidden_size,
                          SIZES[size].enc_layers, SIZES[size].dec_layers)
    torch.manual_seed(0)
    ours_models = {name: Seq2Seq(replace(SIZES[size], **VARIANTS[name]), V, V)
                   for name in ("general", "general+feed")}
    n_steps = max(2, steps // 2)
    passes: dict[str, list[tuple[float, float]]] = {"ref": [], **{k: [] for k in ours_models}}
    for _ in range(1 if quick else 3):
        passes["ref"].append(time_training(ref, examples, batch_tokens, n_steps,
                                           reference=True)[:2])
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
    ours_sps, _ = time_decoding(ours, examples, 64, 5, n64)
    subset = sorted(examples[:n64], key=lambda e: len(e[0]))[::8]
    r_sps, _ = time_decoding(ref, subset, 1, 5, len(subset), reference="beam_search")
    r_hyp_sps, _ = time_decoding(ref, subset, 1, 5, len(subset),
                                 reference="beam_search_per_hyp")
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


def _fmt(r: dict) -> str:
    if "ratio_train_same_model" in r:
        return (f"{r['size']:<6} {r['variant']:<36} train {r['train_tok_s']:>7} tok/s  "
                f"beam5 {r['decode_b5_bs1_sent_s']:>6} sent/s (per-hyp "
                f"{r['decode_b5_per_hyp_sent_s']}) | tandem/ref: train "
                f"{r['ratio_train_same_model']}x (no feed {r['ratio_train_general_no_feed']}x), "
                f"beam5 bs64 {r['ratio_beam5_bs64_vs_batched_beams']}x "
                f"(vs per-hyp {r['ratio_beam5_bs64_vs_per_hyp']}x)")
    return (f"{r['size']:<6} {r['variant']:<14} train {r['train_tok_s']:>7} tok/s "
            f"{r['train_ms_step']:>7} ms/step {r['utilisation'] * 100:5.1f}% peak | greedy bs64 "
            f"{r['decode_b1_bs64_sent_s']:>7} sent/s  beam5 bs64 {r['decode_b5_bs64_sent_s']:>7} "
            f"sent/s  beam5 bs1 {r['decode_b5_bs1_sent_s']:>6} sent/s"
            + (f"  int8 beam5 bs64 {r['int8_speedup_b5_bs64']}x  rss {r['peak_rss_mb']} MB"
               if "peak_rss_mb" in r else f"  gpu memory {r['peak_gpu_mb']} MB")
            + (f"  bf16 train {r['bf16_train_speedup']}x decode {r['bf16_decode_speedup']}x"
               if "bf16_train_speedup" in r else ""))


def write_report(folder: str | Path, prefix: str, suffix: str, body: dict,
                 command: str | None = None) -> Path:
    """Write a benchmark result as `folder/<prefix>-<date><suffix>.json`, with the command
    that made it (default: this script's command line) and the machine it ran on."""
    if command is None:
        command = " ".join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    date = datetime.date.today().isoformat()
    report = {"command": command, "date": date,
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "native_bf16": native_bf16()},
              **body}
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{prefix}-{date}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def main(sizes: list[str], quick: bool, out: str, variants: list[str] | None = None,
         device: str = "cpu", batch_tokens: int = 4000, tag: str = "") -> Path:
    started = time.time()
    res = run(sizes, quick, variants, device, batch_tokens)
    command = (f"tandem bench --sizes {' '.join(sizes)}" + (" --quick" if quick else "")
               + (f" --variants {' '.join(variants)}" if variants else "")
               + (f" --device {device}" if device != "cpu" else "")
               + (f" --batch-tokens {batch_tokens}" if batch_tokens != 4000 else "")
               + (f" --tag {tag}" if tag else ""))
    suffix = ("-" + device.replace(":", "") if device != "cpu" else "") + (
        "-quick" if quick else "") + (f"-{tag}" if tag else "")
    path = write_report(out, "speed", suffix,
                        {"minutes": round((time.time() - started) / 60, 1), **res}, command)
    print(f"matmul peak {res['matmul_peak_gflops']} GFLOP/s on {res['threads']} threads; "
          f"wrote {path}")
    return path


def recipe_parser(default_config: str, average: int, description: str):
    """Arguments shared by the real-data recipe scripts (benchmarks/g2p_cmudict.py,
    benchmarks/multi30k.py): which config, overrides, train/resume/score only, averaging."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=default_config)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--no-train", action="store_true", help="score an existing run")
    p.add_argument("--resume", action="store_true", help="continue the run before scoring")
    p.add_argument("--average", type=int, default=average,
                   help="also score the mean of the last N checkpoints (0: no)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--results", default="benchmarks/results")
    return p


def train_recipe(a) -> tuple:
    """Train (or resume, or skip) the recipe named by `recipe_parser`'s arguments; returns
    the config, the run folder, its validation history, and the checkpoints to score
    ({"best": best.pt, "average_last_N": the mean of the last N})."""
    import logging

    from tandem.config import load_config
    from tandem.train import checkpoint
    from tandem.train.average import average
    from tandem.train.scalars import read_validations
    from tandem.train.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(a.config, a.set)
    run = cfg.out_dir
    if not a.no_train:
        train(cfg, resume=a.resume)
    models = {"best": run / "best.pt"}
    if a.average:
        last = checkpoint.numbered(run)[-a.average:]
        models[f"average_last_{a.average}"] = average(last, run / f"avg{a.average}.pt")
    return cfg, run, read_validations(run), models
