"""Running text -> pronunciations in context (`tandem g2p --text`, `tandem.g2p_text`).

Each line is tokenized (`tandem.pronounce.text`); each token becomes spoken words and their
ARPAbet, from the first source that has it:

1. `lexicon`: the user's lexicon (`--lexicon FILE`), overriding everything below;
2. `homograph`: a word the homograph model knows (read, record, lead, live, wind, ... 162 in
   all) gets the pronunciation the model chooses from its sentence;
3. `dictionary`: the CMU dictionary's first pronunciation;
4. `rule`: numbers and symbols written out as words (`tandem.pronounce.numbers`), each word
   then pronounced by the dictionary; an all-capitals token the dictionary lacks that
   `reads_as_letters` is spelled out letter by letter;
5. `model`: the neural G2P model for every other word.

Punctuation is kept as itself; a hyphen or slash inside a word (`well-known`) is dropped. The
line output writes each spoken word's phonemes and each punctuation mark as one item, items
separated by ` | `.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from tandem.errors import ConfigError, DataError
from tandem.pronounce import G2P, G2PError, strip_stress
from tandem.pronounce.homographs import PACKAGE_MODEL as HOMOGRAPH_MODEL
from tandem.pronounce.homographs import WordId, choose_rows, load_table, model_input
from tandem.pronounce.numbers import SCALES, currency_unit, number_words
from tandem.pronounce.text import SYMBOLS, Token, fold, tokenize

SEPARATOR = " | "
"""Between the items (spoken words, punctuation marks) of a line's output."""

LETTERS = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F",
    "g": "JH IY1", "h": "EY1 CH", "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L",
    "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1", "q": "K Y UW1", "r": "AA1 R",
    "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1"}
"""The names of the letters, for tokens spelled out."""

SPELL_MAX = 3
"""All-capitals tokens of at most this many letters that the dictionary lacks are spelled out
(see `reads_as_letters`)."""


def reads_as_letters(token: str) -> bool:
    """The rule for an all-capitals token the dictionary lacks (2+ letters A-Z): spelled out
    when it has at most SPELL_MAX letters or no vowel letter (AEIOU), else read as a word by
    the model (`NASDAQ`, `UNESCO`). Measured against the dictionary's own readings of short
    words in docs/homograph_model.md."""
    return len(token) <= SPELL_MAX or not any(c in "AEIOU" for c in token)


@dataclass
class Spoken:
    """One token of a line and what it became: `words` (the spoken words; the token itself
    for a word, its expansion for a number or symbol, empty for punctuation), `phonemes` (one
    ARPAbet string per spoken word; the mark itself for punctuation) and `source`."""

    text: str
    kind: str
    start: int
    end: int
    words: list[str] = field(default_factory=list)
    phonemes: list[str] = field(default_factory=list)
    source: str = ""
    wordid: str | None = None
    probability: float | None = None
    context: str | None = field(default=None, repr=False)
    """A homograph's input to the homograph model (`model_input`), until it is decided."""

    def to_dict(self) -> dict:
        """A JSON object of this token."""
        d = {"text": self.text, "start": self.start, "end": self.end, "kind": self.kind,
             "words": self.words, "phonemes": self.phonemes, "source": self.source}
        if self.wordid is not None:
            d["wordid"] = self.wordid
            d["probability"] = round(self.probability, 4)
        return d


def line_text(spoken: list[Spoken]) -> str:
    """A line's output: every spoken word's phonemes and punctuation mark, ` | ` between."""
    return SEPARATOR.join(p for s in spoken for p in s.phonemes)


