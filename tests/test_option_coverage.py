"""Every option a user can set is pinned by a behaviour test.

A behaviour test names the options it pins with `@pytest.mark.pins(...)`: config keys as
dotted names (`train.clip_grad`, `name`), CLI flags as `COMMAND --flag` (`translate --chunk`)
and positionals as `COMMAND <dest>` (`g2p <words>`). Naming an option there is a promise that
the test fails if the option were silently ignored: it compares the option's effect against an
independent expectation, not merely that the code ran. The meta-tests below hold every config
key and every flag of every command to that promise, so a new option without such a test fails
the suite, and a pin naming an option that no longer exists fails it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import sys
from pathlib import Path

from tandem.cli import build_parser
from tandem.config import Config

TESTS = Path(__file__).resolve().parent


@functools.cache
def config_keys() -> frozenset[str]:
    """Every dotted key of the config: `name`, `data.task`, ..., `decode.beam`."""
    out = set()
    for f in dataclasses.fields(Config):
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            out.update(f"{f.name}.{g.name}" for g in dataclasses.fields(factory))
        else:
            out.add(f.name)
    return frozenset(out)


def cli_options(parser: argparse.ArgumentParser | None = None) -> set[str]:
    """Every `COMMAND --flag` (its first spelling) and `COMMAND <positional>` of the CLI."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = set()
    for command, p in sub.choices.items():
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.option_strings:
                long = [o for o in action.option_strings if o.startswith("--")]
                out.add(f"{command} {(long or action.option_strings)[0]}")
            else:
                out.add(f"{command} <{action.dest}>")
    return out


@functools.cache
def pinned_options() -> dict[str, list[str]]:
    """Each option named by a `pins` mark in tests/test_*.py -> the tests that name it."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    out: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        for name, obj in vars(module).items():
            targets = [(name, obj)]
            if isinstance(obj, type) and name.startswith("Test"):
                targets = [(f"{name}.{m}", f) for m, f in vars(obj).items()]
            for test_name, fn in targets:
                if not test_name.split(".")[-1].startswith("test") or not callable(fn):
                    continue
                for mark in getattr(fn, "pytestmark", []):
                    if mark.name == "pins":
                        for option in mark.args:
                            out.setdefault(option, []).append(f"{path.name}::{test_name}")
    return out


def unpinned(options: set[str] | frozenset[str], pins: dict[str, list[str]]) -> list[str]:
    return sorted(options - set(pins))


def test_every_config_key_is_pinned_by_a_behaviour_test():
    missing = unpinned(config_keys(), pinned_options())
    assert not missing, ("config keys that no test pins (add a test that fails when the key is "
                         f"ignored, marked @pytest.mark.pins(KEY)): {missing}")


def test_every_cli_option_is_pinned_by_a_behaviour_test():
    missing = unpinned(cli_options(), pinned_options())
    assert not missing, ("CLI options that no test pins (add a test that fails when the flag is "
                         f"ignored, marked @pytest.mark.pins('COMMAND --flag')): {missing}")


def test_every_pin_names_an_option_that_exists():
    stale = {o: t for o, t in pinned_options().items()
             if o not in config_keys() | cli_options()}
    assert not stale, f"pins naming options the config and CLI do not have: {stale}"


def test_a_made_up_option_without_a_test_is_reported():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["translate"].add_argument("--made-up-flag", type=int)
    pins = pinned_options()
    assert "translate --made-up-flag" in unpinned(cli_options(parser), pins)
    assert "translate --made-up-flag" not in unpinned(cli_options(), pins)
    assert "data.made_up_key" in unpinned(config_keys() | {"data.made_up_key"}, pins)
