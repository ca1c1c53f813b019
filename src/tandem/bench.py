"""`tandem bench`: tandem's training and search speed on this machine, on a fixed synthetic
workload: training tokens/s and the share of the machine's own matmul peak they use, greedy
and beam search sentences/s (float32, int8, bfloat16), and peak memory.

    tandem bench [--quick] [--sizes small base] [--variants general ...] [--out DIR]

The comparison with a tutorial-style reference model lives in `benchmarks/speed.py` (a
script of the repository, not of the package).
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
import time
from dataclasses import replace
from pathlib import Path

import torch

from tandem.config import DecodeConfig, ModelConfig
from tandem.cpu import autocast, native_bf16, resolve_device, synchronize
from tandem.data.batching import collate, pad, token_batches
from tandem.data.tasks import generate
from tandem.data.vocab import Vocab
from tandem.decode import search
from tandem.decode.scoring import Scorer
from tandem.model import fast
from tandem.model.loss import token_nll
from tandem.model.seq2seq import Seq2Seq

SIZES = {
    "small": ModelConfig(cell="lstm", emb_size=128, hidden_size=256, enc_layers=1, dec_layers=1,
                         bidirectional=True, dropout=0.0),
    "base": ModelConfig(cell="lstm", emb_size=256, hidden_size=512, enc_layers=2, dec_layers=2,
                        bidirectional=True, dropout=0.0),
}
"""The two model sizes timed: LSTM encoder-decoders, bidirectional encoder, no dropout."""

VARIANTS = {
    "init": dict(conditioning="init", bridge="linear"),
    "every_step": dict(conditioning="every_step", bridge="linear"),
    "additive": dict(conditioning="attention", attention="additive"),
    "additive+feed": dict(conditioning="attention", attention="additive", input_feeding=True),
    "general": dict(conditioning="attention", attention="general"),
    "general+feed": dict(conditioning="attention", attention="general", input_feeding=True),
}
"""How the decoder is conditioned on the source, per timed variant (ModelConfig fields)."""

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


def workload(n: int, seed: int = 7) -> tuple[Vocab, list[tuple[list[int], list[int]]]]:
    """`n` reverse pairs with lengths 5..50 as character ids: (one vocab for both sides,
    [(source ids, target ids with BOS and EOS)])."""
    pairs = generate("reverse", n, seed, min_len=5, max_len=50)
    vocab = Vocab.build([list(s) for s, _ in pairs])
    ex = [(vocab.encode(list(s)), vocab.encode(list(t), add_bos=True, add_eos=True))
          for s, t in pairs]
    return vocab, ex


def time_training(model: torch.nn.Module, examples, batch_tokens: int, steps: int,
                  bf16: bool = False, device: torch.device = CPU) -> tuple[float, float, float]:
    """Adam steps on token batches of `examples`, after two untimed warm-up steps.

    `model(src (B, S), src_len (B,), tgt_in (B, T))` returns scores (B, T, V) for the token
    loss (logits or log-probabilities); a tandem model comes prepared for training
    (`tandem.model.fast.prepare`). Returns (tokens/s with source and target tokens
    counted, median ms per step, mean tokens per step)."""
    batches = [collate([examples[i] for i in idx], idx)
               for idx in token_batches(examples, batch_tokens, random.Random(0))]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times, tokens = [], []
    for k in range(steps + 2):
        t = time.perf_counter()
        b = batches[k % len(batches)].to(device)  # copying to a GPU is part of a step
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


def time_decoding(model: Seq2Seq, examples, batch: int, beam: int, n_sent: int,
                  bf16: bool = False, device: torch.device = CPU) -> tuple[float, float]:
    """Greedy (beam 1) or beam search over the sources of the first `n_sent` examples, in
    batches of `batch` (sorted by length when batched, as `tandem translate` does), with
    the kernels `model` was prepared with (`tandem.model.fast.prepare`, `quantize_int8`).
    Returns (sentences/s, output tokens/s with EOS counted)."""
    src_all = [e[0] for e in examples[:n_sent]]
    if batch > 1:  # as tandem translates a file: batches of similar length
        src_all.sort(key=len)
    model.eval()
    opts = DecodeConfig(beam=beam, max_len_a=1.0, max_len_b=5)  # up to source length + 5
    scorer = Scorer.from_options(opts)
    out_tokens = 0
    t = time.perf_counter()
    with torch.no_grad(), autocast(bf16, device.type):
        for i in range(0, len(src_all), batch):
            chunk = src_all[i:i + batch]
            src = pad(chunk).to(device)
            lens = torch.tensor([len(s) for s in chunk], device=device)
            hyps = search.run(model, src, lens, opts, scorer)
            out_tokens += sum(len(h[0].tokens) + 1 for h in hyps)
    synchronize(device)
    dt = time.perf_counter() - t
    return len(src_all) / dt, out_tokens / dt


def _peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process, or on a GPU the peak it allocated."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings(quick: bool, steps: int | None = None, sentences: int | None = None
             ) -> tuple[int, int, int]:
    """(timed training steps, sentences decoded at batch 1, sentences decoded at batch 64):
    10 / 24 / 192, or 3 / 8 / 64 with `quick`; `steps` and `sentences` (both counts)
    override them."""
    n_steps = steps if steps is not None else (3 if quick else 10)
    n1, n64 = (8, 64) if quick else (24, 192)
    if sentences is not None:
        n1 = n64 = sentences
    return n_steps, n1, n64


def run(sizes: list[str], quick: bool = False, variants: list[str] | None = None,
        device: str = "cpu", batch_tokens: int = 4000, steps: int | None = None,
        sentences: int | None = None) -> dict:
    """Time every (size, variant): training tokens/s, utilisation of the matmul peak, peak
    memory, greedy and beam 5 search at batch 1 and 64; on the CPU also int8 beam search,
    and for `general` bfloat16 autocast. Returns the report body (rows and workload)."""
    dev = resolve_device(device, "--device")
    gpu = dev.type == "cuda"
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    steps, n1, n64 = settings(quick, steps, sentences)
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
            fast.prepare(model, dev, "train")  # the kernels `tandem train` runs
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
            q = None if gpu else fast.quantize_int8(model)  # a copy, prepared for int8
            fast.prepare(model, dev, "infer")  # the kernels `tandem translate` runs
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
                bf16_model = copy.deepcopy(model)
                fast.prepare(bf16_model, dev, "train", "bf16")
                b_tok_s, b_ms, _ = time_training(bf16_model, examples, batch_tokens, steps,
                                                 bf16=True, device=dev)
                fast.prepare(model, dev, "infer", "bf16")
                sps, _ = time_decoding(model, examples, 64, 5, n64, bf16=True, device=dev)
                row.update(bf16_train_tok_s=round(b_tok_s),
                           bf16_train_speedup=round(b_tok_s / tok_s, 2),
                           bf16_decode_b5_bs64_sent_s=round(sps, 1),
                           bf16_decode_speedup=round(sps / row["decode_b5_bs64_sent_s"], 2))
            rows.append(row)
            print(format_row(row), flush=True)
    machine = {"device": str(dev)}
    if gpu:
        machine["gpu"] = torch.cuda.get_device_name(dev)
    return {"matmul_peak_gflops": round(peak, 1), "threads": threads, **machine,
            "native_bf16": native_bf16(), "rows": rows,
            "workload": {"task": "reverse", "lengths": "5..50", "pairs": len(examples),
                         "batch_tokens": batch_tokens, "avg_src_len": round(avg_src, 1),
                         "timed_steps": steps, "sentences_bs1": n1, "sentences_bs64": n64}}


def format_row(r: dict) -> str:
    """One printed line of a `run` row."""
    return (f"{r['size']:<6} {r['variant']:<14} train {r['train_tok_s']:>7} tok/s "
            f"{r['train_ms_step']:>7} ms/step {r['utilisation'] * 100:5.1f}% peak | greedy bs64 "
            f"{r['decode_b1_bs64_sent_s']:>7} sent/s  beam5 bs64 {r['decode_b5_bs64_sent_s']:>7} "
            f"sent/s  beam5 bs1 {r['decode_b5_bs1_sent_s']:>6} sent/s"
            + (f"  int8 beam5 bs64 {r['int8_speedup_b5_bs64']}x  rss {r['peak_rss_mb']} MB"
               if "peak_rss_mb" in r else f"  gpu memory {r['peak_gpu_mb']} MB")
            + (f"  bf16 train {r['bf16_train_speedup']}x decode {r['bf16_decode_speedup']}x"
               if "bf16_train_speedup" in r else ""))


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), or platform's
    processor string elsewhere. The machine behind a session changes from day to day, so a
    result must say which CPU gave it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    """The machine a result was measured on: platform, CPU, core count, torch, threads."""
    return {"platform": platform.platform(), "processor": cpu_model(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "native_bf16": native_bf16(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def write_result(folder: str | Path, prefix: str, suffix: str, body: dict, command: str
                 ) -> Path:
    """Write `body` as `folder/<prefix>-<date><suffix>.json`, with the command that made it,
    the date and the machine; returns the path. A result file is never overwritten: a second
    run of the same name on the same day gets `-run2` (`-run3`, ...) at the end."""
    date = datetime.date.today().isoformat()
    report = {"command": command, "date": date, "machine": machine(), **body}
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{prefix}-{date}{suffix}.json"
    n = 2
    while path.exists():
        path = Path(folder) / f"{prefix}-{date}{suffix}-run{n}.json"
        n += 1
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def result_suffix(device: str, quick: bool, tag: str) -> str:
    """The end of a speed result's file name: `[-device][-quick][-TAG]`."""
    return (("-" + device.replace(":", "") if device != "cpu" else "")
            + ("-quick" if quick else "") + (f"-{tag}" if tag else ""))


def main(sizes: list[str], quick: bool, out: str, variants: list[str] | None = None,
         device: str = "cpu", batch_tokens: int = 4000, tag: str = "",
         steps: int | None = None, sentences: int | None = None) -> Path:
    """`tandem bench`: time everything `run` lists, write `out/speed-<date><suffix>.json`
    with the command that made it, and return its path."""
    started = time.time()
    res = run(sizes, quick, variants, device, batch_tokens, steps, sentences)
    command = (f"tandem bench --sizes {' '.join(sizes)}" + (" --quick" if quick else "")
               + (f" --variants {' '.join(variants)}" if variants else "")
               + (f" --device {device}" if device != "cpu" else "")
               + (f" --batch-tokens {batch_tokens}" if batch_tokens != 4000 else "")
               + (f" --steps {steps}" if steps is not None else "")
               + (f" --sentences {sentences}" if sentences is not None else "")
               + (f" --tag {tag}" if tag else ""))
    body = {"minutes": round((time.time() - started) / 60, 1), **res}
    path = write_result(out, "speed", result_suffix(device, quick, tag), body, command)
    print(f"matmul peak {res['matmul_peak_gflops']} GFLOP/s on {res['threads']} threads; "
          f"wrote {path}")
    return path
