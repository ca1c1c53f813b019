"""The five RNN structures, one module each (seq2seq, classify, tag, lm, generate): the only
place that knows what a structure is. A module defines `STRUCTURE` (a `Structure`: its data,
fields, model, batches, loss and validation for training) and `LOADED` (a `LoadedModel`:
prediction, evaluation and its server requests), and is found here by its `name`; a
structure defined outside the package joins with `register`.

    cls = structures.get(cfg.model.structure)        # what trains it
    model = structures.load("runs/sst2/best.pt")     # what uses it: one loader for all
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from tandem.config import Config, add_structure
from tandem.errors import CheckpointError, ConfigError
from tandem.structures.base import LoadedModel, Structure

_FOUND: dict[str, tuple[type[Structure], type[LoadedModel]]] = {}
_SCANNED: list[bool] = []


def _discover() -> dict[str, tuple[type[Structure], type[LoadedModel]]]:
    """Every module of this package that defines STRUCTURE and LOADED, by name, and those
    `register` added."""
    if not _SCANNED:
        _SCANNED.append(True)
        for info in pkgutil.iter_modules(__path__):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(mod, "STRUCTURE") and hasattr(mod, "LOADED"):
                _FOUND.setdefault(mod.STRUCTURE.name, (mod.STRUCTURE, mod.LOADED))
    return _FOUND


def register(structure: type[Structure], loaded: type[LoadedModel], *,
             defaults: dict[str, Any] | None = None, parts: str = "",
             metrics: tuple[str, ...] = ("loss",), off_keys: tuple[str, ...] = ()) -> None:
    """Add a structure defined outside this package: its training class, its loaded-model
    class and what the config needs to accept `model.structure: <name>` (the model keys it
    uses with their defaults, what it is made of, its validation metrics, first the
    default; `off_keys`: the model keys with an off value that apply to it)."""
    if structure.name in _discover():
        raise ConfigError(f"tandem.structures.register: a structure named "
                          f"{structure.name!r} is already known; give it another name")
    add_structure(structure.name, defaults or {}, parts or structure.name, metrics, off_keys)
    _FOUND[structure.name] = (structure, loaded)


def names() -> list[str]:
    """The structures that can be trained and loaded."""
    return list(_discover())


def get(name: str) -> type[Structure]:
    """The Structure class of `name`; an unknown name is a ConfigError listing the known."""
    found = _discover()
    if name not in found:
        raise ConfigError(f"model.structure = {name!r} is not allowed: one of "
                          f"{', '.join(found)}")
    return found[name][0]


def structure_for(cfg: Config) -> type[Structure]:
    """The class that trains `cfg` (`model.structure`, and its variant for the data, e.g.
    seq2seq's streamed one)."""
    return get(cfg.model.structure).for_config(cfg)


def loaded_class(name: str) -> type[LoadedModel]:
    """The LoadedModel class of structure `name`."""
    get(name)
    return _FOUND[name][1]


def load(*paths: str | Path, device: str = "auto", first: dict | None = None) -> LoadedModel:
    """Load a trained model of any structure, on `device` (auto, cpu, cuda or cuda:N): the
    structure's LoadedModel (a Translator for seq2seq, where several paths are an ensemble);
    an export folder (`tandem export`) loads in the lean runtime (`tandem.runtime.load`).
    `first`: the first checkpoint's contents when the caller has read them already."""
    from tandem import checkpoint, runtime

    if not paths:
        raise CheckpointError("tandem.load: give a checkpoint path")
    if runtime.is_export(paths[0]):  # an export folder: the lean runtime runs it
        if len(paths) > 1:
            raise CheckpointError(f"{paths[0]}: an export is one model; ensembles load "
                                  "from checkpoints")
        if str(device) not in ("auto", "cpu"):
            raise CheckpointError(f"{paths[0]}: an export runs on the CPU (onnxruntime); "
                                  f"device {device!r} is for checkpoints")
        return runtime.load(paths[0])
    ckpt = first if first is not None else checkpoint.load(paths[0])
    name = ckpt.get("structure", "seq2seq")
    if name not in _discover():
        raise CheckpointError(f"{paths[0]}: a model of structure {name!r}, which this tandem "
                              f"does not know ({', '.join(_FOUND)})")
    structure, loaded = _FOUND[name]
    return loaded.from_checkpoints(tuple(paths), ckpt, structure).to(device)


__all__ = ["LoadedModel", "Structure", "get", "load", "loaded_class", "names", "register",
           "structure_for"]
