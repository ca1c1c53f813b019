"""A/B of `tandem bench` between two source trees in one run of this script: the runs
alternate A, B, A, B, ... so a slow minute on a shared machine falls on both alike. Writes
benchmarks/results/ab-<date>[-TAG].json with both sides' medians, the B/A ratios of every
rate the two have in common (training tokens/s, greedy and beam sentences/s, ...) and a
summary of training and beam speed, plus the commands.

    .venv/bin/python benchmarks/ab/ab_commits.py --a /work/before/src --b src [--rounds 3] \\
        [--tag refactor] [-- --quick --sizes small base]

Each tree is a folder holding the `tandem` package (a checkout's `src`); both run with this
Python, the tree first on PYTHONPATH, as `python -m tandem.cli bench ARGS --out TMP`. The
arguments after `--` (default: --quick --sizes small base) go to both sides, so use only
flags both versions of `tandem bench` know. Rows are matched by (size, variant); a row only
one side writes (an older `tandem bench` also timed the tutorial reference) is left out.
Standard library only: it imports neither tree.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_BENCH = ["--quick", "--sizes", "small", "base"]
TRAIN = "train_tok_s"
BEAM = ("decode_b5_bs1_sent_s", "decode_b5_bs64_sent_s")


def env_for(tree: Path) -> dict[str, str]:
    """This process's environment with `tree` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    return env


def check_tree(python: str, tree: Path) -> str:
    """Where `tandem` imports from with `tree` on the path; exits unless it is `tree`."""
    find = "import importlib.util as u; print(u.find_spec('tandem').origin)"
    out = subprocess.run([python, "-c", find],
                         env=env_for(tree), cwd=tempfile.gettempdir(), capture_output=True,
                         text=True)
    where = Path(out.stdout.strip()) if out.returncode == 0 else None
    if where is None or tree.resolve() not in where.resolve().parents:
        sys.exit(f"--a/--b {tree}: `import tandem` gives {where or out.stderr.strip()!r}, "
                 "not this tree's package (give the folder that holds tandem/)")
    return str(where.parent)


def git_state(tree: Path) -> dict:
    """The commit of the checkout holding `tree` and whether its files differ from it."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD"),
            "modified_files": len(git("status", "--porcelain", "--untracked-files=no")
                                  .splitlines())}


def run_bench(python: str, tree: Path, bench_args: list[str]) -> dict:
    """One `tandem bench` run of `tree`; returns the JSON it wrote and its wall time."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [python, "-m", "tandem.cli", "bench", *bench_args, "--out", out]
        t = time.time()
        r = subprocess.run(cmd, env=env_for(tree), cwd=out, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"{shlex.join(cmd)} (PYTHONPATH={tree}) failed ({r.returncode}):\n"
                     f"{r.stdout[-3000:]}")
        files = sorted(Path(out).glob("*.json"))
        if len(files) != 1:
            sys.exit(f"{shlex.join(cmd)} wrote {len(files)} JSON files, not one")
        res = json.loads(files[0].read_text())
    res["wall_s"] = round(time.time() - t, 1)
    return res


def rates(row: dict) -> dict[str, float]:
    """The speeds of a row: every number whose key ends in _tok_s or _sent_s."""
    return {k: v for k, v in row.items()
            if k.endswith(("_tok_s", "_sent_s")) and isinstance(v, (int, float))}


def compare(runs_a: list[dict], runs_b: list[dict]) -> dict:
    """Medians per (size, variant) and rate on each side, the B/A ratios, and a summary:
    the geometric mean and the lowest of the training and the beam-5 ratios."""
    def medians(runs: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
        per: dict[tuple[str, str], dict[str, list[float]]] = {}
        for res in runs:
            for row in res["rows"]:
                for k, v in rates(row).items():
                    per.setdefault((row["size"], row["variant"]), {}).setdefault(k, []).append(v)
        return {key: {k: statistics.median(v) for k, v in d.items()} for key, d in per.items()}

    a, b = medians(runs_a), medians(runs_b)
    rows, train, beam = [], [], []
    for key in [k for k in a if k in b]:
        common = [k for k in a[key] if k in b[key] and a[key][k] > 0]
        ratio = {k: round(b[key][k] / a[key][k], 3) for k in common}
        rows.append({"size": key[0], "variant": key[1],
                     "a": {k: a[key][k] for k in common}, "b": {k: b[key][k] for k in common},
                     "ratio_b_over_a": ratio})
        train += [ratio[TRAIN]] if TRAIN in ratio else []
        beam += [ratio[k] for k in BEAM if k in ratio]

    def summary(xs: list[float]) -> dict:
        if not xs:
            return {}
        return {"geomean": round(math.exp(statistics.mean(math.log(x) for x in xs)), 3),
                "min": min(xs), "n": len(xs)}

    return {"rows": rows, "summary": {"train_tok_s": summary(train),
                                      "beam5_sent_s": summary(beam)}}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the alternating A/B and write its JSON."""
    argv = raw = sys.argv[1:] if argv is None else argv
    bench_args = DEFAULT_BENCH
    if "--" in argv:
        i = argv.index("--")
        argv, bench_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, type=Path, help="source tree A (holds tandem/)")
    p.add_argument("--b", required=True, type=Path, help="source tree B (holds tandem/)")
    p.add_argument("--rounds", type=int, default=3, help="runs per side (default 3)")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tag", default="", help="appended to the result's file name")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds: a whole number >= 1 is needed")
    if a.tag and not re.fullmatch(r"[A-Za-z0-9_.-]+", a.tag):
        p.error(f"--tag {a.tag!r}: letters, digits, '_', '.' and '-' only")
    where = {side: check_tree(a.python, tree) for side, tree in (("a", a.a), ("b", a.b))}
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for r in range(a.rounds):
        for side, tree in (("a", a.a), ("b", a.b)):
            res = run_bench(a.python, tree, bench_args)
            runs[side].append(res)
            print(f"round {r + 1}/{a.rounds} {side.upper()} ({tree}): {res['wall_s']} s, "
                  f"matmul peak {res.get('matmul_peak_gflops')} GFLOP/s", flush=True)
    result = compare(runs["a"], runs["b"])
    date = datetime.date.today().isoformat()
    report = {
        "command": shlex.join(["python", os.path.relpath(__file__), *raw]),
        "date": date,
        "bench_command": shlex.join(["python", "-m", "tandem.cli", "bench", *bench_args]),
        "order": "A, B alternating, " + f"{a.rounds} runs each",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "a": {"tree": str(a.a), "package": where["a"], **git_state(a.a)},
        "b": {"tree": str(a.b), "package": where["b"], **git_state(a.b)},
        "summary": result["summary"],
        "rows": result["rows"],
        "runs": {side: [{"matmul_peak_gflops": res.get("matmul_peak_gflops"),
                         "wall_s": res["wall_s"],
                         "rows": [{"size": row["size"], "variant": row["variant"],
                                   **rates(row)} for row in res["rows"]]}
                        for res in rs] for side, rs in runs.items()},
    }
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"ab-{date}{'-' + a.tag if a.tag else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    s = result["summary"]
    print(f"B/A training tok/s {s['train_tok_s']}; beam 5 sent/s {s['beam5_sent_s']}; "
          f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
