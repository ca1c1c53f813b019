"""Data-parallel training and streaming, measured: `tandem train` of the `base`
bench model (2x512 biLSTM encoder, 2x512 LSTM decoder, general attention; reverse task,
lengths 5..50, 4,000-token batches) with 1 process x T threads against N ranks x T/N threads;
gloo all-reduce of the model's gradient on its own; a streamed run over a generated corpus of
several GB (peak RSS, time to the first step, tokens/s, time waiting for batches) and a read of
the whole corpus through the stream's buffer.

    python benchmarks/speed/distributed.py --layouts 1x2 2x1 --runs 3
    python benchmarks/speed/distributed.py --stream-gb 5 --stream-minutes 3     # needs the disk
    python benchmarks/speed/distributed.py --layouts 1x16 2x8 4x4 8x2 16x1      # a 16-core machine

Every timed run is a real `tandem train` in its own process group, timed from its
scalars.csv (tokens/s of the log intervals after the first two, median); the JSON goes to
benchmarks/results/distributed-DATE[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import watched, write_report

ENV = dict(os.environ)  # what every timed run sees (--env adds to it)


def base_config(run: Path, steps: int, data: dict | None = None) -> dict:
    """The bench's `base` model, general attention, as a training config."""
    return {
        "name": run.name, "run_dir": str(run),
        "data": data or {"task": "reverse", "task_sizes": [20000, 100, 100],
                         "task_min_len": 5, "task_max_len": 50},
        "model": {"cell": "lstm", "emb_size": 256, "hidden_size": 512, "enc_layers": 2,
                  "dec_layers": 2, "bidirectional": True, "dropout": 0.0,
                  "attention": "general"},
        "train": {"batch_tokens": 4000, "max_steps": steps, "log_every": 5,
                  "valid_every": 10**6, "valid_metric": "loss", "progress": False,
                  "tensorboard": False, "keep_last": 0},
    }


def tokens_per_s(run: Path, skip: int = 2) -> float:
    """Median train/tokens_per_s of a run's log intervals after the first `skip`."""
    from tandem.train.scalars import read

    values = [v for _, v in read(run / "scalars.csv")["train/tokens_per_s"]][skip:]
    return statistics.median(values)


def train_layout(tmp: Path, nproc: int, threads: int, steps: int, tag: str) -> dict:
    """One `tandem train` of the base model with `nproc` ranks of `threads` threads."""
    run = tmp / f"{tag}-{nproc}x{threads}"
    shutil.rmtree(run, ignore_errors=True)
    raw = base_config(run, steps)
    raw["train"]["threads"] = threads
    cfg = tmp / f"{run.name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "tandem", "train", str(cfg)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.time()
    p, peak, _ = watched(cmd, ENV)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return {"ranks": nproc, "threads_per_rank": threads, "steps": steps,
            "train_tok_s": round(tokens_per_s(run)), "wall_s": round(time.time() - t0, 1),
            # the launcher's own peak: with ranks, torchrun's (the workers are its children)
            "peak_rss_mb": round(peak) if nproc == 1 else None}


ALLREDUCE_WORKER = """
import json, os, statistics, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
torch.set_num_threads(int(sys.argv[2]))
t = torch.ones(int(sys.argv[1]))
times = []
for i in range(8):
    dist.barrier()
    t0 = time.perf_counter()
    dist.all_reduce(t)
    times.append(time.perf_counter() - t0)
if dist.get_rank() == 0:
    print(json.dumps({"allreduce_ms": round(1000 * statistics.median(times[2:]), 2)}))
dist.destroy_process_group()
"""


def allreduce_ms(tmp: Path, numel: int, nproc: int, threads: int) -> float:
    """Median time of one gloo all-reduce of `numel` float32 over `nproc` local ranks."""
    script = tmp / "allreduce_worker.py"
    script.write_text(ALLREDUCE_WORKER)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={nproc}", str(script), str(numel), str(threads)],
                       capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])["allreduce_ms"]


# --- a corpus larger than memory -------------------------------------------------------------


