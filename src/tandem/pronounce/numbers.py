"""Numbers and symbols written out as words for `tandem g2p --text`, with the `inflect` library
(MIT, as are its dependencies; chosen over num2words, which is LGPL) for cardinals, ordinals and
decimals, and the rules below for years, currency, percentages and decades.

- `1,234` -> one thousand two hundred thirty-four (no "and"); `3.14` -> three point one four;
- `21st` -> twenty-first; `1990s` -> nineteen nineties;
- a bare four-digit number from 1100 to 2099 (no comma) is read as a year: `1984` -> nineteen
  eighty-four, `1900` -> nineteen hundred, `2005` -> two thousand five, `2019` -> twenty
  nineteen, `1907` -> nineteen oh seven;
- `$5` -> five dollars, `$5.20` -> five dollars twenty cents, `$1` -> one dollar, and the same
  for `£` (pounds, pence), `€` (euros, cents) and `¥` (yen); a following `million`,
  `billion` or `thousand` word moves the unit after it (`$5 million` -> five million dollars,
  see `expand_tokens`);
- `50%` -> fifty percent;
- a time `9:30` -> nine thirty, `9:05` -> nine oh five, `9:00` -> nine o'clock.
"""

from __future__ import annotations

import functools
import re

from tandem.errors import DataError

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents"),
             "¥": ("yen", "yen", "sen", "sen")}
SCALES = {"thousand", "million", "billion", "trillion"}
"""Words after an amount of money that take the currency's unit after them."""


def _unchecked(target=None, **_options):
    """typeguard's `typechecked` as a no-op: the decorator and its factory form."""
    return target if target is not None else (lambda t: t)


@functools.cache
def _engine():
    """inflect's engine. inflect wraps its functions in typeguard's @typechecked, which
    rewrites and recompiles each one from source at import: seconds before the first number
    is read. Run-time argument checks are all that decorator adds (tandem passes inflect
    strings of digits only), so it is made a no-op while inflect imports, as `python -O`
    would make it."""
    try:
        import typeguard
    except ImportError:  # a future inflect without typeguard
        import inflect

        return inflect.engine()
    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        import inflect
    finally:
        typeguard.typechecked = checked
    return inflect.engine()


def cardinal(digits: str) -> str:
    """`1,234` -> `one thousand two hundred thirty-four` (decimals read digit by digit after
    "point")."""
    words = _engine().number_to_words(digits.replace(",", ""), andword="")
    return re.sub(r"\s+", " ", words.replace(",", "")).strip()


def year(n: int) -> str:
    """A year read in pairs of digits: 1984 -> nineteen eighty-four, 2005 -> two thousand five."""
    hi, lo = divmod(n, 100)
    if 2000 <= n < 2010:
        return cardinal(str(n))
    if lo == 0:
        return f"{cardinal(str(hi))} hundred"
    if lo < 10:
        return f"{cardinal(str(hi))} oh {cardinal(str(lo))}"
    return f"{cardinal(str(hi))} {cardinal(str(lo))}"


def _plural_of(words: str) -> str:
    """The plural of a number read out, for decades: nineteen ninety -> nineteen nineties."""
    last = words.split(" ")[-1].split("-")[-1]
    plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return words[: len(words) - len(last)] + plural


def number_words(token: str, before_scale: bool = False) -> str:
    """One number token (see `tandem.pronounce.text`) written out as words. `before_scale`:
    the token is followed by million, billion...: the currency unit is left for after it."""
    if ":" in token and re.fullmatch(r"\d{1,2}:\d\d", token):
        hours, minutes = (int(x) for x in token.split(":"))
        if minutes == 0:
            return f"{cardinal(str(hours))} o'clock"
        if minutes < 10:
            return f"{cardinal(str(hours))} oh {cardinal(str(minutes))}"
        return f"{cardinal(str(hours))} {cardinal(str(minutes))}"
    m = re.fullmatch(r"([$£€¥]?)(\d[\d,]*(?:\.\d+)?)(%|st|nd|rd|th|s)?", token)
    if not m:
        raise DataError(f"{token!r}: not a number tandem can read (digits with thousands "
                        "commas and a decimal point, an ordinal suffix, % or a currency sign)")
    sign, digits, suffix = m.groups()
    plain = digits.replace(",", "")
    if sign:
        if before_scale:
            return cardinal(plain)
        unit, units, sub, subs = _CURRENCY[sign]
        whole, _, frac = plain.partition(".")
        out = f"{cardinal(whole)} {unit if int(whole) == 1 else units}"
        if frac:
            cents = int((frac + "0")[:2])
            if cents:
                out += f" {cardinal(str(cents))} {sub if cents == 1 else subs}"
        return out
    if suffix in ("st", "nd", "rd", "th"):
        return _engine().number_to_words(_engine().ordinal(plain.split(".")[0]), andword=""
                                          ).replace(",", "")
    is_year = "," not in digits and "." not in digits and len(plain) == 4 and \
        1100 <= int(plain) <= 2099
    words = year(int(plain)) if is_year else cardinal(plain)
    if suffix == "s":
        return _plural_of(words)
    if suffix == "%":
        return f"{words} percent"
    return words


def currency_unit(token: str) -> str:
    """The plural unit word of a currency token (`$5` -> dollars), said after the scale word
    of an amount such as `$5 million`."""
    return _CURRENCY[token[0]][1]
