"""Training scalars for people: `scalars.csv` in the run folder (step, elapsed_s, tag, value;
one row per value, so new tags never break the header) and TensorBoard event files in
`tensorboard/`. A resumed run first drops the rows logged after its checkpoint."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

log = logging.getLogger("tandem")

HEADER = ["step", "elapsed_s", "tag", "value"]


class Scalars:
    def __init__(self, run: Path, start_step: int, tensorboard: bool = True) -> None:
        self.path = run / "scalars.csv"
        kept = []
        if start_step > 0 and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                kept = [r for r in csv.reader(f) if r and r != HEADER and _step(r) <= start_step]
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([HEADER, *kept])
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._file)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run / "tensorboard"),
                                        purge_step=start_step + 1 if start_step else None)
            except ImportError as e:  # the package is a dependency; a broken install is not fatal
                log.warning("no TensorBoard event files (%s); scalars.csv is still written", e)

    def add(self, step: int, elapsed: float, values: dict[str, float]) -> None:
        for tag, v in values.items():
            if v is None or not math.isfinite(float(v)):
                continue
            self._csv.writerow([step, f"{elapsed:.1f}", tag, f"{float(v):.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(tag, float(v), step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def _step(row: list[str]) -> int:
    try:
        return int(row[0])
    except (ValueError, IndexError):
        return 1 << 62  # a torn last line from a kill: dropped


def read(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from a scalars.csv."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) != 4 or row == HEADER:
                continue
            try:
                out.setdefault(row[2], []).append((int(row[0]), float(row[3])))
            except ValueError:
                continue
    return out
