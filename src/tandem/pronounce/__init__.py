"""English pronunciations out of the box: `tandem.g2p(["PHOENIX", "tandem"])` and
`tandem g2p WORD ...`.

A word is looked up in the CMU Pronouncing Dictionary first (shipped in the package,
`lexicons/cmudict.tsv`: every variant, stress digits as the dictionary has them); any other
word goes through the neural G2P model shipped in the package as an export run by the lean
runtime (`models/g2p_en`, and `models/g2p_en_int8` for --quantize int8; trained by
configs/g2p_en_release.yaml, card in docs/g2p_model.md), all such words of a call decoded
together in batches. Neither needs PyTorch; a checkpoint given as the model does.

The rules for what a word is (documented in docs/cli.md and the model card):

- case does not matter; an apostrophe is part of a word (`don't`, `o'brien`);
- a token the dictionary does not hold that joins words with other punctuation (`-`, `/`, `.`,
  `_`, `+`, `&`) is split there, each part pronounced (dictionary, else model) and the parts
  joined with a space: `mother-in-law` is in the dictionary, `tandem-bike` becomes `tandem` +
  `bike`; only the first pronunciation of each part is used;
- a token holding a character that is neither a letter nor an apostrophe nor one of those
  joiners (a digit, `@`, a letter outside A-Z such as `é`) is refused with a G2PError naming
  the token and the character: expand numbers and symbols into words before G2P, as speech
  synthesis front-ends do, so that nothing is dropped silently.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tandem.errors import CheckpointError, ConfigError, DataError
from tandem.runtime.manifest import sha256 as file_sha256  # the one file checksum

PACKAGE_MODEL = Path(__file__).resolve().parent.parent / "models" / "g2p_en"
"""The shipped model, an export (`tandem export`) of the release checkpoint: its manifest holds
every file's sha256 and the checkpoint's training facts."""
PACKAGE_MODEL_INT8 = PACKAGE_MODEL.with_name("g2p_en_int8")
"""The same model exported with int8 weights (`--quantize int8`)."""

JOINERS = "-/._+&"
"""Characters that join words inside one token; such a token is pronounced part by part."""

_STRESS = re.compile(r"\d")


class G2PError(DataError):
    """A token tandem g2p will not guess at: it names the token and what is allowed."""


@dataclass
class Pronunciation:
    """One pronunciation of a word: ARPAbet phonemes separated by spaces, and where it came
    from (`dictionary` or `model`; a split compound whose parts came from both: `model`)."""

    phonemes: str
    source: str


def strip_stress(phonemes: str) -> str:
    """ARPAbet without stress digits (`AH0` -> `AH`); nothing else changes."""
    return _STRESS.sub("", phonemes)


def pronunciation_scores(hyps: list[str], refs: list[list[str]]) -> dict[str, dict[str, float]]:
    """WER and PER (%) of one pronunciation per word against all of its references: `stress`
    as written, `no_stress` with the stress digits stripped from both sides (the two agree
    where the references carry no stress, as on the standard split)."""
    from tandem.metrics import score

    out = {}
    for name, f in (("stress", lambda x: x), ("no_stress", strip_stress)):
        m = score([f(h).split() for h in hyps], [[f(r).split() for r in rs] for rs in refs],
                  ["seq_error_rate", "token_error_rate"])
        out[name] = {"wer": round(m["seq_error_rate"], 2), "per": round(m["token_error_rate"], 2)}
    return out


def cmu_dictionary():
    """The CMU Pronouncing Dictionary shipped in the package (`tandem.data.lexicon`): lowercase
    word -> its pronunciations in the dictionary's order, with stress (`get(word)`), searched
    in the file as read, nothing parsed up front."""
    from tandem.data.lexicon import cmudict

    return cmudict()


def verified(path: Path, card: Path | None = None) -> Path:
    """A checkpoint `path` after checking its sha256 against `card` (default: the .json beside
    it, as scripts/pack_g2p.py writes for the release checkpoint), when there is one; a
    changed or damaged copy is refused with CheckpointError."""
    card = card or path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"{path}: no G2P model there (give a checkpoint or an export "
                              "folder with --model)")
    if card.is_file():
        expected = json.loads(card.read_text(encoding="utf-8")).get("sha256")
        actual = file_sha256(path)
        if expected and actual != expected:
            raise CheckpointError(f"{path}: sha256 {actual[:16]}... does not match the "
                                  f"{expected[:16]}... recorded in {card}; the file is "
                                  "damaged or was changed: reinstall tandem or rebuild it "
                                  "with `make g2p-model`")
    return path


DEFAULT_BEAM = 2
"""The model's search width for a 1-best guess: the narrowest beam that is as accurate as a
wider one, so the fastest (greedy search is less accurate); the measurements are in
docs/g2p_model.md, "Decoding". n-best guesses search with a beam of at least n."""


BATCH_SIZE = 48
"""Words a model search takes at once. The lean runtime searches one batch per core side by
side; batches this small keep a process under ~120 MB at full speed on two cores
(docs/export.md, "Threads and memory"; the measurements in docs/benchmarks.md)."""


class G2P:
    """Spellings -> pronunciations: the dictionary first, then the model (loaded on first
    need). `model`: a G2P export or checkpoint (default: the shipped export, run without
    PyTorch, its files checked against its manifest; a checkpoint runs with PyTorch on
    `device`); `dictionary=False` sends every word to the model; `beam`: the search width
    (default DEFAULT_BEAM; `nbest` K searches with max(beam, K)); `quantize="int8"`: the
    shipped model's int8 export (a checkpoint: PyTorch's dynamic int8 quantization), faster
    and as accurate on held-out words (docs/g2p_model.md)."""

    def __init__(self, model: str | Path | None = None, dictionary: bool = True,
                 device: str = "cpu", beam: int = DEFAULT_BEAM, batch_size: int = BATCH_SIZE,
                 quantize: str | None = None,
                 lexicon: str | Path | dict[str, list[str]] | None = None) -> None:
        from tandem.data.lexicon import user_lexicon
        from tandem.runtime import is_export

        if quantize and device not in ("cpu", "auto"):
            raise ConfigError(f"quantize={quantize!r} runs on the CPU, not on device "
                              f"{device!r}: drop one of them")
        if model is None:
            model = PACKAGE_MODEL_INT8 if quantize == "int8" else PACKAGE_MODEL
        elif quantize and is_export(model):
            raise ConfigError(f"quantize={quantize!r}: {model} is an export, which runs as "
                              "exported; export its checkpoint with --quantize int8")
        self.model_path = Path(model)
        self.use_dictionary = dictionary
        self.device = "cpu" if quantize else device
        self.beam = beam
        self.quantize = quantize
        self.batch_size = batch_size
        self._translator = None
        self.lexicon = user_lexicon(lexicon)
        """The user's pronunciations (lowercase word -> variants), ahead of everything."""

    @property
    def translator(self):
        """The model, loaded when first needed: an export in the lean runtime (the shipped
        model's files checked against its manifest), or a checkpoint with PyTorch."""
        if self._translator is None:
            from tandem.runtime import is_export

            if is_export(self.model_path):
                from tandem import runtime

                if self.device not in ("cpu", "auto"):
                    raise ConfigError(f"device {self.device!r}: {self.model_path} is an "
                                      "export, which runs on the CPU (onnxruntime)")
                if self.model_path in (PACKAGE_MODEL, PACKAGE_MODEL_INT8) and \
                        not self.model_path.is_dir():
                    raise CheckpointError(f"{self.model_path}: the shipped G2P model is not "
                                          "there; reinstall tandem (or rebuild it with "
                                          "`make g2p-model`)")
                self._translator = runtime.load(self.model_path)
            else:
                from tandem.structures.translator import load

                self._translator = load(verified(self.model_path), device=self.device)
                if self.quantize:
                    self._translator.quantize(self.quantize)
        return self._translator

    def lookup(self, word: str) -> list[str]:
        """The user lexicon's pronunciations of `word` (any case), else the dictionary's, or []
        when neither has it."""
        w = word.lower()
        if w in self.lexicon:
            return self.lexicon[w]
        return cmu_dictionary().get(w) if self.use_dictionary else []

    def pronounce(self, words: list[str], nbest: int = 1, all_variants: bool = False,
                  stress: bool = True, where: list[str] | None = None
                  ) -> list[list[Pronunciation]]:
        """Pronunciations of each word: the dictionary's first (every variant with
        `all_variants`), else the model's `nbest` best; `stress=False` strips the digits.
        Every word the dictionary lacks is decoded in one batched call. `where` names each
        word in error messages (e.g. FILE:LINE; default `word N`)."""
        where = where or [f"word {i + 1}" for i in range(len(words))]
        known: dict[str, list[str]] = {}  # every lookup of this call, each word once
        plans = [self._plan(w, at, known) for w, at in zip(words, where, strict=True)]
        wanted = list(dict.fromkeys(part for plan in plans if not isinstance(plan, list)
                                    for part in plan[1] if not self._known(part, known)))
        guessed = self._decode(wanted, nbest) if wanted else {}
        out = []
        for word, plan in zip(words, plans, strict=True):
            if isinstance(plan, list):  # the whole token is in the lexicon or dictionary
                source = "lexicon" if word.strip().lower() in self.lexicon else "dictionary"
                prons = [Pronunciation(p, source)
                         for p in (plan if all_variants else plan[:1])]
            else:
                _, parts = plan
                if len(parts) == 1:
                    prons = [Pronunciation(p, "model") for p in guessed[parts[0]]]
                else:  # a compound: the first pronunciation of each part, joined
                    found = [self._known(p, known) for p in parts]
                    firsts = [(k or guessed[p])[0] for k, p in zip(found, parts, strict=True)]
                    source = "dictionary" if all(found) else "model"
                    if any(p in self.lexicon for p in parts):
                        source = "lexicon"
                    prons = [Pronunciation(" ".join(firsts), source)]
            if not stress:
                prons = [Pronunciation(strip_stress(p.phonemes), p.source) for p in prons]
                prons = list({p.phonemes: p for p in prons}.values())  # variants may merge
            out.append(prons)
        return out

    def _known(self, word: str, known: dict[str, list[str]]) -> list[str]:
        """`lookup(word)`, remembered in `known` (keys lower case)."""
        w = word.lower()
        if w not in known:
            known[w] = self.lookup(w)
        return known[w]

    def _plan(self, word: str, at: str, known: dict[str, list[str]]
              ) -> list[str] | tuple[str, list[str]]:
        """The dictionary's pronunciations of the whole token, or (token, the parts to
        pronounce); a token the rules refuse raises G2PError. `known`: lookups so far."""
        token = word.strip()
        whole = self._known(token, known)
        if whole:
            return whole
        lowered = token.lower()
        if not lowered:
            raise G2PError(f"{at}: empty; give one word per item")
        for ch in lowered:
            if not (ch.isascii() and (ch.isalpha() or ch == "'")) and ch not in JOINERS:
                raise G2PError(
                    f"{at} {token!r}: the character {ch!r} is not a letter A-Z, "
                    f"an apostrophe or a joiner ({' '.join(JOINERS)}); write numbers and "
                    "symbols out as words before G2P")
        parts = [p for p in re.split(f"[{re.escape(JOINERS)}]+", lowered) if p.strip("'")]
        if not parts:
            raise G2PError(f"{at} {token!r}: no letters to pronounce")
        return token, parts

    def _decode(self, words: list[str], nbest: int) -> dict[str, list[str]]:
        """The model's n-best pronunciations of each word (uppercase in, as it was trained)."""
        tr = self.translator
        beam = max(self.beam, nbest)
        outs = tr.translate([w.upper() for w in words], beam=beam, nbest=nbest,
                            batch_size=self.batch_size, sample=False)
        if nbest == 1:
            outs = [[o] for o in outs]
        return {w: [o for o in dict.fromkeys(o) if o] or [""] for w, o in zip(words, outs,
                                                                              strict=True)}


@functools.cache
def _default() -> G2P:
    return G2P()


def g2p(words: list[str] | str, stress: bool = True) -> list[str]:
    """The first pronunciation of each word (ARPAbet, stress digits unless `stress=False`):
    `tandem.g2p(["PHOENIX", "tandem"])` -> `['F IY1 N IH0 K S', 'T AE1 N D AH0 M']`.
    For every variant, n-best guesses and where each came from, use `G2P().pronounce`."""
    if isinstance(words, str):
        words = [words]
    return [p[0].phonemes for p in _default().pronounce(list(words), stress=stress)]
