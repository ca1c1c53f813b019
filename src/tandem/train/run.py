"""What a training process does around the loop: claim its run folder and log there, seed
the global random generators and capture / restore their states for exact resumes, and turn
SIGINT / SIGTERM into a checkpoint and a clean stop."""

from __future__ import annotations

import logging
import random
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml

from tandem import checkpoint
from tandem.config import Config
from tandem.errors import ConfigError

log = logging.getLogger("tandem")

RUN_FILES = ("best.pt", "last.pt", "ckpt-*.pt", "valid.jsonl", "train.log", "scalars.csv",
             "tensorboard")
"""What a training run leaves in its folder (besides config.yaml)."""


def claim_run(cfg: Config, resume: bool = False, overwrite: bool = False) -> Path:
    """Make `cfg.out_dir` this run's folder and write its config.yaml; returns the folder.

    A new run never silently replaces an earlier run's models: a folder holding one is
    refused (ConfigError) unless `resume` (continue it) or `overwrite` (its run files are
    deleted first). config.yaml is written before anything else, so whatever happens next
    the folder can be resumed.
    """
    out = cfg.out_dir
    old = [p for pattern in RUN_FILES for p in out.glob(pattern)]
    if old and not resume:
        if not overwrite:
            names = ", ".join(sorted(p.name for p in old)[:4])
            raise ConfigError(f"{out} already holds a training run ({names}); continue it with "
                              f"`tandem train --resume {out}`, start over with --overwrite, or "
                              "set another run_dir/name")
        for p in old:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    config_text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    checkpoint.write_text_atomic(out / "config.yaml", config_text)
    return out


@contextmanager
def run_log(out: Path) -> Iterator[logging.Handler]:
    """The `tandem` log also goes to `out/train.log` (INFO and up) while the block runs."""
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    if log.level == logging.NOTSET:  # called from Python without logging set up
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        handler.close()


# --- random states and signals -----------------------------------------------------------


def seed_run(seed: int) -> None:
    """Seed Python's and torch's global generators (initial weights, dropout, scheduled
    sampling); the data order has a generator of its own."""
    random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank `rank`'s own random stream (dropout, scheduled sampling) under
    torchrun, after the shared one built the model: distinct for each (seed, rank, step)."""
    return (seed * 1_000_003 + rank) * 1_000_003 + step


def capture_rng(device: torch.device) -> dict:
    """The states of the global generators (Python, torch, NumPy, and the GPU's when
    training on one), as checkpoint-safe values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}


def state_tuples(x):
    """Lists back to tuples, nested (checkpoints store a generator state's tuples as lists)."""
    return tuple(state_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def restore_rng(r: dict, device: torch.device) -> None:
    """Set the global generators to states `capture_rng` took (the GPU's only when
    training on one now)."""
    random.setstate(state_tuples(r["python"]))
    torch.set_rng_state(r["torch"])
    if "cuda" in r and device.type == "cuda":  # dropout and sampling on the GPU
        torch.cuda.set_rng_state(r["cuda"], device)
    name, keys, pos, has_gauss, gauss = r["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


class StopSignals:
    """SIGINT/SIGTERM during training, as a context manager: the first signal is recorded in
    `received` (the loop then saves a checkpoint at the step boundary and returns); a second
    quits at once (KeyboardInterrupt). Handlers can only be set in the main thread, so
    elsewhere nothing is installed. The previous handlers come back on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self.handle)
                              for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:  # None: installed outside Python; leave ours
                signal.signal(signum, handler)
        self._previous = {}

    def handle(self, signum: int, frame) -> None:
        """The signal handler."""
        if self.received is not None:  # the second Ctrl-C: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.received = signum
        log.warning("%s: stopping after this step and saving a checkpoint (press Ctrl-C "
                    "again to quit at once)", signal.Signals(signum).name)
