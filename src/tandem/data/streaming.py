"""Training corpora larger than memory (`data.streaming: true`, seq2seq): the training file (a
TSV, or two line-aligned files; plain or gzip) is read lazily, `data.shuffle_buffer` pairs at
a time. Each such pool is shuffled and cut into length-bucketed batches by token count (the
same `token_batches` as in memory), and its batches go out in a shuffled order; then the next
pool is read. Memory holds one pool, whatever the corpus size.

The order is a pure function of the run's seed, the epoch and the file: pool k of an epoch is
shuffled by a generator seeded from (the epoch's draw, k). A `StreamPosition` (the pool, the
byte offsets where it starts, its first line number, the batches of it already given) is
saved in resumable checkpoints, so a resume seeks straight to the pool and continues with
the very next batch, without reading the corpus again from the start.

Unlike an in-memory epoch, examples only mix within a pool: a corpus sorted by topic or
length needs a buffer large enough to mix it (or a shuffle of the file beforehand), as with
the streaming readers of fairseq and OpenNMT-py.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from tandem.data.batching import Example, token_batches
from tandem.data.corpora import (
    Pair,
    ReadStats,
    aligned_pair,
    bad_line,
    decode_line,
    tsv_pair,
)
from tandem.errors import DataError


@dataclass
class StreamPosition:
    """Where a streamed epoch stands: pool `pool` starts at byte `offsets` (one per file) on
    line `line` (1-based), and its first `batch` batches have been given out."""

    pool: int = 0
    offsets: list[int] = field(default_factory=lambda: [0])
    line: int = 1
    batch: int = 0

    def state(self) -> dict:
        """As plain values, for a checkpoint."""
        return asdict(self)


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from None


def _strip(raw: bytes) -> bytes:
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    return raw[:-1] if raw.endswith(b"\r") else raw


class PairStream:
    """The pairs of one training split, read lazily: `path` a TSV file, or with both
    suffixes the files `path.src_suffix` and `path.tgt_suffix` (line-aligned). Bad lines as
    in memory: a DataError naming file:line, or skipped and counted (`data.on_bad_line`)."""

    def __init__(self, path: str, src_suffix: str | None = None, tgt_suffix: str | None = None,
                 on_bad_line: str = "error") -> None:
        self.paired = src_suffix is not None and tgt_suffix is not None
        self.paths = ([Path(f"{path}.{src_suffix}"), Path(f"{path}.{tgt_suffix}")]
                      if self.paired else [Path(path)])
        self.on_bad_line = on_bad_line
        self.stats = ReadStats()
        for p in self.paths:
            _open(p).close()  # a missing file is an error now, not at the first batch

    def pools(self, size: int, start: StreamPosition | None = None
              ) -> Iterator[tuple[StreamPosition, list[Pair]]]:
        """(position of the pool's start, its pairs) for consecutive pools of `size` lines
        from `start` (default: the beginning) to the end of the file."""
        start = start or StreamPosition(offsets=[0] * len(self.paths))
        files = [_open(p) for p in self.paths]
        try:
            for f, off in zip(files, start.offsets, strict=True):
                f.seek(off)
            pool, line = start.pool, start.line
            while True:
                here = StreamPosition(pool, [f.tell() for f in files], line)
                pairs, line, done = self._read(files, size, line)
                if pairs:
                    yield here, pairs
                if done:
                    return
                pool += 1
        finally:
            for f in files:
                f.close()

    def head(self, n: int) -> list[Pair]:
        """The first `n` usable pairs (what vocabularies are built on)."""
        for _, pairs in self.pools(n):
            return pairs
        raise DataError(f"{self.paths[0]}: no usable lines")

    def _read(self, files: list[IO[bytes]], size: int, line: int
              ) -> tuple[list[Pair], int, bool]:
        """Up to `size` lines from `files`: (usable pairs, the next line number, at end)."""
        pairs: list[Pair] = []
        for _ in range(size):
            raws = [f.readline() for f in files]
            if not raws[0] or (self.paired and not raws[1]):
                if self.paired and bool(raws[0]) != bool(raws[1]):
                    short = self.paths[1] if raws[0] else self.paths[0]
                    raise DataError(f"{short} ends at line {line - 1} but the other file goes "
                                    "on; the files must be line-aligned")
                return pairs, line, True
            if self.paired:
                pair = aligned_pair(_strip(raws[0]), _strip(raws[1]),
                                    (self.paths[0], self.paths[1]), line, self.on_bad_line,
                                    self.stats)
            else:
                try:
                    text = decode_line(_strip(raws[0]), self.paths[0], line)
                except DataError as e:  # not UTF-8: a bad line like the others
                    bad_line(str(e), self.on_bad_line, self.stats)
                    text = None
                pair = None if text is None else tsv_pair(text, self.paths[0], line,
                                                           self.on_bad_line, self.stats)
            if pair is not None:
                pairs.append(pair)
            line += 1
        return pairs, line, False


def pool_seed(epoch_seed: int, pool: int) -> int:
    """The seed of pool `pool`'s shuffle in an epoch whose draw was `epoch_seed`."""
    return epoch_seed * 1_000_003 + pool


def streamed_batches(stream: PairStream, encode, buffer: int, batch_tokens: int,
                     epoch_seed: int, start: StreamPosition | None = None
                     ) -> Iterator[tuple[list[Example], StreamPosition]]:
    """One epoch of training batches from `stream`: (examples of the batch, the position
    after it). `encode` turns a pool's pairs into examples (dropping what the length limits
    drop); `start` resumes inside the epoch (its pool, then batches from `start.batch` on)."""
    skip = start.batch if start is not None else 0
    for here, pairs in stream.pools(buffer, start):
        examples = encode(pairs)
        plan = token_batches(examples, batch_tokens, random.Random(pool_seed(epoch_seed,
                                                                             here.pool)))
        for b in range(skip, len(plan)):
            after = StreamPosition(here.pool, here.offsets, here.line, b + 1)
            yield [examples[i] for i in plan[b]], after
        skip = 0
