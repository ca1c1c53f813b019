"""Where a training step's time goes: run a config's training steps under torch.profiler and
print seconds per step and the operators that took the most time.

    .venv/bin/python benchmarks/speed/profile_train.py CONFIG [--set key=value ...] [--steps 30]

Runs in a temporary folder (nothing is written to the config's run folder); the first 10
steps warm up and are not profiled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from torch.profiler import ProfilerActivity, profile

from tandem.config import load_config
from tandem.train.trainer import Trainer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rows", type=int, default=20)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(a.config, [*a.set, f"run_dir={tmp}", "train.progress=false",
                                     "train.tensorboard=false"])
        trainer = Trainer.from_config(cfg)
        batches = trainer.batches()
        for _ in range(10):
            trainer.train_step(next(batches))
        todo = [next(batches) for _ in range(a.steps)]
        t = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in todo:
                trainer.train_step(b)
        per_step = (time.perf_counter() - t) / a.steps
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    print(f"{per_step:.3f} s/step over {a.steps} profiled steps (profiler on)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
