"""Sequences of feature vectors (frames) as inputs: the `.ts` format of the UEA/UCR time
series archive, and per-channel normalisation.

A `.ts` file has `#` comment lines, `@` header lines (`@dimensions C`, `@classLabel true A B
...`), then after `@data` one series a line: C channels separated by `:`, the values of a
channel by `,`, the class label after the last `:`. A series is read as a float32 array (T, C):
frame t holds every channel's value at step t. Every refusal names the file and line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tandem.data.corpora import open_lines
from tandem.errors import DataError

Series = tuple[np.ndarray, str, str]
"""(frames (T, C) float32, label, where: file:line)."""


def read_ts(path: str | Path) -> list[Series]:
    """The labelled series of a `.ts` file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; give a .ts file of the UEA/UCR archive")
    dims: int | None = None
    labels: set[str] | None = None
    in_data = False
    out: list[Series] = []
    for n, raw in enumerate(open_lines(path), 1):
        line = raw.decode("utf-8", errors="replace").strip()
        where = f"{path}:{n}"
        if not line or line.startswith("#"):
            continue
        if not in_data:
            head = line.lower().split()
            if head[0] == "@dimensions" and len(head) > 1 and head[1].isdigit():
                dims = int(head[1])
            elif head[0] == "@classlabel" and len(head) > 2 and head[1] == "true":
                labels = set(line.split()[2:])
            elif head[0] == "@data":
                in_data = True
            continue
        parts = line.split(":")
        if len(parts) < 2:
            raise DataError(f"{where}: a series needs its channels and a class label after the "
                            "last ':' (channels separated by ':', values by ',')")
        *channels, label = parts
        label = label.strip()
        if not label:
            raise DataError(f"{where}: the class label after the last ':' is missing")
        if labels is not None and label not in labels:
            raise DataError(f"{where}: class label {label!r} is not one of the @classLabel "
                            f"header's: {', '.join(sorted(labels))}")
        if dims is not None and len(channels) != dims:
            raise DataError(f"{where}: {len(channels)} channels, but @dimensions says {dims}")
        rows = []
        for k, ch in enumerate(channels):
            try:
                values = [float(v) for v in ch.split(",")]
            except ValueError:
                raise DataError(f"{where}: channel {k + 1} holds a value that is not a number "
                                "(missing values '?' are not supported)") from None
            if not all(math.isfinite(v) for v in values):
                raise DataError(f"{where}: channel {k + 1} holds NaN or infinity")
            rows.append(values)
        if len({len(r) for r in rows}) > 1:
            lens = ", ".join(str(len(r)) for r in rows)
            raise DataError(f"{where}: the channels of one series must be equally long "
                            f"(here {lens} values)")
        out.append((np.asarray(rows, dtype=np.float32).T.copy(), label, where))
    if not in_data:
        raise DataError(f"{path}: no @data line; a .ts file lists its series after @data")
    if not out:
        raise DataError(f"{path}: no series after @data")
    width = out[0][0].shape[1]
    for frames, _, where in out:
        if frames.shape[1] != width:
            raise DataError(f"{where}: {frames.shape[1]} channels, but the file's first series "
                            f"has {width}")
    return out


def channel_stats(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every frame of `series` (a channel that
    never varies gets 1, so normalising leaves it at 0)."""
    allf = np.concatenate(series, 0).astype(np.float64)
    mean, std = allf.mean(0), allf.std(0)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