class TextG2P:
    """Sentences -> pronunciations in context. `g2p`: the word-level G2P (dictionary and
    model; default: the shipped ones); `homographs`: a homograph model folder (an export with
    its `wordids.tsv`; default: the shipped one; False: none, the dictionary's first variant);
    `lexicon`: a user lexicon file or {word: [phonemes]} overriding everything."""

    def __init__(self, g2p: G2P | None = None, homographs: str | Path | bool | None = None,
                 lexicon: str | Path | dict[str, list[str]] | None = None,
                 stress: bool = True) -> None:
        if g2p is not None and lexicon is not None:
            raise ConfigError("TextG2P: give the lexicon to the G2P you pass "
                              "(G2P(lexicon=...)), or pass no G2P")
        self.g2p = g2p or G2P(lexicon=lexicon)
        if homographs is None or homographs is True:
            homographs = HOMOGRAPH_MODEL
        self.homograph_path = check_homograph_model(homographs) if homographs else None
        self.stress = stress

    @functools.cached_property
    def table(self) -> dict[str, WordId]:
        """The homograph model's wordid table (empty without a model)."""
        return load_table(self.homograph_path / "wordids.tsv") if self.homograph_path else {}

    @functools.cached_property
    def homograph_words(self) -> frozenset[str]:
        """The spellings the homograph model decides."""
        return frozenset(w.homograph for w in self.table.values())

    @functools.cached_property
    def classifier(self):
        """The homograph model's classifier, loaded in the lean runtime on first need."""
        from tandem import runtime

        return runtime.load(self.homograph_path)

    def pronounce_lines(self, lines: list[str], where: str = "line", first: int = 1
                        ) -> list[list[Spoken]]:
        """Each line's tokens with what they became. Errors name the line as `<where>:N`
        (`first` is the number of lines[0]). Homographs of all lines are decided in one
        batched call, and unknown words guessed in one batched call."""
        plans = [self._plan(line, f"{where}:{n}") for n, line in enumerate(lines, first)]
        self._resolve_homographs(plans)
        todo = [(s, i, f"{where}:{n} {s.text!r}") for n, plan in enumerate(plans, first)
                for s in plan for i, p in enumerate(s.phonemes) if p is None]
        if todo:
            prons = self.g2p.pronounce([s.words[i] for s, i, _ in todo],
                                       where=[at for _, _, at in todo])
            for (s, i, _), p in zip(todo, prons, strict=True):
                s.phonemes[i] = p[0].phonemes
                if not s.source:
                    s.source = p[0].source
        if not self.stress:
            for s in (s for plan in plans for s in plan):
                s.phonemes = [strip_stress(p) for p in s.phonemes]
        return plans

    def _plan(self, line: str, at: str) -> list[Spoken]:
        """The line's tokens with every pronunciation known without a model filled in; the
        others (None) are left for the batched calls."""
        tokens = tokenize(line)
        out: list[Spoken] = []
        unit = None  # "$5 million": the currency's unit, said after the scale word
        for i, t in enumerate(tokens):
            s = Spoken(t.text, t.kind, t.start, t.end)
            if t.kind == "punct":
                if t.text in "-/" and _glued(tokens, i):
                    continue  # a hyphen or slash inside a compound is not spoken
                s.phonemes, s.source = [t.text], "punctuation"
            elif t.kind == "word":
                self._plan_word(s, tokens, i, at)
                if unit:
                    s.words.append(unit)
                    s.phonemes.append(self._known(unit))
                    unit = None
            else:
                unit = self._plan_rule(s, tokens, i)
            out.append(s)
        return out

    def _plan_word(self, s: Spoken, tokens: list[Token], i: int, at: str) -> None:
        word = fold(s.text)
        s.words = [word]
        known = self.g2p.lookup(word)  # the user's lexicon first, then the dictionary
        if word in self.g2p.lexicon:
            s.phonemes, s.source = [known[0]], "lexicon"
        elif word in self.homograph_words:
            s.phonemes, s.source = [None], "homograph"
            s.context = model_input(tokens, i)
        elif known:
            s.phonemes, s.source = [known[0]], "dictionary"
        elif s.text.isascii() and s.text.isalpha() and s.text.isupper() and len(s.text) > 1 \
                and reads_as_letters(s.text):
            s.words = list(word)
            s.phonemes, s.source = [LETTERS[c] for c in word], "rule"
        else:
            bad = next((c for c in word if not (c.isascii() and (c.isalpha() or c == "'"))),
                       None)
            if bad is not None:
                raise G2PError(f"{at}: {s.text!r} holds {bad!r}, which tandem g2p cannot "
                               "read (letters A-Z, accented letters and apostrophes are read; "
                               "give its pronunciation with --lexicon)")
            s.phonemes = [None]

    def _plan_rule(self, s: Spoken, tokens: list[Token], i: int) -> str | None:
        """Numbers and symbols: their words, each word looked up (or left for the model).
        Returns the currency unit to say after the next token when that is a scale word
        (`$5 million`), else None."""
        unit = None
        if s.kind == "symbol":
            words = [SYMBOLS[s.text]]
        else:
            nxt = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
            if s.text[0] in "$£€¥" and nxt in SCALES:
                unit = currency_unit(s.text)
            words = number_words(s.text, before_scale=unit is not None).replace("-", " ").split()
        s.words, s.source = words, "rule"
        s.phonemes = [self._known(w) for w in words]
        return unit

    def _known(self, word: str) -> str | None:
        """The lexicon's or dictionary's first pronunciation of a word, else None (left for
        the model)."""
        return next(iter(self.g2p.lookup(word)), None)

    def _resolve_homographs(self, plans: list[list[Spoken]]) -> None:
        """Every homograph of every line decided in one batched call."""
        todo = [s for plan in plans for s in plan if s.source == "homograph"]
        if not todo:
            return
        clf = self.classifier
        chosen = choose_rows(clf.probabilities([s.context for s in todo]), clf.labels,
                             [s.words[0] for s in todo], self.table)
        for s, (wid, prob) in zip(todo, chosen, strict=True):
            s.wordid, s.probability = wid, prob
            s.phonemes = [self.table[wid].arpabet]


@functools.cache
def _default(stress: bool) -> TextG2P:
    return TextG2P(stress=stress)


def g2p_text(text: str | list[str], stress: bool = True,
             lexicon: str | Path | dict[str, list[str]] | None = None) -> list[str]:
    """Running text -> one output line per line of text (a string is split at its line
    breaks), as `tandem g2p --text` writes them: `tandem.g2p_text("I read it.")` ->
    `['AY1 | R EH1 D | IH1 T | .']` (read as past from its sentence). `lexicon`: your own
    pronunciations (a file or {word: [phonemes]}), ahead of everything. For spans, sources
    and the homograph model's choices use `TextG2P().pronounce_lines`."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    tg = _default(stress) if lexicon is None else TextG2P(lexicon=lexicon, stress=stress)
    return [line_text(s) for s in tg.pronounce_lines(lines)]


def _glued(tokens: list[Token], i: int) -> bool:
    """tokens[i] touches a word or number on both sides (no space between)."""
    return (0 < i < len(tokens) - 1 and tokens[i - 1].end == tokens[i].start
            and tokens[i + 1].start == tokens[i].end
            and tokens[i - 1].kind in ("word", "number")
            and tokens[i + 1].kind in ("word", "number"))


def check_homograph_model(path: str | Path) -> Path:
    """A homograph model folder, refused by name when it lacks its wordid table or is not an
    export."""
    from tandem.runtime import is_export

    path = Path(path)
    if not (path / "wordids.tsv").is_file():
        raise DataError(f"{path}: not a homograph model (no wordids.tsv in it)")
    if not is_export(path):
        raise DataError(f"{path}: not an export; a homograph model is `tandem export` of a "
                        "classifier with its wordids.tsv beside it "
                        "(benchmarks/recipes/homographs.py --ship DIR makes one)")
    return path
