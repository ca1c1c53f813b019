"""Built-in synthetic seq2seq tasks, generated deterministically from a seed.

Nothing is read from disk or the network: every pair is drawn from a private
``random.Random`` seeded by the caller, so the same arguments give the same data in
every process and on every machine.

Tasks (``source -> target``):

``copy``
    Lowercase letters, no spaces, length uniform in ``[min_len, max_len]``; target is the
    source unchanged (``"qxbd" -> "qxbd"``).
``reverse``
    Same sources; target is the source reversed (``"qxbd" -> "dbxq"``).
``sort``
    Same sources; target is the characters in sorted order (``"qxbd" -> "bdqx"``).
``addition``
    ``"123+45" -> "168"``. The source length (operands plus the ``+``) is uniform in
    ``[max(3, min_len), min(19, max_len)]``, each operand has 1 to 9 digits and no leading
    zeros (except the number 0 itself). Needs ``max_len >= 3`` and ``min_len <= 19``.
``dates``
    A date between 1900-01-01 and 2099-12-31 written in one of :data:`DATE_FORMATS`
    human formats, with random case variants -> ISO 8601 ``"YYYY-MM-DD"``. Every format
    is unambiguous, so the target is fully determined by the source. ``min_len`` and
    ``max_len`` are validated but otherwise ignored for this task.
"""

from __future__ import annotations

import datetime
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

from tandem.errors import ConfigError

__all__ = ["DATE_FORMATS", "SPLITS", "TASKS", "generate", "make_splits", "write_splits"]

Pair = tuple[str, str]
TaskFn = Callable[[random.Random, int, int], Pair]

SPLITS: tuple[str, str, str] = ("train", "dev", "test")

_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Hard-coded English names: the ``calendar`` module's names depend on the locale.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_FIRST_DATE = datetime.date(1900, 1, 1).toordinal()
_LAST_DATE = datetime.date(2099, 12, 31).toordinal()

_MAX_OPERAND_DIGITS = 9
_MIN_ADDITION_LEN = 3  # "1+2"
_MAX_ADDITION_LEN = 2 * _MAX_OPERAND_DIGITS + 1


# --------------------------------------------------------------------------- letters


def _letters(rng: random.Random, min_len: int, max_len: int) -> str:
    length = rng.randint(min_len, max_len)
    return "".join(rng.choices(_LETTERS, k=length))


def _copy(rng: random.Random, min_len: int, max_len: int) -> Pair:
    source = _letters(rng, min_len, max_len)
    return source, source


def _reverse(rng: random.Random, min_len: int, max_len: int) -> Pair:
    source = _letters(rng, min_len, max_len)
    return source, source[::-1]


def _sort(rng: random.Random, min_len: int, max_len: int) -> Pair:
    source = _letters(rng, min_len, max_len)
    return source, "".join(sorted(source))


# --------------------------------------------------------------------------- addition


def _number(rng: random.Random, digits: int) -> int:
    """A uniform non-negative integer with exactly ``digits`` digits (0 counts as 1 digit)."""
    if digits == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _addition(rng: random.Random, min_len: int, max_len: int) -> Pair:
    low = max(_MIN_ADDITION_LEN, min_len)
    high = min(_MAX_ADDITION_LEN, max_len)
    length = rng.randint(low, high)
    operand_chars = length - 1
    first_digits = rng.randint(
        max(1, operand_chars - _MAX_OPERAND_DIGITS), min(_MAX_OPERAND_DIGITS, operand_chars - 1)
    )
    a = _number(rng, first_digits)
    b = _number(rng, operand_chars - first_digits)
    return f"{a}+{b}", str(a + b)


# --------------------------------------------------------------------------- dates


def _ordinal_suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _month(d: datetime.date) -> str:
    return _MONTHS[d.month - 1]


def _mon(d: datetime.date) -> str:
    return _MONTHS[d.month - 1][:3]


def _weekday(d: datetime.date) -> str:
    return _WEEKDAYS[d.weekday()]


def _wd(d: datetime.date) -> str:
    return _WEEKDAYS[d.weekday()][:3]


def _nth(d: datetime.date) -> str:
    return f"{d.day}{_ordinal_suffix(d.day)}"


