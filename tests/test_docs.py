"""The generated reference pages (docs/config.md, docs/cli.md) match the code they come from,
and every config key is documented where the generator reads it."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tandem.config import Config

REPO = Path(__file__).resolve().parents[1]


def _gen():
    """scripts/gen_docs.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = mod  # dataclasses look their module up while it is executed
    spec.loader.exec_module(mod)
    return mod


gen = _gen()


def _section_classes() -> dict[str, type]:
    """The config sections as the code defines them: Config's dataclass-valued fields."""
    cfg = Config()
    return {f.name: type(getattr(cfg, f.name)) for f in dataclasses.fields(Config)
            if dataclasses.is_dataclass(getattr(cfg, f.name))}


@pytest.mark.parametrize("name", ["config.md", "cli.md", "benchmarks.md"])
def test_generated_page_is_up_to_date(name):
    path = REPO / "docs" / name
    expected = gen.outputs()[path]
    assert path.is_file(), f"docs/{name} is missing: run `make docs`"
    assert path.read_text(encoding="utf-8") == expected, (
        f"docs/{name} is stale (the code or benchmarks/results changed since it was "
        "generated): run `make docs`")


def test_every_config_field_has_a_docstring():
    missing = gen.undocumented()
    assert not missing, ("config fields without an attribute docstring (a string literal on the "
                         "line after the field in src/tandem/config.py): " + ", ".join(missing))


def test_the_generator_sees_every_section_and_every_field():
    """What the generator parsed with `ast` is what the dataclasses hold, in the same order."""
    sections, _ = gen.parse_config()
    parsed = {s.key: [f.name for f in s.fields] for s in sections if s.key}
    real = {key: [f.name for f in dataclasses.fields(cls)]
            for key, cls in _section_classes().items()}
    assert set(real) == {"data", "model", "train", "decode"}
    assert parsed == real
    top = [f.name for f in dataclasses.fields(Config) if f.name not in real]
    assert [f.name for f in sections[0].fields] == top


def test_config_page_has_a_row_per_key_with_its_default():
    text = gen.render_config()
    for key, cls in _section_classes().items():
        for f in dataclasses.fields(cls):
            rows = [line for line in text.splitlines() if line.startswith(f"| `{key}.{f.name}` |")]
            assert len(rows) == 1, f"{key}.{f.name}"
    row = next(line for line in text.splitlines() if line.startswith("| `model.cell` |"))
    assert "`rnn`, `gru`, `lstm`" in row and "| `lstm` |" in row  # Literal values, default
    row = next(line for line in text.splitlines() if line.startswith("| `train.lr` |"))
    assert "| `1e-3` |" in row and "`float`" in row  # the default as written in the code


def test_cli_page_lists_every_command_and_flag():
    import argparse

    from tandem.cli import build_parser

    text = gen.render_cli()
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        assert f"\n## tandem {name}\n" in text, name
        section = text.split(f"\n## tandem {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in section, f"tandem {name} {flag}"


def test_a_field_without_docstring_is_reported(tmp_path):
    src = tmp_path / "config.py"
    src.write_text(
        "from dataclasses import dataclass, field\n"
        "from typing import Literal\n"
        "Kind = Literal['a', 'b']\n"
        "@dataclass\nclass ASection:\n"
        "    x: int = 3\n    \"\"\"An x.\"\"\"\n"
        "    y: Kind = 'a'\n"
        "@dataclass\nclass Config:\n"
        "    name: str = 'run'\n"
        "    a: ASection = field(default_factory=ASection)\n",
        encoding="utf-8",
    )
    assert gen.undocumented(src) == ["a.y (config.py:8)"]
    text = gen.render_config(src)
    assert "| `a.x` | `int` | `3` | An x. |" in text
    assert "| `a.y` | one of `a`, `b` | `a` |  |" in text


# --- the hand-written pages: links, test names, length ---------------------------------------

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lowercased, punctuation removed,
    spaces to hyphens."""
    text = heading.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading in {dest.name})")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_the_reliability_table_names_tests_that_exist():
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    refs = re.findall(r"`tests/(\w+\.py)::(\w*)(\*?)`", text)
    assert len(refs) >= 30
    missing = []
    for file, name, star in refs:
        path = REPO / "tests" / file
        defs = re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M) \
            if path.is_file() else []
        if not any(d == name or (star and d.startswith(name)) for d in defs):
            missing.append(f"tests/{file}::{name}{star}")
    assert not missing, ("docs/reliability.md names tests that do not exist (moved or "
                         f"renamed? update the table): {missing}")


def test_readme_stays_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, (f"README.md has {lines} lines; details belong in docs/ "
                          "(results and run history in docs/benchmarks.md)")
