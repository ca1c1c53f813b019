"""Readers for parallel text: TSV (`source<TAB>target`) or two line-aligned files (optionally
gzip-compressed). Bad lines are reported with file and line number, or skipped and counted."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tandem.config import DataConfig
from tandem.errors import DataError

log = logging.getLogger("tandem")

Pair = tuple[str, str]


@dataclass
class ReadStats:
    """How many lines a reader kept and skipped."""
    read: int = 0
    skipped: int = 0


def open_lines(path: Path) -> list[bytes]:
    """The lines of a file (plain or .gz) as bytes, without line ends ('\\n' or '\\r\\n'); a
    missing, unreadable or empty file is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: the file is empty")
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line as text; bytes that are not UTF-8 are a DataError naming path:lineno."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start})") from None


def bad_line(msg: str, on_bad_line: str, stats: ReadStats) -> None:
    """A bad line: with on_bad_line 'error' a DataError with `msg` (which names file:line and
    what is allowed); with 'skip' count it in `stats` and log the first few."""
    if on_bad_line == "error":
        raise DataError(msg + " (set data.on_bad_line: skip to skip such lines)")
    stats.skipped += 1
    if stats.skipped <= 5:
        log.warning("skipping %s", msg)


def text_lines(path: Path, on_bad_line: str, stats: ReadStats) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of `path` that decodes as UTF-8; the others are bad
    lines (`bad_line`: a DataError naming path:line, or skipped and counted)."""
    for i, raw in enumerate(open_lines(path), 1):
        try:
            yield i, decode_line(raw, path, i)
        except DataError as e:
            bad_line(str(e), on_bad_line, stats)


def _checked(pairs: list[Pair], stats: ReadStats, path: Path) -> tuple[list[Pair], ReadStats]:
    stats.read = len(pairs)
    if not pairs:
        raise DataError(f"{path}: no usable lines")
    return pairs, stats


def read_tsv(path: str | Path, on_bad_line: str = "error") -> tuple[list[Pair], ReadStats]:
    """`source<TAB>target` pairs of a TSV file (plain or .gz); bad lines are a DataError naming
    file:line, or skipped and counted with on_bad_line: skip."""
    path = Path(path)
    pairs: list[Pair] = []
    stats = ReadStats()
    for i, line in text_lines(path, on_bad_line, stats):
        pair = tsv_pair(line, path, i, on_bad_line, stats)
        if pair is not None:
            pairs.append(pair)
    return _checked(pairs, stats, path)


def tsv_pair(line: str, path: Path, lineno: int, on_bad_line: str,
             stats: ReadStats) -> Pair | None:
    """The (source, target) of one TSV line, or None for a bad line that `bad_line` let
    pass (empty, no tab, an empty side)."""
    if not line.strip():
        bad_line(f"{path}:{lineno}: empty line", on_bad_line, stats)
        return None
    if "\t" not in line:
        bad_line(f"{path}:{lineno}: no tab between source and target", on_bad_line, stats)
        return None
    src, tgt = line.split("\t", 1)
    if not src.strip() or not tgt.strip():
        bad_line(f"{path}:{lineno}: empty {'source' if not src.strip() else 'target'}",
                 on_bad_line, stats)
        return None
    return src, tgt


def aligned_pair(raw_src: bytes, raw_tgt: bytes, paths: tuple[Path, Path], lineno: int,
                 on_bad_line: str, stats: ReadStats) -> Pair | None:
    """The (source, target) of line `lineno` of two line-aligned files, or None for a bad
    line that `bad_line` let pass (not UTF-8, an empty side)."""
    src_path, tgt_path = paths
    try:
        src, tgt = decode_line(raw_src, src_path, lineno), decode_line(raw_tgt, tgt_path, lineno)
    except DataError as e:
        bad_line(str(e), on_bad_line, stats)
        return None
    if not src.strip() or not tgt.strip():
        which = src_path if not src.strip() else tgt_path
        bad_line(f"{which}:{lineno}: empty line", on_bad_line, stats)
        return None
    return src, tgt


def read_paired(src_path: str | Path, tgt_path: str | Path,
                on_bad_line: str = "error") -> tuple[list[Pair], ReadStats]:
    """Pairs from two line-aligned files (plain or .gz), with the same error handling as
    read_tsv."""
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    src_lines, tgt_lines = open_lines(src_path), open_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise DataError(f"{src_path} has {len(src_lines)} lines but {tgt_path} has "
                        f"{len(tgt_lines)}; the files must be line-aligned")
    pairs: list[Pair] = []
    stats = ReadStats()
    for i, (rs, rt) in enumerate(zip(src_lines, tgt_lines, strict=True), 1):
        pair = aligned_pair(rs, rt, (src_path, tgt_path), i, on_bad_line, stats)
        if pair is not None:
            pairs.append(pair)
    return _checked(pairs, stats, src_path)


def read_split(path: str, src_suffix: str | None, tgt_suffix: str | None,
               on_bad_line: str = "error") -> list[Pair]:
    """Read one split named in the config: a TSV file, or `path.src_suffix` + `path.tgt_suffix`."""
    if src_suffix is not None and tgt_suffix is not None:
        pairs, stats = read_paired(f"{path}.{src_suffix}", f"{path}.{tgt_suffix}", on_bad_line)
    else:
        pairs, stats = read_tsv(path, on_bad_line)
    if stats.skipped:
        log.warning("%s: skipped %d bad lines, kept %d", path, stats.skipped, stats.read)
    return pairs


def read_references(path: str, src_suffix: str | None = None, tgt_suffix: str | None = None,
                    on_bad_line: str = "error") -> list[Pair]:
    """Evaluation data: like `read_split`, but a TSV line may hold several references
    (`source<TAB>ref1<TAB>ref2...`, the `.ref` format of G2P test sets); one pair per reference."""
    if src_suffix is not None:
        return read_split(path, src_suffix, tgt_suffix, on_bad_line)
    pairs = []
    for src, tgt in read_split(path, None, None, on_bad_line):
        pairs.extend((src, t) for t in tgt.split("\t") if t.strip())
    return pairs


def read_sources(path: str | Path) -> list[str]:
    """Read the source column of a TSV file, or every line of a plain text file."""
    path = Path(path)
    out = []
    for i, raw in enumerate(open_lines(path), 1):
        out.append(decode_line(raw, path, i).split("\t", 1)[0])
    return out


SHARED_DATA = "../shared/data"
CORPUS_FOLDERS = {"cmudict": "cmudict_split", "sst2": "sst2", "names": "names",
                  "ud_ewt": "ud_english_ewt", "tinyshakespeare": "tinyshakespeare"}
"""Each built-in corpus' folder under ../shared/data/ (when data.corpus_dir is null)."""


def corpus_dir(d: DataConfig) -> Path:
    """The folder of the built-in corpus data.corpus: data.corpus_dir, or its folder under
    ../shared/data/."""
    if d.corpus_dir is not None:
        return Path(d.corpus_dir)
    return Path(SHARED_DATA) / CORPUS_FOLDERS.get(d.corpus or "", "")
