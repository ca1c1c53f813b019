"""The lean runtime: run a model exported with `tandem export` with numpy and onnxruntime only
(no PyTorch is imported, here or by anything this package loads).

    import tandem.runtime
    g2p = tandem.runtime.load("exports/cmudict")
    g2p.translate(["PHOENIX"], beam=5)           # the same options and outputs as tandem.load
    tandem.runtime.load("exports/sst2").predict(["a gorgeous film"], topk=2)

`load` checks the manifest's format version and every file's sha256 before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem.errors import CheckpointError


def load(folder: str | Path, threads: int | None = None) -> Any:
    """The exported model in `folder` (a directory holding manifest.json): a
    RuntimeTranslator (seq2seq), RuntimeClassifier or RuntimeTagger. `threads`: how many batches of
    a call run at once, each on one core (default: TANDEM_THREADS, else one per core)."""
    from tandem.runtime import manifest
    from tandem.runtime.models import MODELS, threads_from_env

    folder = Path(folder)
    body = manifest.read(folder)
    kind = MODELS.get(body["structure"])
    if kind is None:
        raise CheckpointError(f"{folder}: a {body['structure']} model; this runtime runs "
                              f"{', '.join(MODELS)} exports")
    return kind(folder, body, threads if threads is not None else threads_from_env())


def is_export(path: str | Path) -> bool:
    """Whether `path` is an export folder (holds a manifest.json), not a checkpoint."""
    from tandem.runtime.manifest import MANIFEST

    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


__all__ = ["is_export", "load"]
