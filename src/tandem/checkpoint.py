"""Checkpoints: one self-contained file of plain tensors, numbers, strings, lists and dicts
(weights, config, vocabularies, tokenizer models as bytes), written atomically and read with
`torch.load(weights_only=True)` so a file can never run code.

A checkpoint is a dict: `model` (the state dict), `config` (Config.to_dict()), `fields`
(Fields.state()), `train_state` (the trainer's counters), in last.pt and ckpt-N.pt also
`optimizer` and `rng`, and, added by `save`, `format_version` and `checksum`. Training and
decoding both read and write it through this module, so neither imports the other."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tandem.errors import CheckpointError, TandemError

FORMAT_VERSION = 2
"""The one layout written and read (with the `checksum` of the model tensors; format 1,
without it, predates the 0.1.0 release and is refused)."""


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict's tensors."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} is not a tensor")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def numbered(run: str | Path) -> list[Path]:
    """A run's `ckpt-STEP.pt` files, oldest step first."""
    found = [p for p in Path(run).glob("ckpt-*.pt") if p.stem[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[5:]))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file via a temporary file and a rename (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def on_cpu(obj: Any) -> Any:
    """`obj` with every tensor in it (nested dicts, lists, tuples) copied to the CPU, so a
    checkpoint written on a GPU loads anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def save(obj: dict[str, Any], path: str | Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over `path`. Tensors
    are stored on the CPU whatever device they are on.

    An interrupted write leaves the previous file at `path` untouched.
    """
    path = Path(path)
    obj = on_cpu(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({**obj, "format_version": FORMAT_VERSION,
                        "checksum": tensor_checksum(obj["model"])}, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's first line (torch's load errors run to many lines,
    and on to advice about torch.load's options that a tandem user cannot take)."""
    return (str(e).splitlines() or [type(e).__name__])[0].split(". ", 1)[0]


def _unpickler_reason(e: BaseException) -> str:
    """What torch's weights-only unpickler refused ("Unsupported operand 10", "Trying to load
    unsupported GLOBAL posix.system ..."), which its message puts after a paragraph of advice
    about torch.load's options: the first sentence after that paragraph."""
    text = str(e)
    rest = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text \
        else "\n".join(text.splitlines()[1:])
    lines = [line.strip() for line in rest.splitlines()
             if line.strip() and not line.strip().startswith("Check the documentation")]
    return lines[0].split(". ", 1)[0].rstrip(".") if lines else _first_line(e)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            # the weights-only unpickler cannot tell a file that asks for code to run from
            # scrambled bytes (both can be "Unsupported operand"), so the message says both
            raise CheckpointError(f"{path}: refused: the file needs code to load, which tandem "
                                  f"never runs, or is corrupted ({_unpickler_reason(e)})"
                                  ) from None
        raise CheckpointError(f"{path}: not a tandem checkpoint: {_first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - any failure to read is the file's fault
        raise CheckpointError(f"{path}: not a readable tandem checkpoint (truncated or "
                              f"corrupted?): {_first_line(e)}") from None
    if not isinstance(obj, dict) or "format_version" not in obj or "model" not in obj:
        raise CheckpointError(f"{path}: not a tandem checkpoint (no format_version/model)")
    if obj["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {obj['format_version']!r} is not "
                              f"supported; this tandem reads format {FORMAT_VERSION}")
    try:
        ok = isinstance(obj["model"], dict) and obj.get("checksum") == tensor_checksum(
            obj["model"])
    except (TypeError, RuntimeError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: the weights do not match the checkpoint's "
                              "checksum (the file was corrupted or edited)")
    return obj


TRAINING_SUMMARY = ("step", "epoch", "best_score", "best_step", "elapsed")
"""The train_state entries a loaded model reports about its training."""


def training_summary(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The TRAINING_SUMMARY entries of a checkpoint's train_state ({} when it has none)."""
    state = ckpt.get("train_state")
    return {k: state[k] for k in TRAINING_SUMMARY if k in state} if isinstance(state, dict) \
        else {}


@contextmanager
def consistent(path: str | Path) -> Iterator[None]:
    """Building a model from a loaded checkpoint inside this block: a missing key, a wrong
    type or weights that do not fit the config become one CheckpointError naming `path`."""
    try:
        yield
    except (KeyError, TypeError, RuntimeError, TandemError) as e:
        raise CheckpointError(f"{path}: checkpoint contents are inconsistent: "
                              f"{_first_line(e)}") from None
