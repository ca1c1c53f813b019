"""Data-parallel training on PyTorch's own engine: torchrun starts the ranks, torch.distributed
connects them (gloo on the CPU, NCCL on CUDA), DistributedDataParallel averages gradients.

What each rank does (the Trainer drives it; see docs/distributed.md):

- every rank builds the same model from the same seed and draws the same plan of global
  batches from the same data-order generator; it trains on its share of each global batch
  (`Structure.share`), so a global batch of `train.batch_tokens` is the same whatever the
  number of ranks, and a checkpoint's data position means the same with any world size;
- one all-reduce per step sums the loss, the scored targets, the tokens and the stop flags of
  all ranks: the loss is divided by the GLOBAL count (so the gradients equal a single
  process's), a non-finite loss on any rank skips the step on every rank, and a signal or the
  time limit seen by any rank stops all of them after the same step;
- rank 0 alone reads checkpoints (and broadcasts them), validates, and writes the run folder;
  the other ranks write nothing.

`Ranks` is the one object the trainer asks about ranks; `SINGLE` is one process, where every
collective is the identity and nothing is imported from torch.distributed.
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

from tandem.cpu import usable_cores
from tandem.errors import ConfigError, TrainingError

log = logging.getLogger("tandem")

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The environment torchrun gives every worker; all of them present = a distributed run."""


@dataclass
class Ranks:
    """This process's place among the ranks of a run: `rank` of `world`, `local_rank` of
    `local_world` on this machine, the process group's `backend` (None for one process) and
    the `device` its collectives use."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def writer(self) -> bool:
        """Whether this rank writes the run folder (rank 0)."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """The element-wise sum of `values` over all ranks (one all-reduce, float64)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled; other ranks' `obj` is ignored)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def agree(self, fn, *args, **kwargs) -> Any:
        """Run `fn` on rank 0 only and return its result on every rank; an error it raises is
        raised on every rank (so a refused run folder stops all ranks with rank 0's message,
        not a hang)."""
        result, error = None, None
        if self.writer:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
                error = e
        result, error = self.broadcast((result, error))
        if error is not None:
            raise error
        return result

    def _object_device(self) -> torch.device | None:
        return self.device if self.backend == "nccl" else None

    def close(self) -> None:
        """Leave the process group (no-op for one process)."""
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


SINGLE = Ranks()
"""One process: rank 0 of 1."""


def launched() -> bool:
    """Whether this process is a worker started by torchrun (or another launcher that sets the
    torch.distributed environment) for a run of more than one rank."""
    return all(v in os.environ for v in LAUNCH_VARS) and int(os.environ["WORLD_SIZE"]) > 1


def rank_threads(threads: int | None, local_world: int) -> int:
    """Torch threads of one rank: `train.threads` when set, else this process's usable cores
    shared evenly among the ranks of this machine (at least one), so ranks never oversubscribe
    the cores. (torchrun sets OMP_NUM_THREADS=1 for its workers by default; that is not the
    user's choice, so it is not followed: set train.threads to choose.)"""
    if threads is not None:
        return threads
    return max(1, usable_cores() // max(1, local_world))


def init(device_name: str, timeout_minutes: float) -> tuple[Ranks, str]:
    """Join the process group torchrun described in the environment: NCCL when the training
    device is a CUDA GPU (this rank's GPU is cuda:LOCAL_RANK), gloo on the CPU. Returns the
    Ranks and the device name to train on. Collectives wait at most `timeout_minutes`
    (`train.dist_timeout_minutes`), so a rank that never arrives is an error, not a hang."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    cuda = device_name.startswith("cuda") or (device_name == "auto"
                                              and torch.cuda.is_available())
    if cuda:
        if device_name not in ("auto", "cuda", f"cuda:{local_rank}"):
            log.warning("train.device = %s: under torchrun each rank trains on its own GPU, "
                        "so rank %d uses cuda:%d", device_name, rank, local_rank)
        torch.cuda.set_device(local_rank)
        device_name, backend = f"cuda:{local_rank}", "nccl"
    else:
        backend = "gloo"
    device = torch.device(device_name) if cuda else torch.device("cpu")
    ranks = Ranks(rank, world, local_rank, local_world, backend, device)
    if dist.is_initialized():  # a second trainer in the same process (tests, notebooks)
        return ranks, device_name
    extra = {"device_id": device} if cuda else {}
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes),
                                **extra)
    except Exception as e:  # noqa: BLE001 - torch raises several kinds here
        raise TrainingError(
            f"rank {rank} of {world} could not join the process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} ({backend}): {e}"
        ) from None
    log.info("rank %d of %d (local %d of %d), backend %s", rank, world, local_rank,
             local_world, backend)
    return ranks, device_name


def start_ranks(cfg) -> tuple[Ranks, str]:
    """(Ranks, training device name) of this process: under torchrun, after joining the
    process group (`init`, with `train.dist_timeout_minutes`); else one process on
    `train.device`."""
    if not launched():
        return SINGLE, cfg.train.device
    return init(cfg.train.device, cfg.train.dist_timeout_minutes)


PEER_FAILURE = ("connection", "gloo", "nccl", "closed", "peer", "timed out", "timeout")


def is_peer_failure(e: BaseException) -> bool:
    """Whether a collective's error means another rank is gone (not a bug of this one)."""
    text = str(e).lower()
    return any(word in text for word in PEER_FAILURE)


def wrap(model: torch.nn.Module, ranks: Ranks) -> torch.nn.Module:
    """The module the training step calls: `model` itself for one process, else a
    DistributedDataParallel around it (which also copies rank 0's weights to every rank)."""
    if ranks.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def lost_contact(e: BaseException, ranks: Ranks) -> TrainingError:
    """The error a collective's failure becomes: which rank saw it, and how to go on."""
    return TrainingError(
        f"rank {ranks.rank} of {ranks.world}: lost contact with the other ranks ({e}); "
        "another rank probably stopped or was killed (torchrun names it). The run folder "
        "keeps its last complete checkpoint: continue with tandem train --resume RUN_DIR "
        "(with any number of ranks)")


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command `tandem train ... --nproc N` becomes: N ranks on this machine
    (a free local port via --standalone) running `python -m tandem` with `argv`."""
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: give at least 1")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "tandem", *argv]


def run_torchrun(nproc: int, argv: list[str]) -> int:
    """Start torchrun for `argv` (a `tandem` command line without --nproc) and wait; its exit
    code. Each rank's threads are set by the worker (`rank_threads`)."""
    cmd = torchrun_command(nproc, argv)
    log.info("starting %d ranks: %s", nproc, " ".join(cmd[1:]))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(rank_threads(None, nproc)))
    return subprocess.call(cmd, env=env)
