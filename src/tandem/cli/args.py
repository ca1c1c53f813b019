"""The flags several commands share, and the argparse types of their values: the decoding flags
(one per DecodeConfig field), --device, whole numbers >= 1 and file-name tags."""

from __future__ import annotations

import argparse
import re
import typing

DECODE_TITLE = "decoding (defaults: the model's decode section)"
"""The title of the decoding flags' group in a command's --help."""

NO_ALIASES = {
    "--forbid-unk": ("allow_unk", "the same as --no-allow-unk"),
    "--greedy": ("sample", "the same as --no-sample: the most likely token at every step, or "
                           "with --beam N a beam search"),
}
"""Other names of a yes/no decoding flag's --no-X form: {flag: (the field it sets to False,
its help)}. --forbid-unk is on every command that has --allow-unk, so that command lines
written with it keep working; a command asks for --greedy by name."""


def decode_args(p: argparse.ArgumentParser, defaults: dict | None = None,
                skip: tuple[str, ...] = (), models: bool = True,
                aliases: tuple[str, ...] = ("--forbid-unk",),
                title: str = DECODE_TITLE) -> argparse._ArgumentGroup:
    """One flag per decoding option, generated from DecodeConfig's fields: the field name
    with dashes (--no-repeat-ngram-size), its type, its choices and its docstring as the
    help; a yes/no field gets --X and --no-X, and the `aliases` of NO_ALIASES whose field is
    there. An unset flag is None: the model's value is kept. `defaults` replaces None for
    some fields; `skip` leaves fields out; `models` adds --quantize and --rescore (--device
    is always there). Adding a field to DecodeConfig adds its flag here. Returns the group
    the flags are in."""
    from tandem.config import decode_fields

    g = p.add_argument_group(title)
    for f in decode_fields():
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = (defaults or {}).get(f.name)
        doc = f.doc + (f" (default here: {default})" if default is not None else "")
        kw = {"dest": f.name, "default": default, "help": doc.replace("%", "%%")}
        if f.type is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(f.type) is typing.Literal:
            g.add_argument(flag, choices=typing.get_args(f.type), **kw)
        else:
            g.add_argument(flag, type=f.type, metavar=f.type.__name__.upper(), **kw)
    for flag in aliases:
        field, help_ = NO_ALIASES[flag]
        if field not in skip:
            g.add_argument(flag, dest=field, action="store_false", default=None, help=help_)
    if models:
        g.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (CPU)")
        g.add_argument("--rescore", nargs="+", metavar="MODEL",
                       help="rerank all beam candidates by the mean of the --model score and "
                            "these models' scores (e.g. right-to-left models: "
                            "data.reverse_target)")
    device_arg(g)
    return g


def decode_overrides(a: argparse.Namespace) -> dict:
    """The decoding flags as keyword overrides, one per DecodeConfig field (None where the
    flag was not given, or the command has no such flag)."""
    from tandem.config import decode_fields

    return {f.name: getattr(a, f.name, None) for f in decode_fields()}


def device_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--device, where a command's model runs."""
    p.add_argument("--device", default="auto",
                   help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N")


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number >= 1 is needed")
    return int(text)


def file_tag(text: str) -> str:
    """argparse type: a tag that can go into a file name (letters, digits, '_', '.', '-')."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a tag may hold letters, digits, '_', '.' and '-' only")
    return text
