"""The export format: a folder of ONNX graphs and one `manifest.json`, read and written here
without torch (the exporter writes it, the runtime reads it).

manifest.json holds:
- `format` ("tandem-export") and `format_version` (this module's FORMAT_VERSION; a runtime
  refuses a newer one), `tandem_version` (of the exporter), `structure`;
- `fields`: what turns text into ids and back (the checkpoint's fields state; bytes, such as
  a sentencepiece model, as {"base64": ...});
- `config`: the model's whole config (its data section names the tokenizers and limits, its
  decode section the decoding defaults);
- `graphs`: per graph its file, input and output names;
- `state` / `memory` (seq2seq): the decoder's recurrent state (reordered with the beams) and
  what it reads from the encoder (per sentence), each name with its batch axis;
- `precision`: float32 or int8; `files`: the sha256 of every file, checked on load.

Paths are relative to the folder, so an export can be moved or copied whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tandem.errors import CheckpointError

FORMAT = "tandem-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_json(value: Any) -> Any:
    """Plain JSON values from a fields state: bytes become {"base64": ...}, sets lists."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_json(v) for v in items]
    return value


def from_json(value: Any) -> Any:
    """The inverse of `to_json`."""
    if isinstance(value, dict):
        if set(value) == {"base64"}:
            return base64.b64decode(value["base64"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def write(folder: Path, manifest: dict[str, Any]) -> Path:
    """Add the sha256 of every file the graphs name, and write manifest.json."""
    files = {g["file"]: sha256(folder / g["file"]) for g in manifest["graphs"].values()}
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "files": files}
    path = folder / MANIFEST
    path.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, its files checked against their sha256; every
    refusal names the file and what is wrong."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a tandem export (no {MANIFEST}); make one with "
                              "`tandem export MODEL --out DIR`")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); the export is damaged") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tandem export manifest (format is not {FORMAT!r})")
    version = body.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: export format version {version!r}; this tandem reads "
                              f"versions up to {FORMAT_VERSION} (upgrade tandem to load it)")
    for key in ("structure", "fields", "config", "graphs", "files"):
        if key not in body:
            raise CheckpointError(f"{path}: the manifest has no {key!r}; the export is damaged")
    for name, digest in body["files"].items():
        f = folder / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing from the export (the manifest lists it)")
        if sha256(f) != digest:
            raise CheckpointError(f"{f}: its sha256 differs from the manifest's; the file is "
                                  "damaged or was replaced (export the model again)")
    for g in body["graphs"].values():
        if g.get("file") not in body["files"]:
            raise CheckpointError(f"{path}: graph file {g.get('file')!r} has no checksum; the "
                                  "export is damaged")
    body["fields"] = from_json(body["fields"])
    return body
