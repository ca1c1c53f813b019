"""What the benchmark scripts share: writing a result JSON with its command, the argument
parser and training step of the real-data recipes (recipes/g2p_cmudict.py, recipes/multi30k.py),
running a process while watching its memory, and the Phonetisaurus tools' environment.

The scripts live one folder down (benchmarks/recipes/, speed/, ab/) and are run as
`python benchmarks/<folder>/<script>.py`; each puts this folder on `sys.path` before
`from common import ...` (Python itself puts only the script's own folder there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tandem.bench import write_result


def write_report(folder: str | Path, prefix: str, suffix: str, body: dict,
                 command: str | None = None) -> Path:
    """Write a benchmark result as `folder/<prefix>-<date><suffix>.json`, with the command
    that made it (default: this script's command line) and the machine it ran on."""
    if command is None:
        command = " ".join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    return write_result(folder, prefix, suffix, body, command)


def rotated(names: list[str], round_no: int) -> list[str]:
    """`names` in the order of round `round_no`: each round starts one later, so no entry is
    always timed first (warmest caches) or last."""
    k = round_no % len(names)
    return names[k:] + names[:k]


def recipe_parser(default_config: str, average: int, description: str
                  ) -> argparse.ArgumentParser:
    """Arguments shared by the real-data recipe scripts (benchmarks/recipes/g2p_cmudict.py,
    benchmarks/recipes/multi30k.py): which config, overrides, train/resume/score only, averaging."""
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


def train_recipe(a: argparse.Namespace) -> tuple:
    """Train (or resume, or skip) the recipe named by `recipe_parser`'s arguments; returns
    the config, the run folder, its validation history, and the checkpoints to score
    ({"best": best.pt, "average_last_N": the mean of the last N})."""
    import logging

    from tandem import checkpoint
    from tandem.config import load_config
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


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _descendants(pid: int) -> list[int]:
    """The processes started by `pid`, their children and so on (from /proc)."""
    found, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def watched(cmd: list[str], env: dict | None = None, stdin: str | None = None
            ) -> tuple[subprocess.CompletedProcess, float, float | None]:
    """Run `cmd` (stdin from the file `stdin`), polling its peak memory and when its first
    byte of output appeared; (result, peak MB, seconds to the first output or None). The
    peak is the larger of the process' own VmHWM and the largest sum of VmRSS over it and
    every process it started, as polled (a wrapper script's real work may run in a child).
    Output goes to temporary files, so a chatty process never blocks on a full pipe."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            open(stdin or os.devnull, "rb") as inp:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=err, env=env)
        peak, first = 0, None
        while p.poll() is None:
            tree = sum(_status_kb(c, "VmRSS") or 0 for c in [p.pid, *_descendants(p.pid)])
            peak = max(peak, _status_kb(p.pid, "VmHWM") or 0, tree)
            if first is None and os.fstat(out.fileno()).st_size:
                first = time.perf_counter() - t0
            time.sleep(0.02)
        if first is None and os.fstat(out.fileno()).st_size:
            first = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, p.returncode, out.read().decode(),
                                             err.read().decode())
    return result, peak / 1024, first


def phonetisaurus_env(venv: Path) -> dict:
    """The environment the Phonetisaurus wheel's tools need in the venv `venv` (its bin folder
    on PATH, its libraries), on top of this process' environment."""
    out = subprocess.run(
        [str(venv / "bin/python"), "-c",
         "import json, phonetisaurus; print(json.dumps(phonetisaurus.guess_environment()))"],
        capture_output=True, text=True, check=True).stdout
    return {**os.environ, **json.loads(out)}
