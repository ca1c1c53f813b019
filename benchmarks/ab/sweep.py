"""Train several variants of one config side by side and collect their validation curves.

    python benchmarks/ab/sweep.py configs/g2p_cmudict.yaml --out runs/sweep-g2p --parallel 4 \\
        --device cuda --set train.max_minutes=null --set train.max_steps=8000 \\
        base: dec2:model.dec_layers=2 wide:model.hidden_size=512;model.emb_size=256

Each VARIANT is `name:key=value;key=value` (overrides as for `tandem train --set`; `name:`
alone is the config as it is). Each variant trains in OUT/<name> with `tandem train`, its log
in OUT/<name>.log; up to --parallel run at once (on one GPU several small models run at
nearly full speed each, as each is bound by kernel launches; on a 2-core CPU use 1).
Writes OUT/sweep.json: per variant, its overrides, steps, wall time, steps per minute, the
best validation and every validation row. With --keep-checkpoints off (the default) the
variants' *.pt files are deleted after the run, so a sweep leaves only logs and curves.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tandem.errors import ConfigError
from tandem.metrics import higher_is_better
from tandem.train.scalars import read_validations


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, rest = text.partition(":")
    if not sep or not name or "/" in name:
        raise SystemExit(f"variant {text!r}: expected NAME:key=value;key=value (NAME without '/')")
    overrides = [x for x in rest.split(";") if x.strip()]
    for o in overrides:
        if "=" not in o:
            raise SystemExit(f"variant {name!r}: override {o!r} is not key=value")
    return name, overrides


def command(config: str, run_dir: Path, overrides: list[str], device: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "tandem.cli", "train", config, "--overwrite",
           "--set", f"run_dir={run_dir}", "--set", "train.progress=false"]
    for o in overrides:
        cmd += ["--set", o]
    if device:
        cmd += ["--device", device]
    return cmd


def summarise(name: str, overrides: list[str], run_dir: Path, wall_s: float, rc: int,
              metric: str | None) -> dict:
    """One variant's record. `metric` picks the best validation (its direction from
    tandem.metrics); None = the first of seq_error_rate, exact_match, bleu the run logged."""
    rows = read_validations(run_dir)
    out = {"name": name, "overrides": overrides, "exit_code": rc, "wall_s": round(wall_s, 1),
           "validations": rows}
    if not rows:
        return out
    last = rows[-1]
    out["steps"] = last.get("step")
    if last.get("elapsed_s"):
        out["steps_per_min"] = round(60 * last["step"] / last["elapsed_s"], 1)
    metric = metric or next((m for m in ("seq_error_rate", "exact_match", "bleu") if m in last),
                            None)
    scored = [r for r in rows if metric in r]
    if scored:
        pick = max if higher_is_better(metric) else min
        best = pick(scored, key=lambda r: r[metric])
        out["best"] = {"step": best["step"], metric: best[metric],
                       "elapsed_s": best.get("elapsed_s")}
    return out


@dataclass
class Running:
    name: str
    overrides: list[str]
    proc: subprocess.Popen
    started: float
    log: IO[str]


def _interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # `timeout` signals the whole group
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config")
    p.add_argument("variants", nargs="+", metavar="NAME:K=V;K=V")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--set", action="append", default=[], dest="common",
                   help="an override for every variant")
    p.add_argument("--metric", default=None,
                   help="validation column that picks each variant's best (default: the "
                        "first of seq_error_rate, exact_match, bleu present)")
    p.add_argument("--keep-checkpoints", action="store_true")
    a = p.parse_args(argv)
    if a.metric:
        try:
            higher_is_better(a.metric)
        except ConfigError as e:  # an unknown metric, refused before any training
            raise SystemExit(f"--metric: {e}") from None
    variants = [parse_variant(v) for v in a.variants]
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise SystemExit(f"variant names must differ: {names}")
    a.out.mkdir(parents=True, exist_ok=True)
    # On SIGTERM (e.g. `timeout`), stop the variants still training and record their
    # curves so far, instead of losing them.
    signal.signal(signal.SIGTERM, _interrupt)
    pending = list(variants)
    running: list[Running] = []
    results: list[dict] = []
    try:
        _loop(a, pending, running, results)
    except KeyboardInterrupt:
        print("interrupted: stopping", [r.name for r in running], flush=True)
        for r in running:
            r.proc.terminate()
        for r in running:
            r.proc.wait()
        _loop(a, [], running, results)
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


def _loop(a, pending: list, running: list[Running], results: list[dict]) -> None:
    """Start variants up to --parallel at a time; record each as it ends."""
    while pending or running:
        while pending and len(running) < a.parallel:
            name, overrides = pending.pop(0)
            overrides = a.common + overrides
            log = open(a.out / f"{name}.log", "w")
            print("start", name, " ".join(overrides), flush=True)
            proc = subprocess.Popen(command(a.config, a.out / name, overrides, a.device),
                                    stdout=log, stderr=subprocess.STDOUT)
            running.append(Running(name, overrides, proc, time.time(), log))
        ended = [r for r in running if r.proc.poll() is not None]
        if not ended:
            time.sleep(1)
        for r in ended:
            running.remove(r)
            r.log.close()
            res = summarise(r.name, r.overrides, a.out / r.name, time.time() - r.started,
                            r.proc.returncode, a.metric)
            results.append(res)
            print("done", r.name, "exit", r.proc.returncode, res.get("steps"), res.get("best"),
                  flush=True)
            if not a.keep_checkpoints:
                for pt in (a.out / r.name).glob("*.pt"):
                    pt.unlink()
            (a.out / "sweep.json").write_text(json.dumps(
                {"config": a.config, "device": a.device, "common": a.common,
                 "variants": results}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
