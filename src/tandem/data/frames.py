"""Sequences of feature vectors (frames) as inputs: the `.ts` format of the UEA/UCR time
series archive, `.npz` arrays, and per-channel normalisation.

A `.npz` file (numpy.savez) holds `x`, an (N, T, C) array of numbers (or (N, T): one channel),
`y`, the N labels (classify), target texts (seq2seq) or, for tag, an (N, T) array of a label
per frame, and optionally `lengths`, the real length of each padded series (default T).

A `.ts` file has `#` comment lines, `@` header lines (`@dimensions C`, `@classLabel true A B
...`), then after `@data` one series a line: C channels separated by `:`, the values of a
channel by `,`, the class label after the last `:`. A series is read as a float32 array (T, C):
frame t holds every channel's value at step t. Every refusal names the file and line.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from tandem.data.corpora import open_lines
from tandem.errors import DataError

Series = tuple[np.ndarray, "str | list[str]", str]
"""(frames (T, C) float32, label (or, per frame, a list of T labels), where: file:line)."""


def read_ts(path: str | Path) -> list[Series]:
    """The labelled series of a `.ts` file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; give a .ts file of the UEA/UCR archive")
    dims: int | None = None
    labels: set[str] | None = None
    labelled = True
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
            elif head[0] == "@classlabel" and len(head) > 1 and head[1] == "false":
                labelled = False
            elif head[0] == "@data":
                in_data = True
            continue
        parts = line.split(":")
        if labelled and len(parts) < 2:
            raise DataError(f"{where}: a series needs its channels and a class label after the "
                            "last ':' (channels separated by ':', values by ',')")
        *channels, label = parts if labelled else [*parts, "-"]
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


def read_npz(path: str | Path, labelled: bool = True, per_frame: bool = False
             ) -> list[Series]:
    """The labelled series of a `.npz` file (`x`, `y`, optional `lengths`; `y` optional when
    not `labelled`; with `per_frame`, y is (N, T), a label per frame); the error of a
    malformed one names the file, the array and the series."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; give a .npz file with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a .npz file of arrays ({e})") from None
    if not labelled and "x" in arrays:  # inputs to predict: labels, if any, are not read
        per_frame = False
        arrays["y"] = np.array(["-"] * len(arrays["x"]))
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: no array {' or '.join(missing)}; a .npz of series holds x "
                        "(N, T, C) numbers, y (N,) labels and optionally lengths (N,)")
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: x has shape {x.shape} ({x.dtype}); give (N, T, C) numbers")
    if per_frame and y.shape != x.shape[:2]:
        raise DataError(f"{path}: y has shape {y.shape}; a tagger's y holds a label per frame, "
                        f"shape (N, T) = {x.shape[:2]}")
    if not per_frame and y.shape != (len(x),):
        hint = (" (a label per frame, shape (N, T), is for model.structure: tag)"
                if y.shape == x.shape[:2] else "")
        raise DataError(f"{path}: y has shape {y.shape}; give one label per series "
                        f"({len(x)}){hint}")
    lengths = arrays.get("lengths", np.full(len(x), x.shape[1]))
    if lengths.shape != (len(x),) or (lengths < 1).any() or (lengths > x.shape[1]).any():
        raise DataError(f"{path}: lengths must be {len(x)} numbers in [1, {x.shape[1]}]")
    out = []
    for i in range(len(x)):
        frames = x[i, : int(lengths[i])].astype(np.float32)
        if not np.isfinite(frames).all():
            raise DataError(f"{path}: series {i} (x[{i}]) holds NaN or infinity")
        n = int(lengths[i])
        label = ([_text(v) for v in y[i, :n]] if per_frame else _text(y[i]))
        out.append((frames, label, f"{path}: series {i}"))
    if not out:
        raise DataError(f"{path}: no series in x")
    return out


def _text(v) -> str:
    return str(v.item() if hasattr(v, "item") else v)


def read_series(path: str | Path, labelled: bool = True, per_frame: bool = False
                ) -> list[Series]:
    """The labelled series of a `.ts` or `.npz` file; with `labelled=False` (inputs to
    predict) also a `.npy` array, (T, C) one series or (N, T, C) several, and labels may be
    absent (given as "-"). `per_frame`: a label per frame (tag), from a .npz only."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return read_npz(path, labelled, per_frame and labelled)
    if suffix == ".ts":
        if per_frame and labelled:
            raise DataError(f"{path}: a .ts file holds one label per series; a label per "
                            "frame (model.structure: tag) is read from a .npz whose y is "
                            "(N, T)")
        return read_ts(path)
    if suffix == ".npy" and not labelled:
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a .npy array ({e})") from None
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.number) or not arr.size:
            raise DataError(f"{path}: an array of shape {arr.shape}; give (T, C) or (N, T, C) "
                            "numbers")
        return [(a.astype(np.float32), "-", f"{path}: series {i}") for i, a in enumerate(arr)]
    raise DataError(f"{path}: series of frames are read from .ts (the UEA/UCR archive's "
                    f"format){'' if labelled else ', .npy'} or .npz (x, y, lengths) files")


