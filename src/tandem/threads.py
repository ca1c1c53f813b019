"""CPU settings applied once per process: thread count and denormal flushing."""

from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroups affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure(threads: int | None = None) -> int:
    """Use `threads` torch threads, or (when neither the user nor OMP_NUM_THREADS set it) one
    per usable core; flush denormal floats to zero, which otherwise slow CPU math badly."""
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        threads = usable_cores()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    return torch.get_num_threads()
