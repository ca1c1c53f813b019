"""Tests for the built-in synthetic tasks in tandem.data.tasks."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.data.tasks import DATE_FORMATS, TASKS, generate, make_splits, write_splits
from tandem.errors import ConfigError, TandemError

ALL_TASKS = sorted(TASKS)
LETTER_TASKS = ["copy", "reverse", "sort"]

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _parse_date(source: str) -> tuple[datetime.date, int | None]:
    """An independent parser for the date sources: (date, weekday index if one is written)."""
    text = source.lower()
    if m := re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", text):
        return datetime.date(int(m[3]), int(m[2]), int(m[1])), None
    if m := re.fullmatch(r"(\d{4})/(\d{2})/(\d{2})", text):
        return datetime.date(int(m[1]), int(m[2]), int(m[3])), None
    words = re.findall(r"[a-z]+|\d+", text)
    years = [int(w) for w in words if w.isdigit() and len(w) == 4]
    days = [int(w) for w in words if w.isdigit() and len(w) <= 2]
    months = [i + 1 for w in words for i, name in enumerate(_MONTHS) if w in (name, name[:3])]
    weekdays = [i for w in words for i, name in enumerate(_WEEKDAYS) if w in (name, name[:3])]
    assert len(years) == len(days) == len(months) == 1, source
    assert len(weekdays) <= 1, source
    return datetime.date(years[0], months[0], days[0]), (weekdays[0] if weekdays else None)


# ----------------------------------------------------------------------------- API shape


def test_registry_names() -> None:
    assert set(TASKS) == {"copy", "reverse", "sort", "addition", "dates"}
    assert all(callable(fn) for fn in TASKS.values())


def test_at_least_twelve_date_formats() -> None:
    assert len(DATE_FORMATS) >= 12
    examples = [example for example, _ in DATE_FORMATS]
    assert len(set(examples)) == len(examples)
    # Each documented example is what its renderer produces for 2026-11-25 (a Wednesday).
    day = datetime.date(2026, 11, 25)
    for example, render in DATE_FORMATS:
        assert render(day) == example


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("task", ALL_TASKS)
def test_generate_is_deterministic(task: str) -> None:
    a = generate(task, 200, seed=7)
    b = generate(task, 200, seed=7)
    c = generate(task, 200, seed=8)
    assert a == b
    assert a != c
    assert len(a) == 200
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in a)


def test_generate_does_not_touch_global_random_state() -> None:
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate("copy", 50, seed=1)
    assert random.random() == expected


def test_generate_is_deterministic_across_processes() -> None:
    code = (
        "from tandem.data.tasks import generate, make_splits\n"
        "print(repr(generate('dates', 30, seed=5)))\n"
        "print(repr(make_splits('addition', sizes=(20, 5, 5), seed=5)))\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    outputs = []
    for hash_seed in ("1", "2"):
        env = {"PYTHONPATH": src, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    expected = f"{generate('dates', 30, seed=5)!r}\n"
    expected += f"{make_splits('addition', sizes=(20, 5, 5), seed=5)!r}\n"
    assert outputs[0] == expected


@pytest.mark.parametrize("task", ALL_TASKS)
def test_make_splits_is_deterministic(task: str) -> None:
    a = make_splits(task, sizes=(100, 20, 20), seed=3)
    assert a == make_splits(task, sizes=(100, 20, 20), seed=3)
    assert a != make_splits(task, sizes=(100, 20, 20), seed=4)


# ----------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("task", LETTER_TASKS)
def test_letter_sources(task: str) -> None:
    for source, _ in generate(task, 500, seed=0, min_len=2, max_len=9):
        assert re.fullmatch(r"[a-z]+", source)
        assert 2 <= len(source) <= 9


def test_letter_lengths_cover_range() -> None:
    lengths = {len(s) for s, _ in generate("copy", 2000, seed=0, min_len=1, max_len=15)}
    assert lengths == set(range(1, 16))


def test_copy_targets() -> None:
    assert all(s == t for s, t in generate("copy", 500, seed=1))


def test_reverse_targets() -> None:
    pairs = generate("reverse", 500, seed=1)
    assert all(t == s[::-1] for s, t in pairs)
    assert any(s != t for s, t in pairs)


def test_sort_targets() -> None:
    pairs = generate("sort", 500, seed=1)
    assert all(t == "".join(sorted(s)) for s, t in pairs)
    assert all(list(t) == sorted(t) for _, t in pairs)


@pytest.mark.parametrize(("min_len", "max_len"), [(1, 15), (3, 3), (1, 5), (10, 40), (19, 19)])
def test_addition(min_len: int, max_len: int) -> None:
    pairs = generate("addition", 1000, seed=2, min_len=min_len, max_len=max_len)
    for source, target in pairs:
        assert re.fullmatch(r"(0|[1-9]\d{0,8})\+(0|[1-9]\d{0,8})", source), source
        assert max(3, min_len) <= len(source) <= min(19, max_len)
        a, b = source.split("+")
        assert target == str(int(a) + int(b))


def test_addition_includes_zero_and_carries() -> None:
    pairs = generate("addition", 3000, seed=3, max_len=7)
    operands = {x for s, _ in pairs for x in s.split("+")}
    assert "0" in operands
    assert any(len(t) > max(len(x) for x in s.split("+")) for s, t in pairs)


def test_dates() -> None:
    pairs = generate("dates", 3000, seed=4)
    first, last = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
    source_to_target: dict[str, str] = {}
    weekdays_checked = 0
    for source, target in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        date = datetime.date.fromisoformat(target)
        assert first <= date <= last
        parsed, weekday = _parse_date(source)
        assert parsed == date, (source, target)
        if weekday is not None:
            assert weekday == date.weekday(), (source, target)
            weekdays_checked += 1
        assert source_to_target.setdefault(source, target) == target
    assert weekdays_checked > 100
    # Many formats and case variants actually occur.
    assert len({re.sub(r"\d", "0", s) for s, _ in pairs}) > 40
    assert any(s.isupper() for s, _ in pairs)
    assert any(s != s.lower() and s != s.upper() for s, _ in pairs)


def test_dates_ignore_length_bounds() -> None:
    pairs = generate("dates", 50, seed=4, min_len=1, max_len=1)
    assert all(len(s) > 1 for s, _ in pairs)


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("task", ALL_TASKS)
def test_splits_disjoint_and_sized(task: str) -> None:
    splits = make_splits(task, sizes=(500, 50, 60), seed=9, max_len=8)
    assert list(splits) == ["train", "dev", "test"]
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [500, 50, 60]
    sources = [s for pairs in splits.values() for s, _ in pairs]
    assert len(sources) == len(set(sources))
    if task != "dates":
        assert all(len(s) <= 8 for s in sources)


def test_splits_small_space_terminates() -> None:
    splits = make_splits("copy", sizes=(100, 10, 10), seed=1, min_len=1, max_len=1)
    sources = [s for pairs in splits.values() for s, _ in pairs]
    assert sorted(sources) == list("abcdefghijklmnopqrstuvwxyz")
    # The few sources there are get shared in proportion to the requested sizes.
    assert len(splits["train"]) >= 18
    assert len(splits["dev"]) >= 2
    assert len(splits["test"]) >= 2


def test_splits_small_space_proportional() -> None:
    splits = make_splits("copy", sizes=(20000, 1000, 1000), seed=1, min_len=1, max_len=2)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 26 + 26 * 26
    assert sizes["train"] > 600
    assert 25 <= sizes["dev"] <= 40
    assert 25 <= sizes["test"] <= 40


def test_splits_zero_sizes() -> None:
    splits = make_splits("reverse", sizes=(0, 0, 5), seed=1)
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [0, 0, 5]


def test_write_splits(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "dates"
    paths = write_splits("dates", out, sizes=(40, 7, 9), seed=2)
    assert set(paths) == {"train", "dev", "test"}
    expected = make_splits("dates", sizes=(40, 7, 9), seed=2)
    for split, path in paths.items():
        assert path == out / f"{split}.tsv"
        raw = path.read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        lines = raw.decode("utf-8").split("\n")[:-1]
        assert len(lines) == len(expected[split])
        assert all(line.count("\t") == 1 for line in lines)
        assert [tuple(line.split("\t")) for line in lines] == expected[split]


def test_write_splits_accepts_str_path(tmp_path: Path) -> None:
    paths = write_splits("copy", str(tmp_path), sizes=(3, 2, 1), seed=1)
    assert paths["test"].read_text(encoding="utf-8").count("\n") == 1


# ----------------------------------------------------------------------------- errors


def test_unknown_task_lists_allowed_names() -> None:
    for call in (
        lambda: generate("nope", 1, seed=0),
        lambda: make_splits("nope"),
        lambda: write_splits("nope", "unused-dir"),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "nope" in message
        for name in TASKS:
            assert name in message
    assert issubclass(ConfigError, TandemError)


@pytest.mark.parametrize(
    ("min_len", "max_len", "word"), [(0, 5, "min_len"), (-3, 5, "min_len"), (6, 5, "max_len")]
)
def test_bad_lengths(min_len: int, max_len: int, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        generate("copy", 1, seed=0, min_len=min_len, max_len=max_len)
    with pytest.raises(ConfigError, match=word):
        make_splits("dates", sizes=(1, 1, 1), min_len=min_len, max_len=max_len)


def test_impossible_addition_lengths() -> None:
    with pytest.raises(ConfigError, match="max_len"):
        generate("addition", 1, seed=0, min_len=1, max_len=2)
    with pytest.raises(ConfigError, match="min_len"):
        generate("addition", 1, seed=0, min_len=20, max_len=30)


def test_bad_counts() -> None:
    with pytest.raises(ConfigError, match="n"):
        generate("copy", -1, seed=0)
    with pytest.raises(ConfigError, match="sizes"):
        make_splits("copy", sizes=(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sizes"):
        make_splits("copy", sizes=(1, -2, 3))