def channel_stats(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every frame of `series` (a channel that
    never varies gets 1, so normalising leaves it at 0)."""
    allf = np.concatenate(series, 0).astype(np.float64)
    mean, std = allf.mean(0), allf.std(0)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def frame_stats(series: list[np.ndarray], normalise: bool) -> tuple[list[float], list[float]]:
    """What a model over frames stores to normalise its inputs (data.frame_norm): the training
    frames' per-channel mean and std as plain floats, or two empty lists when not asked."""
    if not normalise:
        return [], []
    mean, std = channel_stats(series)
    return [float(v) for v in mean], [float(v) for v in std]


def frame_splits(d, per_frame: bool = False) -> tuple[list[Series], list[Series], list[Series]]:
    """train / dev / test series of a frames config (`DataConfig`): data.train, data.dev
    (or a data.frame_dev_fraction share of train drawn with data.split_seed) and data.test
    (empty when unset)."""
    train = read_series(d.train, per_frame=per_frame)
    if d.dev is not None:
        dev = read_series(d.dev, per_frame=per_frame)
    else:
        order = list(range(len(train)))
        random.Random(d.split_seed).shuffle(order)
        held = set(order[: int(round(len(train) * d.frame_dev_fraction))])
        dev = [s for i, s in enumerate(train) if i in held]
        train = [s for i, s in enumerate(train) if i not in held]
    test = read_series(d.test, per_frame=per_frame) if d.test is not None else []
    width = train[0][0].shape[1]
    for split in (dev, test):
        for x, _, where in split:
            if x.shape[1] != width:
                raise DataError(f"{where}: frames of {x.shape[1]} numbers, but the training "
                                f"series have {width} channels")
    return train, dev, test


def normalise(series, width: int, mean: list[float], std: list[float]) -> np.ndarray:
    """A series of frames (T, C) as a model over frames of `width` numbers reads it: float32,
    each channel normalised by the training data's `mean` and `std` (when kept: empty
    lists leave it as is); another shape, or NaN or infinity, is a DataError."""
    arr = np.asarray(series, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != width or not len(arr):
        raise DataError(f"a series of shape {tuple(arr.shape)}: the model reads frames of "
                        f"{width} numbers, an array (T >= 1, {width})")
    if not np.isfinite(arr).all():
        raise DataError("a series holds NaN or infinity; the model reads finite numbers")
    if mean:
        arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return arr


def segments(labels: list[str]) -> list[tuple[int, int, str]]:
    """Runs of equal labels: [(first frame, last frame + 1, label)], in order."""
    out: list[tuple[int, int, str]] = []
    for t, lab in enumerate(labels):
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], t + 1, lab)
        else:
            out.append((t, t + 1, lab))
    return out
