"""A/B of training and prediction speed per structure (classify, tag, lm, generate) between two
source trees, alternating A, B, A, B... so a slow minute falls on both alike. Each side runs
in its own process with its tree first on PYTHONPATH and uses only the public API both trees
have (Trainer.from_config, batches, train_step, checkpoint_dict, tandem.load and each loaded
model's predict / tag / generate).

    .venv/bin/python benchmarks/ab/structures_speed.py --a /tmp/before/src --b src \\
        [--rounds 3] [--steps 30] [--tag refactor]

Per structure: training tokens/s over --steps steps of its recipe (configs/*.yaml at full size,
data read before the clock starts, no validation) and prediction items/s (classify: SST-2 test
texts; tag: UD EWT test sentences; lm: 16 prompts sampled for 100 tokens; generate: 64 names).
Writes benchmarks/results/ab-structures-<date>[-TAG].json with both sides' medians and the B/A
ratios. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

CASES = {"classify": "configs/sst2.yaml", "tag": "configs/ud_ewt_upos.yaml",
         "lm": "configs/tinyshakespeare.yaml", "generate": "configs/names_generate.yaml"}
FIXED = ["train.max_minutes=null", "train.lr_horizon=steps", "train.valid_every=100000",
         "train.progress=false", "train.tensorboard=false", "train.device=cpu"]


def child(steps: int, out: str) -> None:
    """Measure every structure with the tandem on PYTHONPATH; write {structure: rates}."""
    import torch

    import tandem
    from tandem import checkpoint
    from tandem.config import load_config
    from tandem.data import readers
    from tandem.train.trainer import Trainer

    sst2 = [t for t, _, _ in readers.read_sst2("../shared/data/sst2/stsa.binary.test")[0]]
    ewt = [ws for ws, _, _ in readers.read_conllu(
        "../shared/data/ud_english_ewt/en_ewt-ud-test.conllu.gz", "upos")[0]]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in CASES.items():
            cfg = load_config(path, [*FIXED, f"train.max_steps={steps + 3}",
                                     f"run_dir={tmp}/{name}"])
            trainer = Trainer.from_config(cfg)
            batches = trainer.batches()
            for _ in range(3):  # warm-up
                trainer.train_step(next(batches))
            tokens, t0 = 0, time.perf_counter()
            for _ in range(steps):
                trainer.train_step(next(batches))
                tokens += trainer.last_tokens
            train_tok_s = tokens / (time.perf_counter() - t0)
            ckpt = Path(tmp) / f"{name}.pt"
            checkpoint.save(trainer.checkpoint_dict(with_optimizer=False), ckpt)
            model = tandem.load(ckpt, device="cpu")
            torch.manual_seed(0)
            t0 = time.perf_counter()
            if name == "classify":
                n = len(model.predict(sst2[:600], topk=1))
            elif name == "tag":
                n = len(model.tag(ewt[:600]))
            elif name == "lm":
                n = len(model.generate(["ROMEO:"] * 16, max_len=100, seed=1))
            else:
                n = len(model.generate(labels=model.labels[:16], n=4, seed=1))
            rates[name] = {"train_tok_s": round(train_tok_s, 1),
                           "predict_items_s": round(n / (time.perf_counter() - t0), 2)}
    Path(out).write_text(json.dumps(rates))


def run_side(tree: Path, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    subprocess.run([sys.executable, __file__, "--child", out, "--steps", str(steps)],
                   env=env, check=True)
    return json.loads(Path(out).read_text())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--a", type=Path, help="tree A (a checkout's src)")
    p.add_argument("--b", type=Path, help="tree B")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--tag", default="")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.steps, a.child)
        return 0
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for r in range(a.rounds):
        for side in (("a", "b") if r % 2 == 0 else ("b", "a")):
            runs[side].append(run_side(getattr(a, side).resolve(), a.steps))
            print(side, json.dumps(runs[side][-1]), flush=True)
    median = {side: {s: {k: statistics.median(x[s][k] for x in rs) for k in rs[0][s]}
                     for s in rs[0]} for side, rs in runs.items()}
    ratio = {s: {k: round(median["b"][s][k] / median["a"][s][k], 3) for k in median["a"][s]}
             for s in median["a"]}
    body = {"a": str(a.a), "b": str(a.b), "rounds": a.rounds, "steps": a.steps,
            "median": median, "b_over_a": ratio, "runs": runs}
    out = write_report(a.results, "ab-structures", f"-{a.tag}" if a.tag else "", body)
    for s, rs in ratio.items():
        print(f"{s:<9} train tok/s B/A {rs['train_tok_s']:.3f}   predict B/A "
              f"{rs['predict_items_s']:.3f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
