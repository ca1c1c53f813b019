"""Where the math runs: the device (CPU or a CUDA GPU), CPU thread count, denormal flushing,
bfloat16 autocast. (The model's fast kernels and int8 preparation: `tandem.model.fast`.)"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re

import torch

log = logging.getLogger("tandem")


def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroups affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(name: str | torch.device = "auto", key: str = "device") -> torch.device:
    """`auto` (a CUDA GPU when torch sees one, else the CPU), `cpu`, `cuda` or `cuda:N`.
    Asking for a GPU this torch cannot use is a ConfigError that names `key`."""
    from tandem.config import DEVICE_PATTERN
    from tandem.errors import ConfigError

    name = str(name)
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ConfigError(f"{key} = {name!r}; allowed: auto, cpu, cuda, cuda:N")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key} = {name!r}, but this torch ({torch.__version__}) sees no "
                              "CUDA GPU; allowed here: auto, cpu")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise ConfigError(f"{key} = {name!r}, but only {count} CUDA device(s) exist "
                              f"(cuda:0..cuda:{count - 1})")
        if device.index is None:  # 'cuda' = the current GPU, named as tensors name it
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model with none)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configure(threads: int | None = None) -> int:
    """Use `threads` torch threads, or (when neither the user nor OMP_NUM_THREADS set it) one
    per usable core; flush denormal floats to zero, which otherwise slow CPU math badly."""
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        threads = usable_cores()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    return torch.get_num_threads()


PRIMITIVE_CACHE = 64
"""Compiled oneDNN primitives kept while training (oneDNN's own default is 1024)."""


def bound_primitive_cache(capacity: int = PRIMITIVE_CACHE) -> None:
    """Keep at most `capacity` compiled oneDNN primitives (the CPU kernels behind the RNN
    layers), unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is set. Training with length-bucketed
    batches meets a new shape at almost every step, so the default cache of 1024 rarely hits
    and holds hundreds of MB (docs/benchmarks.md measures it: less memory, no slower). oneDNN
    reads the variable when it first builds a primitive, so this acts only when called
    before any RNN ran in the process."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


@functools.cache
def native_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (AVX512-BF16 / AMX); elsewhere bf16 math is
    emulated and usually slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_warned = False


def autocast(enabled: bool, device: str = "cpu"):
    """bfloat16 autocast when `enabled` (a no-op context otherwise). Warns once when the CPU
    has no native bf16 support, because then it is an accuracy/speed experiment, not a win."""
    global _warned
    if not enabled:
        return contextlib.nullcontext()
    if device == "cpu" and not native_bf16() and not _warned:
        log.warning("bf16: this CPU has no native bfloat16 instructions; expect it to be "
                    "slower than float32")
        _warned = True
    return torch.autocast(device, dtype=torch.bfloat16)
