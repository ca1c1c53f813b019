#!/usr/bin/env python3
"""Side-by-side speed benchmark: tandem vs Joey NMT 2.3 vs OpenNMT-py 3.5 on one matched
attention model (char-level CMUdict G2P, 2-layer biLSTM encoder 2x128, 2-layer LSTM decoder 256).

For each toolkit: train for a fixed number of steps and report training tokens/s
(source + target tokens, measured between the first and the last log line, so start-up,
vocabulary building and the final validation/checkpoint are excluded), then decode the test
words with beam 5, batch 64 sentences, and report sentences/s three ways (the toolkit's own
decode timer, the wall clock of the whole command, and the wall clock minus a 1-sentence
start-up run). Writes JSON with versions, exact commands, threads and every known mismatch.

Standard library only; run it with any Python 3.9+ (the toolkits run in their own venvs):

    python3 prepare_data.py                      # once: writes /work/sbs/data
    python3 run.py                               # full run: 200 steps, 1000 test words
    python3 run.py --smoke --out /tmp/sbs-smoke  # 20 steps, 50 test words

See README.md for the setup of the venvs and the list of mismatches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

TOOLKITS = ("tandem", "joey", "onmt")

# --- what is not the same (also in README.md) ---------------------------------------------

MISMATCHES = {
    "architecture": [
        "Input feeding (each toolkit's default): tandem OFF (decoder RNN runs over the whole "
        "target in one call, attention for all steps in one matmul); Joey ON and OpenNMT-py ON "
        "(attentional vector of step t-1 concatenated to the decoder input at step t, so the "
        "decoder runs step by step during training). This is the largest structural difference "
        "and changes both the arithmetic (decoder layer-1 input 128 vs 128+256) and the "
        "parallelism of training. run.py --tandem-set model.input_feeding=true gives the "
        "input-feeding variant of tandem.",
        "Joey's recurrent decoder runs step by step in training even when input feeding is off; "
        "OpenNMT-py's plain (non-input-feed) RNN decoder is only used with input_feed 0.",
        "Bridge (encoder final state -> decoder initial state): tandem tanh(Linear(256->256)) "
        "per decoder layer from the SAME encoder layer, separately for h and c; Joey "
        "tanh(Linear(256->256)) of the top encoder layer's final h only, copied to both "
        "decoder layers and used for both h and c; OpenNMT-py (bridge: true) one "
        "ReLU(Linear(512->512)) over both layers' states, separately for h and c.",
        "Attention: all three use Luong 'general' (score = h_t^T W k_s, W 256x256, no bias), "
        "softmax over masked source positions, attentional vector tanh(W_c [h_t; c_t]) "
        "(512->256). Joey's W_c has a bias, OpenNMT-py's linear_out has no bias when "
        "attention is 'general' (bias only for 'mlp'), tandem's pre_output has a bias.",
        "Output layer: Joey output_layer has no bias; tandem and OpenNMT-py generators have a "
        "bias.",
        "Source EOS: Joey appends </s> to every source (1 extra encoder step per word); tandem "
        "and OpenNMT-py do not.",
        "Encoder sizes: tandem enc_hidden_size 256 joined (128/direction); Joey hidden_size "
        "is per direction (128); OpenNMT-py enc_hid_size is joined (256, brnn halves it).",
        "Dropout: 0 everywhere (so where each toolkit would apply it does not matter).",
        "Initialisation: tandem PyTorch defaults; Joey xavier_uniform (weights), zeros "
        "(biases); OpenNMT-py uniform(-0.1, 0.1). Irrelevant to speed.",
        "Vocabularies: built by each toolkit from train.*; 27 source + 39 target symbols, plus "
        "specials (tandem and Joey 4 each: <unk> <pad> <s> </s>; OpenNMT-py 4 too).",
    ],
    "batching": [
        "Batch semantics: tandem train.batch_tokens=4000 means B * max(src_len, tgt_len + 2) "
        "<= 2000 (padded length of the longer side, both sides counted: 4000/2); the batch is "
        "closed BEFORE it would exceed the budget. Joey batch_size=2000 (batch_type token): "
        "B * max(src_len + 1, tgt_len + 1) >= 2000 closes the batch, i.e. a batch goes just "
        "OVER 2000. OpenNMT-py batch_size=2000 (batch_type tokens): B * max(src_len, "
        "tgt_len + 2) >= 2000 closes the batch; the example that overflows is carried to the "
        "next batch (so <= 2000, like tandem).",
        "Length bucketing: tandem shuffles, sorts within chunks of ~100 batches, shuffles the "
        "batches (little padding); OpenNMT-py bucket_size 262144 > corpus, so the whole "
        "corpus is sorted by length and the batches shuffled (little padding); Joey 2.3 has "
        "NO bucketing (random sentences per batch, more padding: fewer real tokens per batch "
        "for the same budget).",
        "Real (unpadded) src+tgt tokens per step in the 20-step smoke runs: tandem ~3,220, "
        "OpenNMT-py ~3,440, Joey ~1,850 (estimated; no bucketing = much padding). Compare "
        "tokens/s, not steps/s.",
        "OpenNMT-py skips an example whose source string is already in the current training "
        "batch (dynamic_iterator batch_iter 'seen' set): CMUdict pronunciation variants of "
        "one word that land in the same batch are silently dropped. 6,601 of the 113,438 lines "
        "of the train file (5.8%) are second or later variants of a word; since OpenNMT-py "
        "sorts its bucket by length, variants of equal length usually share a batch, so up "
        "to ~6% of the examples (and their tokens) are skipped. The dropped examples are not "
        "counted in its tokens/s.",
        "Gradient normalisation: all by target tokens (tandem token mean, Joey "
        "normalization tokens, OpenNMT-py normalization tokens). Adam lr 1e-3, constant, "
        "grad-norm clipping 1.0, no label smoothing: the same.",
        "Data loading: tandem in-process; Joey num_workers 0; OpenNMT-py num_workers 0 (its "
        "default is 2 worker processes, which compete for the 2 cores).",
    ],
    "token_counting": [
        "tokens = real (unpadded) source tokens + target tokens incl. </s>, excl. <s>: tandem "
        "counts exactly this (scalars.csv train/tokens_per_s); OpenNMT-py counts exactly this "
        "(log 'bsz: src/tgt/sents' per batch x report_every batches); Joey logs TARGET tokens "
        "only (phonemes + </s>), so run.py scales them by (1 + S/T) with S/T the corpus ratio "
        "of source letters to target tokens incl. </s> (train.* in stats.json): an estimate "
        "(its error over 150 steps x ~200 random words is well under 1%).",
        "Timed window: from the log line at step L (default 50) to the one at the last step "
        "(200), using the log lines' own clocks (tandem scalars.csv elapsed_s; Joey and "
        "OpenNMT-py log timestamps). No validation falls inside the window.",
    ],
    "decoding": [
        "Beam 5, 1-best, batches of 64 sentences for all. Length normalisation: tandem score / "
        "length (length_penalty 1.0) = OpenNMT-py 'avg'; Joey only has GNMT "
        "((5+len)/6)^alpha, alpha 1.0.",
        "Max output length: tandem 1.5 * src_len + 5 (per sentence); OpenNMT-py min(100, "
        "1.5 * longest source in the batch + 5); Joey 1.5 * longest source (incl. </s>) in "
        "the batch.",
        "Batch order: tandem sorts the input by length before batching (restoring the order "
        "afterwards); OpenNMT-py sorts within its decoding bucket; Joey batches in file order "
        "(sentence batches, no sorting), so more padding.",
        "After only 200 training steps the models are weak; decoding time depends on how long "
        "the hypotheses are (finished beams stop early), so run.py records the mean "
        "hypothesis length and the exact-match accuracy next to each speed.",
        "Beam search stopping: tandem and OpenNMT-py stop a sentence when its beam has "
        "finished; Joey the same (per batch, sentences drop out when n_best are done).",
    ],
}


# --- helpers ---------------------------------------------------------------------------------


def sh(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def run(cmd: list[str], log: Path, env: dict, stdin: Path | None = None,
        stdout: Path | None = None, nice: int = 0) -> tuple[float, int, str]:
    """Run cmd, stdout+stderr to log (stdout to `stdout` when given); return (wall seconds,
    exit code, log text)."""
    full = (["nice", "-n", str(nice)] if nice else []) + cmd
    print(f"$ {sh(full)}" + (f" < {stdin}" if stdin else "") + (f" > {stdout}" if stdout else ""),
          flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
        fout = open(stdout, "wb") if stdout else out
        try:
            p = subprocess.run(full, stdout=fout, stderr=out if stdout else subprocess.STDOUT,
                               env=env, stdin=fin)
        finally:
            if stdin:
                fin.close()
            if stdout:
                fout.close()
    wall = time.perf_counter() - t0
    text = log.read_text(encoding="utf-8", errors="replace")
    if p.returncode:
        print(f"  exit code {p.returncode}; last lines of {log}:\n" +
              "\n".join(text.splitlines()[-15:]), flush=True)
    return wall, p.returncode, text


def substitute(template: Path, dest: Path, values: dict[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    for k, v in values.items():
        text = text.replace(f'"@{k}@"', v if k == "STEPS" else json.dumps(v))
        text = text.replace(f"@{k}@", v)
    dest.write_text(text, encoding="utf-8")
    return text


def pip_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys, torch; d={n: m.version(n) for n in "
            f"{names!r}}}; d['torch.__version__']=torch.__version__; "
            "d['torch_num_threads_default']=torch.get_num_threads(); print(json.dumps(d))")
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                             env=ENV, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def read_lines(p: Path) -> list[str]:
    return p.read_text(encoding="utf-8").splitlines()


def accuracy(hyp: Path, ref: Path) -> dict:
    h, r = read_lines(hyp), read_lines(ref)
    n = min(len(h), len(r))
    norm = [" ".join(x.split()) for x in h]
    return {"hyp_lines": len(h), "ref_lines": len(r),
            "exact_match_first_ref": sum(norm[i] == " ".join(r[i].split()) for i in range(n))
            / max(n, 1),
            "mean_hyp_tokens": sum(len(x.split()) for x in h) / max(len(h), 1)}


def window(points: list[tuple[int, float, float]], first: int) -> dict:
    """points: (step, clock seconds, tokens in the interval ending at step). Tokens/s over
    the steps after `first` up to the last point."""
    pts = sorted(points)
    start = [p for p in pts if p[0] == first]
    if not start or pts[-1][0] <= first:
        return {"error": f"no log points after step {first}: {pts}"}
    t0 = start[0][1]
    inside = [p for p in pts if p[0] > first]
    seconds = inside[-1][1] - t0
    tokens = sum(p[2] for p in inside)
    return {"from_step": first, "to_step": inside[-1][0], "seconds": round(seconds, 3),
            "tokens": round(tokens), "tokens_per_s": round(tokens / seconds, 1)
            if seconds > 0 else None,
            "steps_per_s": round((inside[-1][0] - first) / seconds, 3) if seconds > 0 else None}


TS = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


def clock(line: str) -> float | None:
    m = TS.search(line)
    if not m:
        return None
    t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    return t.timestamp() + int(m.group(2)) / 1000


def stage(a, rec: dict, name: str, cmd: list[str], log: Path,
          params: str | None = None) -> str | None:
    """Run one stage (vocab, train) of a toolkit and record `<name>_cmd`, `<name>_wall_s`,
    `<name>_rc`, and `parameters` read from the log with the regex `params`; returns the log
    text, or None when the command failed."""
    wall, rc, text = run(cmd, log, ENV, nice=a.nice)
    rec[f"{name}_cmd"], rec[f"{name}_wall_s"], rec[f"{name}_rc"] = sh(cmd), round(wall, 2), rc
    if params is not None:
        m = re.search(params, text)
        rec["parameters"] = int(m.group(1).replace(",", "")) if m else None
    return None if rc else text


# --- the three toolkits ----------------------------------------------------------------------


def tandem(a, run_dir: Path, rec: dict) -> None:
    exe = Path(a.tandem_venv) / "bin" / "tandem"
    cfg = HERE / "tandem.yaml"
    sets = [f"run_dir={run_dir}", f"data.train={a.data}/train", f"data.dev={a.dev}",
            f"train.max_steps={a.steps}", f"train.log_every={a.log_every}",
            f"train.threads={a.threads}", *a.tandem_set]
    cmd = [str(exe), "train", str(cfg), "--overwrite"] + [x for s in sets for x in ("--set", s)]
    if stage(a, rec, "train", cmd, run_dir.parent / "tandem-train.log",
             r"model: ([\d,]+) parameters") is None:
        return
    import csv

    rows = list(csv.reader(open(run_dir / "scalars.csv", encoding="utf-8")))
    pts, prev = [], 0.0
    for r in rows[1:]:
        if r[2] == "train/tokens_per_s":
            step, el, rate = int(r[0]), float(r[1]), float(r[3])
            pts.append((step, el, rate * (el - prev)))
            prev = el
    rec["train"] = window(pts, a.log_every)
    rec["train"]["token_count"] = "exact: real src tokens + tgt tokens incl. </s> (scalars.csv)"

    def decode(src: Path, hyp: Path, log: Path):
        cmd = [str(exe), "translate", "--model", str(run_dir / "last.pt"), "--beam", str(a.beam),
               "--batch-size", str(a.decode_batch), "--device", "cpu", "--input", str(src),
               "--output", str(hyp)]
        return cmd, *run(cmd, log, ENV, nice=a.nice)

    own = lambda text: float(re.search(r"translated \d+ lines in ([\d.]+) s",  # noqa: E731
                                       text).group(1))
    decode_all(a, run_dir, rec, decode, own)
    # the same checkpoint exported (float32 and int8) and decoded by the lean runtime
    for key, extra in (("decode_runtime", []), ("decode_runtime_int8", ["--quantize", "int8"])):
        folder = run_dir / ("export" + ("_int8" if extra else ""))
        cmd = [str(exe), "export", "--model", str(run_dir / "last.pt"), "--out", str(folder),
               "--overwrite", *extra]
        wall, rc, _ = run(cmd, run_dir.parent / f"tandem-{key}-export.log", ENV, nice=a.nice)
        rec[f"{key}_export_cmd"], rec[f"{key}_export_rc"] = sh(cmd), rc
        if rc:
            continue

        def decode_export(src: Path, hyp: Path, log: Path, folder=folder):
            cmd = [str(exe), "translate", "--model", str(folder), "--beam", str(a.beam),
                   "--batch-size", str(a.decode_batch), "--input", str(src),
                   "--output", str(hyp)]
            return cmd, *run(cmd, log, ENV, nice=a.nice)

        decode_all(a, run_dir, rec, decode_export, own, key=key)


def joey(a, run_dir: Path, rec: dict) -> None:
    py = Path(a.joey_venv) / "bin" / "python"
    cfg = run_dir.parent / "joey-effective.yaml"
    substitute(HERE / "joey.yaml", cfg, {"DATA": a.data, "RUN": str(run_dir),
                                         "STEPS": str(a.steps), "DEV": a.dev})
    text = cfg.read_text(encoding="utf-8").replace("logging_freq: 50",
                                                   f"logging_freq: {a.log_every}")
    cfg.write_text(text, encoding="utf-8")
    rec["effective_config"] = str(cfg)
    cmd = [str(py), "-m", "joeynmt", "train", str(cfg), "--skip-test"]
    text = stage(a, rec, "train", cmd, run_dir.parent / "joey-train.log",
                 r"Total params: *([\d,]+)")
    if text is None:
        return
    stats = json.loads((Path(a.data) / "stats.json").read_text())["train"]
    ratio = stats["src_tokens"] / (stats["tgt_tokens"] + stats["lines"])
    pts, prev = [], None
    for line in text.splitlines():
        m = re.search(r"Step:\s+(\d+),.*Tokens per Sec:\s+([\d.]+)", line)
        if m and clock(line) is not None:
            t = clock(line)
            step, rate = int(m.group(1)), float(m.group(2))
            pts.append((step, t, rate * (t - prev) * (1 + ratio) if prev is not None else 0.0))
            prev = t
    rec["train"] = window(pts, a.log_every)
    rec["train"]["token_count"] = (f"estimated: Joey's target tokens/s x (1 + {ratio:.4f}) "
                                   "(corpus source/target token ratio)")

    def decode(src: Path, hyp: Path, log: Path):
        # no -o: Joey 2.3's translate() crashes after decoding when given an output path
        # (save_hypothese(..., args.n_best): BaseConfig has no n_best); hypotheses go to stdout
        cmd = [str(py), "-m", "joeynmt", "translate", str(cfg)]
        return cmd, *run(cmd, log, ENV, stdin=src, stdout=hyp, nice=a.nice)

    decode_all(a, run_dir, rec, decode,
               lambda text: float(re.search(r"Generation took ([\d.]+)\[sec\]", text).group(1)),
               stdin=True)


def onmt(a, run_dir: Path, rec: dict) -> None:
    bindir = Path(a.onmt_venv) / "bin"
    cfg = run_dir.parent / "onmt-effective.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    substitute(HERE / "onmt.yaml", cfg, {"DATA": a.data, "RUN": str(run_dir),
                                         "STEPS": str(a.steps), "DEV": a.dev})
    text = cfg.read_text(encoding="utf-8").replace("report_every: 50",
                                                   f"report_every: {a.log_every}")
    cfg.write_text(text, encoding="utf-8")
    rec["effective_config"] = str(cfg)
    cmd = [str(bindir / "onmt_build_vocab"), "-config", str(cfg), "-n_sample", "-1"]
    if stage(a, rec, "vocab", cmd, run_dir.parent / "onmt-vocab.log") is None:
        return
    cmd = [str(bindir / "onmt_train"), "-config", str(cfg)]
    text = stage(a, rec, "train", cmd, run_dir.parent / "onmt-train.log",
                 r"number of parameters: *(\d+)")
    if text is None:
        return
    pts = []
    for line in text.splitlines():
        m = re.search(r"Step\s+(\d+)/\s*\d+;.*bsz:\s*([\d.]+)/\s*([\d.]+)/\s*([\d.]+);", line)
        if m and clock(line) is not None:
            step = int(m.group(1))
            n_batches = a.log_every  # accum_count 1: one batch per step
            pts.append((step, clock(line),
                        (float(m.group(2)) + float(m.group(3))) * n_batches))
    rec["train"] = window(pts, a.log_every)
    rec["train"]["token_count"] = ("exact up to rounding: (mean src + mean tgt tokens per batch, "
                                   "'bsz' in the log) x batches")
    model = run_dir / f"model_step_{a.steps}.pt"

    def decode(src: Path, hyp: Path, log: Path):
        cmd = [str(bindir / "onmt_translate"), "-model", str(model), "-src", str(src),
               "-output", str(hyp), "-beam_size", str(a.beam), "-batch_size",
               str(a.decode_batch), "-batch_type", "sents", "-max_length", "100",
               "-max_length_ratio", "1.5", "-length_penalty", "avg", "-alpha", "1.0",
               "-gpu", "-1", "-report_time"]
        # OpenNMT-py 3.5 calls torch.load(ckpt) without weights_only; torch >= 2.6 defaults to
        # weights_only=True and refuses the checkpoint (it holds an argparse.Namespace).
        # torch's documented escape hatch restores the old default for this command only.
        env = dict(ENV, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
        return cmd, *run(cmd, log, env, nice=a.nice)

    def own(text: str) -> float:
        n = re.search(r"Average translation time \(ms\): ([\d.]+)", text)
        return float(n.group(1)) / 1000 * a.n_test

    decode_all(a, run_dir, rec, decode, own)


def decode_all(a, run_dir: Path, rec: dict, decode, own_seconds, stdin: bool = False,
               key: str = "decode") -> None:
    src = Path(a.test) .with_suffix(".src")
    ref = Path(a.test).with_suffix(".tgt")
    one = run_dir.parent / "one.src"
    one.write_text(read_lines(src)[0] + "\n", encoding="utf-8")
    name = rec["toolkit"] + key.removeprefix("decode")
    # start-up: the same command on a single sentence (loads python, torch, the model)
    cmd1, wall1, rc1, _ = decode(one, run_dir.parent / f"{name}-one.hyp",
                                 run_dir.parent / f"{name}-decode-one.log")
    hyp = run_dir.parent / f"{name}-test.hyp"
    cmd, wall, rc, text = decode(src, hyp, run_dir.parent / f"{name}-decode.log")
    redir = (lambda s, h: f" < {s} > {h}") if stdin else (lambda s, h: "")
    d = {"cmd": ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 " if name == "onmt" else "") + sh(cmd)
         + redir(src, hyp), "rc": rc, "sentences": a.n_test,
         "wall_s": round(wall, 3),
         "startup_cmd": ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 " if name == "onmt" else "")
         + sh(cmd1) + redir(one, run_dir.parent / f"{name}-one.hyp"),
         "startup_wall_s": round(wall1, 3), "startup_rc": rc1}
    if rc == 0:
        try:
            d["own_timer_s"] = round(own_seconds(text), 3)
            d["sent_per_s_own_timer"] = round(a.n_test / d["own_timer_s"], 2)
        except (AttributeError, ValueError, ZeroDivisionError) as e:
            d["own_timer_error"] = repr(e)
        d["sent_per_s_wall"] = round(a.n_test / wall, 2)
        if rc1 == 0 and wall > wall1:
            d["sent_per_s_wall_minus_startup"] = round(a.n_test / (wall - wall1), 2)
        d.update(accuracy(hyp, ref))
    rec[key] = d


# --- main ------------------------------------------------------------------------------------

ENV: dict = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toolkits", nargs="+", default=list(TOOLKITS), choices=TOOLKITS)
    ap.add_argument("--data", default="/work/sbs/data", help="prepare_data.py's output")
    ap.add_argument("--work", default="/work/sbs/runs", help="run folders and logs go here")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"),
                    help="folder for sidebyside-<date>.json")
    ap.add_argument("--tag", default="", help="appended to the result's file name "
                    "(sidebyside-<date>-TAG.json), so a second run on one day keeps the first")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=50,
                    help="log interval; the timed window is (log_every, steps]")
    ap.add_argument("--test-words", type=int, default=1000, help="test<N>.src/.tgt in --data")
    ap.add_argument("--dev", help="dev file prefix (default DATA/dev500)")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nice", type=int, default=0, help="run every command under nice -n N")
    ap.add_argument("--smoke", action="store_true",
                    help="20 steps, log every 10, 50 test words, dev = test50")
    ap.add_argument("--tandem-venv", default=str(REPO / ".venv"))
    ap.add_argument("--joey-venv", default="/work/sbs/joey")
    ap.add_argument("--onmt-venv", default="/work/sbs/onmt")
    ap.add_argument("--tandem-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra tandem --set overrides, e.g. model.input_feeding=true")
    a = ap.parse_args()
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", a.tag):
        ap.error(f"--tag {a.tag!r}: part of a file name, so letters, digits, '_', '.', '-' only")
    if a.smoke:
        a.steps, a.log_every, a.test_words = 20, 10, 50
    if a.steps % a.log_every or a.steps < 2 * a.log_every:
        ap.error("--steps must be a multiple of --log-every and at least twice it")
    a.dev = a.dev or (f"{a.data}/test50" if a.smoke else f"{a.data}/dev500")
    a.test = f"{a.data}/test{a.test_words}"
    a.n_test = len(read_lines(Path(a.test + ".src")))

    ENV.update(os.environ)
    ENV.update({"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
                "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                "CUDA_VISIBLE_DEVICES": ""})
    ENV.pop("PYTHONPATH", None)

    stamp = dt.datetime.now().strftime("%Y-%m-%d")
    work = Path(a.work) / (dt.datetime.now().strftime("%Y%m%d-%H%M%S") +
                           ("-smoke" if a.smoke else ""))
    work.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "sidebyside: tandem vs Joey NMT vs OpenNMT-py, matched char-level G2P "
                     "attention model (CMUdict g014b2b)",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "smoke": a.smoke, "machine": {"platform": platform.platform(),
                                      "cpus": os.cpu_count(),
                                      "load_avg_at_start": os.getloadavg()},
        "threads": {"OMP_NUM_THREADS": a.threads, "MKL_NUM_THREADS": a.threads,
                    "tandem": f"train.threads={a.threads}; translate: torch default "
                              "(= OMP_NUM_THREADS)",
                    "joey": "torch default (= OMP_NUM_THREADS)",
                    "onmt": "torch default (= OMP_NUM_THREADS)"},
        "settings": {"steps": a.steps, "timed_window": f"steps ({a.log_every}, {a.steps}]",
                     "beam": a.beam, "decode_batch_sentences": a.decode_batch,
                     "test": a.test, "test_sentences": a.n_test, "dev": a.dev,
                     "data": a.data, "nice": a.nice, "tandem_set": a.tandem_set,
                     "model": "emb 128, biLSTM encoder 2 layers 2x128, LSTM decoder 2 layers "
                              "256, Luong general attention, dropout 0, Adam 1e-3, clip 1.0",
                     "batch": "tandem batch_tokens 4000 (= 2000 per side); Joey batch_size "
                              "2000 token; OpenNMT-py batch_size 2000 tokens"},
        "work_dir": str(work), "command": sh([sys.executable, *sys.argv]),
        "versions": {}, "toolkits": {}, "mismatches": MISMATCHES,
    }
    try:
        result["versions"]["tandem_git"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
            text=True).stdout.strip()
    except OSError:
        pass
    venvs = {"tandem": (a.tandem_venv, ["tandem"]), "joey": (a.joey_venv, ["joeynmt"]),
             "onmt": (a.onmt_venv, ["OpenNMT-py", "ctranslate2"])}
    fns = {"tandem": tandem, "joey": joey, "onmt": onmt}
    for name in a.toolkits:
        venv, pkgs = venvs[name]
        result["versions"][name] = pip_versions(Path(venv) / "bin" / "python", pkgs)
        result["versions"][name]["python"] = subprocess.run(
            [str(Path(venv) / "bin" / "python"), "-V"], capture_output=True,
            text=True).stdout.strip()
        rec = {"toolkit": name}
        result["toolkits"][name] = rec
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            fns[name](a, work / name, rec)
        except Exception as e:  # noqa: BLE001 - record it and go on with the next toolkit
            rec["error"] = repr(e)
            print(f"  {name} failed: {e!r}", flush=True)
        rec["total_wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: rec.get(k) for k in ("train", "decode", "decode_runtime",
                                                  "decode_runtime_int8", "parameters",
                                                  "error")}, indent=1), flush=True)
    onmt_rate = result["toolkits"].get("onmt", {}).get("decode", {}).get(
        "sent_per_s_wall_minus_startup")
    if onmt_rate:
        result["over_onmt_wall_minus_startup"] = {
            f"tandem{k.removeprefix('decode')}": round(d["sent_per_s_wall_minus_startup"]
                                                       / onmt_rate, 3)
            for k, d in result["toolkits"].get("tandem", {}).items()
            if k.startswith("decode") and isinstance(d, dict)
            and d.get("sent_per_s_wall_minus_startup")}
        print(json.dumps(result["over_onmt_wall_minus_startup"]), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"-{a.tag}" if a.tag else ""
    path = out / f"sidebyside-{stamp}{'-smoke' if a.smoke else ''}{tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
