"""What the commands read line by line: --input (a file, TSV: its first column) or stdin."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from tandem.errors import DataError

log = logging.getLogger("tandem")


def check_input(path: str | None, what: str = "one input per line") -> None:
    """A DataError naming --input when it is not an existing file; checked before a model
    loads, so a mistyped name fails at once."""
    if path is not None and not Path(path).is_file():
        raise DataError(f"--input {path}: file not found; give a text file ({what}), or leave "
                        "--input out to read stdin")


def iter_inputs(path: str | None) -> Iterator[str]:
    """Lines of a file (TSV: the first column) or of stdin, read lazily, UTF-8 checked."""
    label = path or "<stdin>"
    f = open(path, "rb") if path else sys.stdin.buffer  # noqa: SIM115
    try:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:  # translate what can be read; say what was not
                log.warning("%s:%d: not valid UTF-8 (byte %d); undecodable bytes replaced by "
                            "U+FFFD", label, i, e.start)
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            yield line.split("\t", 1)[0] if path else line
    finally:
        if path:
            f.close()