def write_corpus(path: Path, gigabytes: float, seed: int = 1) -> dict:
    """A reverse-task TSV of about `gigabytes` GB: 64 distinct blocks of random lines
    (lengths 5..50) written in a seeded random order until the size is reached (generating
    every line afresh would take Python longer than the run; the stream sees distinct pools
    all the same, as pools span blocks at shifting offsets)."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(64):
        lines = []
        for _ in range(40000):
            s = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 50)))
            lines.append(f"{s}\t{s[::-1]}\n")
        blocks.append("".join(lines).encode())
    target, written, t0 = int(gigabytes * 1e9), 0, time.time()
    with open(path, "wb") as f:
        while written < target:
            b = blocks[rng.randrange(64)]
            f.write(b)
            written += len(b)
    return {"bytes": written, "lines": written // (len(blocks[0]) // 40000),
            "write_s": round(time.time() - t0, 1)}


def streamed_run(tmp: Path, corpus: Path, minutes: float, buffer: int) -> dict:
    """`tandem train` with data.streaming over `corpus` for `minutes`, then a resume of it
    (a seek to the saved position): peak RSS, seconds to the first logged step, tokens/s."""
    run = tmp / "streamed"
    shutil.rmtree(run, ignore_errors=True)
    raw = base_config(run, 10**6, {"train": str(corpus), "streaming": True,
                                   "shuffle_buffer": buffer, "vocab_sample_lines": 100000})
    raw["train"]["max_minutes"] = minutes
    cfg = tmp / "streamed.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = {}
    for phase, cmd in (("first", ["train", str(cfg)]),
                       ("resumed", ["train", "--resume", str(run), "--set",
                                    f"train.max_minutes={minutes + 1}"])):
        t0 = time.time()
        p, peak, _ = watched([sys.executable, "-m", "tandem", *cmd], ENV)
        if p.returncode:
            raise SystemExit(p.stderr[-3000:])
        log = (run / "train.log").read_text().splitlines()
        out[phase] = {"wall_s": round(time.time() - t0, 1), "peak_rss_mb": round(peak),
                      "wait_line": next((x.split(" ", 3)[-1] for x in reversed(log)
                                         if "waiting for batches" in x), None)}
    from tandem import checkpoint

    ck = checkpoint.load(run / "last.pt")
    out["position"] = ck["stream_position"]
    out["steps"] = ck["train_state"]["step"]
    out["train_tok_s"] = round(tokens_per_s(run))
    return out


READ_ALL = """
import json, resource, sys, time
from tandem.data.streaming import PairStream
s, t0, n = PairStream(sys.argv[1]), time.time(), 0
for _, pairs in s.pools(int(sys.argv[2])):
    n += len(pairs)
print(json.dumps({"pairs": n, "read_s": round(time.time() - t0, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def read_everything(corpus: Path, buffer: int) -> dict:
    """Every pair of the corpus through the stream's buffer (no training): time and peak RSS."""
    p = subprocess.run([sys.executable, "-c", READ_ALL, str(corpus), str(buffer)],
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layouts", nargs="*", default=["1x2", "2x1"],
                   help="RANKSxTHREADS of each timed training (default 1x2 2x1)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per layout (median)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--stream-gb", type=float, default=0, help="size of the streamed corpus")
    p.add_argument("--stream-minutes", type=float, default=3.0)
    p.add_argument("--buffer", type=int, default=100000, help="data.shuffle_buffer")
    p.add_argument("--tmp", default="/tmp/tandem-distributed")
    p.add_argument("--keep-corpus", action="store_true")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of every timed run, e.g. "
                   "ONEDNN_PRIMITIVE_CACHE_CAPACITY=64")
    p.add_argument("--tag", default="")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    ENV.update(x.split("=", 1) for x in a.env)
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    body: dict = {"env": a.env, "model": "base, general attention (benchmarks: tandem bench SIZES)",
                  "workload": "reverse, lengths 5..50, 20,000 pairs, batch_tokens 4000",
                  "layouts": []}
    params = None
    for layout in a.layouts:
        nproc, threads = (int(x) for x in layout.split("x"))
        runs = [train_layout(tmp, nproc, threads, a.steps, f"r{i}") for i in range(a.runs)]
        row = {"layout": layout, "ranks": nproc, "threads_per_rank": threads,
               "train_tok_s": statistics.median(r["train_tok_s"] for r in runs),
               "runs_tok_s": [r["train_tok_s"] for r in runs],
               "peak_rss_mb": [r["peak_rss_mb"] for r in runs]}
        body["layouts"].append(row)
        print(json.dumps(row), flush=True)
    if body["layouts"]:
        one = next((r for r in body["layouts"] if r["ranks"] == 1), None)
        for r in body["layouts"]:
            if one is not None:
                r["speedup_vs_1_rank"] = round(r["train_tok_s"] / one["train_tok_s"], 3)
        from tandem.config import ModelConfig
        from tandem.model.seq2seq import Seq2Seq

        raw = base_config(tmp / "x", 1)["model"]
        params = sum(x.numel() for x in Seq2Seq(ModelConfig(**raw), 30, 30).parameters())
        body["params"] = params
        body["gradient_mb"] = round(params * 4 / 1e6, 1)
        ranks = sorted({r["ranks"] for r in body["layouts"] if r["ranks"] > 1})
        body["gloo_allreduce_ms"] = {
            str(n): allreduce_ms(tmp, params, n, max(1, (os.cpu_count() or 2) // n))
            for n in ranks}
    if a.stream_gb:
        corpus = tmp / "corpus.tsv"
        body["corpus"] = write_corpus(corpus, a.stream_gb)
        print(json.dumps(body["corpus"]), flush=True)
        body["streamed"] = streamed_run(tmp, corpus, a.stream_minutes, a.buffer)
        body["streamed"]["buffer"] = a.buffer
        print(json.dumps(body["streamed"]), flush=True)
        body["read_everything"] = read_everything(corpus, a.buffer)
        print(json.dumps(body["read_everything"]), flush=True)
        if not a.keep_corpus:
            corpus.unlink()
    path = write_report(a.results, "distributed", f"-{a.tag}" if a.tag else "", body)
    print(path)


if __name__ == "__main__":
    main()
