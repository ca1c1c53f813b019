"""Training scalars for people: `scalars.csv` in the run folder (step, elapsed_s, tag, value;
one row per value, so new tags never break the header) and TensorBoard event files in
`tensorboard/`. A resumed run first drops the rows logged after its checkpoint."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

from tandem.checkpoint import write_text_atomic

log = logging.getLogger("tandem")

HEADER = ["step", "elapsed_s", "tag", "value"]


class Scalars:
    """The scalar log of a run being trained: opens `run/scalars.csv` (keeping only the rows
    up to `start_step`, the step a resumed run continues from) and, with `tensorboard`,
    TensorBoard event files; `add` appends, `close` closes both."""

    def __init__(self, run: Path, start_step: int, tensorboard: bool = True) -> None:
        self.path = run / "scalars.csv"
        kept = []
        if start_step > 0 and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                kept = [r for r in csv.reader(f) if _complete(r) and int(r[0]) <= start_step]
        buf = io.StringIO()
        csv.writer(buf).writerows([HEADER, *kept])
        write_text_atomic(self.path, buf.getvalue())  # a kill here keeps the old file whole
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
        """One row per finite value of {tag: value} at `step`, `elapsed` seconds into the
        run; flushed at once, so a kill loses nothing already added."""
        for tag, v in values.items():
            if v is None or not math.isfinite(float(v)):
                continue
            self._csv.writerow([step, f"{elapsed:.1f}", tag, f"{float(v):.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(tag, float(v), step)
        self._file.flush()

    def close(self) -> None:
        """Close the CSV file and the TensorBoard writer."""
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def _complete(row: list[str]) -> bool:
    """A whole data row; a line torn by a kill (fewer fields, a cut number) is not."""
    if len(row) != 4 or row == HEADER:
        return False
    try:
        int(row[0]), float(row[1]), float(row[3])
    except ValueError:
        return False
    return bool(row[2])


def read_validations(run: str | Path) -> list[dict]:
    """The run's `valid.jsonl`: one dict per validation (step, elapsed_s, metrics, lr...)."""
    path = Path(run) / "valid.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def read(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from a scalars.csv."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if _complete(row):
                out.setdefault(row[2], []).append((int(row[0]), float(row[3])))
    return out
