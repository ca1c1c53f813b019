"""Checkpoint averaging: the element-wise mean of the parameters of several checkpoints of one
run (e.g. the last few), which usually scores a little better than any one of them."""

from __future__ import annotations

from pathlib import Path

from tandem import checkpoint
from tandem.errors import CheckpointError


def average(paths: list[str | Path], out: str | Path) -> Path:
    """Write to `out` a checkpoint whose floating-point weights are the mean of those in
    `paths` (computed in float64); config, fields, structure and train_state come from the
    first, plus `averaged_from`. Checkpoints of different runs (model config or vocabularies differ)
    are refused. Returns `out`."""
    if not paths:
        raise CheckpointError("tandem average: give at least one checkpoint")
    first = checkpoint.load(paths[0])
    total = {k: v.double().clone() if v.is_floating_point() else v
             for k, v in first["model"].items()}
    for p in paths[1:]:
        ck = checkpoint.load(p)
        if ck["fields"] != first["fields"] or ck["config"]["model"] != first["config"]["model"]:
            raise CheckpointError(f"{p}: not from the same run as {paths[0]} (model config or "
                                  "vocabularies differ); only checkpoints of one run average")
        if ck["model"].keys() != total.keys():
            raise CheckpointError(f"{p}: parameter names differ from {paths[0]}")
        for k, v in ck["model"].items():
            if v.is_floating_point():
                total[k] += v.double()
    n = len(paths)
    model = {k: (v / n).to(first["model"][k].dtype) if v.is_floating_point() else v
             for k, v in total.items()}
    info = dict(first["train_state"])
    info["averaged_from"] = [str(p) for p in paths]
    obj = {"model": model, "config": first["config"], "fields": first["fields"],
           "train_state": info}
    if "structure" in first:
        obj["structure"] = first["structure"]
    return checkpoint.save(obj, out)
