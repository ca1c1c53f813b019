"""`tandem export`: a trained model as ONNX graphs and a manifest (`tandem.runtime.manifest`),
for the lean runtime (numpy + onnxruntime, no PyTorch) or any onnxruntime binding.

    tandem.export.export("runs/cmudict/best.pt", "exports/cmudict")
    tandem.runtime.load("exports/cmudict").translate(["PHOENIX"], beam=5)

Each structure exports its own graphs (`Structure.export_graphs`); this module builds the model
from its checkpoint with the textbook kernels, writes the graphs into a fresh folder next to
the target, optionally quantizes them to int8, writes the manifest with every file's sha256,
and only then moves the folder into place: an export that fails leaves nothing half-written,
and an existing export is replaced only by a complete one (or kept, without --overwrite).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tandem import checkpoint
from tandem.config import from_dict
from tandem.errors import CheckpointError, ConfigError
from tandem.runtime import manifest

PRECISIONS = ("float32", "int8")


def export(model_path: str | Path, out: str | Path, quantize: str | None = None,
           overwrite: bool = False) -> Path:
    """Export the checkpoint `model_path` into the folder `out` (created; an existing one is
    refused unless `overwrite`); `quantize`: None (float32) or "int8" (dynamic int8 weights
    of the MatMul and LSTM nodes, onnxruntime's `quantize_dynamic`). -> `out`."""
    from tandem import structures

    out = Path(out)
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r}: give int8 (or leave it out for float32)")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; give another --out, or --overwrite to "
                          "replace it")
    ckpt = checkpoint.load(model_path)
    name = ckpt.get("structure", "seq2seq")
    structure = structures.get(name)
    with checkpoint.consistent(model_path):
        cfg = from_dict(ckpt["config"])
        fields = structure.fields_from_state(ckpt["fields"])
        model = structure.build(cfg, fields)
        model.load_state_dict(ckpt["model"])
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        parts = structure.export_graphs(model, fields, cfg, work)
        for g in parts["graphs"].values():
            if quantize:
                _quantize(work / g["file"])
            else:
                _halve_exact_weights(work / g["file"])
        manifest.write(work, {
            "tandem_version": _version(), "structure": name,
            "precision": "int8" if quantize else "float32",
            "fields": manifest.to_json(fields.state()), "config": cfg.to_dict(),
            "source": {"checkpoint": Path(model_path).name,
                       **checkpoint.training_summary(ckpt)},
            **parts})
        work.chmod(0o777 & ~_umask())  # mkdtemp's folder is private; an export is not
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _version() -> str:
    """The installed tandem's version (the manifest records who wrote it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tandem")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _quantize(path: Path) -> None:
    """Dynamic int8 weights for a graph's MatMul / Gemm / LSTM nodes, in place."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        raise CheckpointError("--quantize int8 needs onnxruntime's quantization tools") from None
    tmp = path.with_suffix(".int8.onnx")
    # the quantizer logs advice about pre-processing on the root logger; the graphs are
    # checked against the model by tests and benchmarks instead
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    tmp.replace(path)


def _halve_exact_weights(path: Path, min_size: int = 256) -> int:
    """Store every float32 weight (of at least `min_size` numbers) whose values float16 holds
    exactly as float16, cast back to float32 by the graph (onnxruntime folds the cast when it
    loads the graph): a smaller file, the same numbers. A model trained or packed in float16
    (the shipped G2P model) halves; weights derived at export (summed biases) stay float32.
    -> the number of weights stored as float16."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph, casts, done = model.graph, [], 0
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_size:
            continue
        half = arr.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), arr):
            continue
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, f"{init.name}__float16"))
        casts.append(helper.make_node("Cast", [f"{init.name}__float16"], [init.name],
                                      to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}__to_float32"))
        done += 1
    if done:
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))
    return done


def describe(folder: str | Path) -> dict[str, Any]:
    """What an export holds: structure, precision, files and their sizes (bytes)."""
    body = manifest.read(folder)
    return {"structure": body["structure"], "precision": body.get("precision", "float32"),
            "files": {f: (Path(folder) / f).stat().st_size for f in body["files"]}}
