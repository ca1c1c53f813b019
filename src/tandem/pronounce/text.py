"""Running text -> tokens with their spans: the first step of `tandem g2p --text`.

A token is one of

- `word`: letters (any script; accents are folded later), with inner apostrophes (`don't`,
  `o'brien`, `rock'n'roll`);
- `number`: digits with thousands commas and a decimal point, optionally an ordinal or plural
  suffix (`21st`, `1990s`), a percent sign, or a currency sign in front (`$5.20`, `£3`); or a
  time of day (`9:30`, `23:05`);
- `symbol`: a character read as a word (`&`, `@`, `+`, `=`, `%`, `#`);
- `punct`: any other visible character (`.`, `,`, `"`, `(`, `-`, ...), kept as itself.

Whitespace separates tokens and is not a token. Spans are character offsets into the line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CURRENCY = "$£€¥"
"""Currency signs a number may start with."""

SYMBOLS = {"&": "and", "@": "at", "+": "plus", "=": "equals", "%": "percent", "#": "number"}
"""Symbols read as words when they stand alone."""

_TOKEN = re.compile(
    r"(?P<time>(?<![\d:])(?:[01]?\d|2[0-3]):[0-5]\d(?![\d:]))"
    rf"|(?P<number>[{CURRENCY}]?\d[\d,]*(?:\.\d+)?(?:%|st|nd|rd|th|s)?(?![\w]))"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    rf"|(?P<symbol>[{re.escape(''.join(SYMBOLS))}])"
    r"|(?P<other>\S)")
_APOSTROPHE = str.maketrans({"’": "'"})


@dataclass(frozen=True)
class Token:
    """One token of a line: its text, kind (word, number, symbol, punct) and span
    (character offsets, end exclusive)."""

    text: str
    kind: str
    start: int
    end: int


def tokenize(line: str) -> list[Token]:
    """A line -> its tokens in order (see the module docstring). A run of digits glued to
    letters (`4x4`, `mp3`) is split into its number and word parts."""
    out = []
    for m in _TOKEN.finditer(line):
        kind = m.lastgroup
        text = m.group()
        if kind == "other":
            # digits glued to letters: read the parts one by one
            if text.isdigit():
                kind = "number"
            else:
                kind = "punct"
        elif kind == "word":
            text = text.translate(_APOSTROPHE)
        elif kind == "time":
            kind = "number"
        out.append(Token(text, kind, m.start(), m.end()))
    return _merge_digits(out, line)


def _merge_digits(tokens: list[Token], line: str) -> list[Token]:
    """Adjacent single-digit tokens split off words (`mp3`: `mp` + `3`) joined back into one
    number token."""
    out: list[Token] = []
    for t in tokens:
        if (out and t.kind == "number" and out[-1].kind == "number" and out[-1].end == t.start
                and out[-1].text.isdigit() and t.text.isdigit()):
            prev = out.pop()
            t = Token(line[prev.start:t.end], "number", prev.start, t.end)
        out.append(t)
    return out


def fold(word: str) -> str:
    """A word with accents removed and lowercased (`Café` -> `cafe`); letters without an ASCII
    form stay as they are (and are refused later, by name)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def context_words(tokens: list[Token]) -> list[str]:
    """The tokens as the homograph model reads them: words lowercased and folded, every
    number `<num>`, symbols and punctuation as themselves."""
    return [fold(t.text) if t.kind == "word" else "<num>" if t.kind == "number" else t.text
            for t in tokens]