# Each format is unambiguous: the year is always four digits, months are either names or
# appear in exactly one numeric order per separator ("." is day-first, "/" is year-first),
# and weekdays are always the true weekday of the date.
DATE_FORMATS: tuple[tuple[str, Callable[[datetime.date], str]], ...] = (
    ("25 November 2026", lambda d: f"{d.day} {_month(d)} {d.year}"),
    ("November 25, 2026", lambda d: f"{_month(d)} {d.day}, {d.year}"),
    ("Nov 25 2026", lambda d: f"{_mon(d)} {d.day} {d.year}"),
    ("25 Nov 2026", lambda d: f"{d.day} {_mon(d)} {d.year}"),
    ("25.11.2026", lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"),
    ("2026/11/25", lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}"),
    ("Wednesday, 25 November 2026", lambda d: f"{_weekday(d)}, {d.day} {_month(d)} {d.year}"),
    ("wed nov 25 2026", lambda d: f"{_wd(d)} {_mon(d)} {d.day} {d.year}".lower()),
    ("Wed, Nov 25, 2026", lambda d: f"{_wd(d)}, {_mon(d)} {d.day}, {d.year}"),
    ("25th of November 2026", lambda d: f"{_nth(d)} of {_month(d)} {d.year}"),
    ("the 25th of november, 2026", lambda d: f"the {_nth(d)} of {_month(d)}, {d.year}".lower()),
    ("November 25th, 2026", lambda d: f"{_month(d)} {_nth(d)}, {d.year}"),
    ("NOVEMBER 25 2026", lambda d: f"{_month(d)} {d.day} {d.year}".upper()),
    ("25-nov-2026", lambda d: f"{d.day}-{_mon(d)}-{d.year}".lower()),
    ("2026 november 25", lambda d: f"{d.year} {_month(d)} {d.day}".lower()),
)


def _case_variant(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.6:
        return text
    if roll < 0.8:
        return text.lower()
    return text.upper()


def _dates(rng: random.Random, min_len: int, max_len: int) -> Pair:
    del min_len, max_len  # length bounds do not apply to dates
    date = datetime.date.fromordinal(rng.randint(_FIRST_DATE, _LAST_DATE))
    _, render = DATE_FORMATS[rng.randrange(len(DATE_FORMATS))]
    return _case_variant(rng, render(date)), date.isoformat()


# --------------------------------------------------------------------------- public API

TASKS: dict[str, TaskFn] = {
    "copy": _copy,
    "reverse": _reverse,
    "sort": _sort,
    "addition": _addition,
    "dates": _dates,
}


def _task_fn(task: str, min_len: int, max_len: int) -> TaskFn:
    """Look up ``task`` and check the length bounds; raise :class:`ConfigError` if invalid."""
    fn = TASKS.get(task) if isinstance(task, str) else None
    if fn is None:
        allowed = ", ".join(sorted(TASKS))
        raise ConfigError(f"unknown task {task!r}; allowed tasks: {allowed}")
    if not isinstance(min_len, int) or isinstance(min_len, bool) or min_len < 1:
        raise ConfigError(f"min_len must be an integer >= 1, got {min_len!r}")
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < min_len:
        raise ConfigError(f"max_len must be an integer >= min_len ({min_len}), got {max_len!r}")
    if task == "addition":
        if max_len < _MIN_ADDITION_LEN:
            raise ConfigError(
                f"max_len must be >= {_MIN_ADDITION_LEN} for task 'addition' "
                f"(shortest source is '1+2'), got {max_len}"
            )
        if min_len > _MAX_ADDITION_LEN:
            raise ConfigError(
                f"min_len must be <= {_MAX_ADDITION_LEN} for task 'addition' "
                f"(operands have at most {_MAX_OPERAND_DIGITS} digits), got {min_len}"
            )
    return fn


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def generate(
    task: str, n: int, seed: int, min_len: int = 1, max_len: int = 15
) -> list[tuple[str, str]]:
    """Return ``n`` independently drawn ``(source, target)`` pairs of ``task``.

    Pairs may repeat; use :func:`make_splits` for de-duplicated, disjoint splits.
    """
    fn = _task_fn(task, min_len, max_len)
    _check_count("n", n)
    rng = random.Random(seed)
    return [fn(rng, min_len, max_len) for _ in range(n)]


def _split_seed(seed: int, task: str, split: str) -> int:
    """A seed for one split, stable across processes (unlike the built-in ``hash``)."""
    digest = hashlib.sha256(f"tandem.tasks/{task}/{seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def make_splits(
    task: str,
    sizes: tuple[int, int, int] = (20000, 1000, 1000),
    seed: int = 1,
    min_len: int = 1,
    max_len: int = 15,
) -> dict[str, list[tuple[str, str]]]:
    """Generate ``train``/``dev``/``test`` splits whose sources are all distinct.

    No source appears twice, within a split or across splits. Each split draws from its own
    random stream (seeded from ``seed``, ``task`` and the split name); new sources go to
    whichever split is least full relative to its requested size, so when the space of
    sources is too small for ``sum(sizes)`` every split gets its proportional share. Drawing
    stops once enough consecutive draws were all duplicates; the splits are then returned
    short instead of looping forever (e.g. ``copy`` with ``min_len == max_len == 1``).
    """
    fn = _task_fn(task, min_len, max_len)
    if not isinstance(sizes, (tuple, list)) or len(sizes) != 3:
        raise ConfigError(f"sizes must be three integers (train, dev, test), got {sizes!r}")
    wanted = {
        split: _check_count(f"sizes[{i}] ({split})", size)
        for i, (split, size) in enumerate(zip(SPLITS, sizes, strict=True))
    }

    rngs = {split: random.Random(_split_seed(seed, task, split)) for split in SPLITS}
    splits: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    seen: set[str] = set()
    max_misses = max(2000, max(wanted.values()))
    misses = 0
    while misses < max_misses:
        open_splits = [split for split in SPLITS if len(splits[split]) < wanted[split]]
        if not open_splits:
            break
        split = min(open_splits, key=lambda name: len(splits[name]) / wanted[name])
        source, target = fn(rngs[split], min_len, max_len)
        if source in seen:
            misses += 1
            continue
        misses = 0
        seen.add(source)
        splits[split].append((source, target))
    return splits


def write_splits(
    task: str,
    out_dir: str | Path,
    sizes: tuple[int, int, int] = (20000, 1000, 1000),
    seed: int = 1,
    min_len: int = 1,
    max_len: int = 15,
) -> dict[str, Path]:
    """Write ``train.tsv``, ``dev.tsv`` and ``test.tsv`` into ``out_dir``; return their paths.

    Each line is ``source<TAB>target``, UTF-8, every line (including the last) ends in ``\\n``.
    """
    splits = make_splits(task, sizes=sizes, seed=seed, min_len=min_len, max_len=max_len)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split in SPLITS:
        path = out / f"{split}.tsv"
        text = "".join(f"{source}\t{target}\n" for source, target in splits[split])
        path.write_text(text, encoding="utf-8", newline="\n")
        paths[split] = path
    return paths
