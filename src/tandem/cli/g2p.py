"""`tandem g2p`: English pronunciations, the CMU dictionary first, then the shipped model."""

from __future__ import annotations

import argparse
import sys

import tandem.cli.output as output
from tandem.cli.args import device_arg, positive
from tandem.cli.inputs import check_input, iter_inputs
from tandem.errors import ConfigError
from tandem.pronounce import DEFAULT_BEAM

G2P_CHUNK = 4096
"""Words `tandem g2p` pronounces per batched call (its output is written after each)."""
G2P_FIRST_CHUNK = 64
"""The first call's words: a small first chunk makes the first lines come out early."""


def g2p_chunks(n: int) -> list[tuple[int, int]]:
    """(start, end) of the chunks `tandem g2p` pronounces n words in: G2P_FIRST_CHUNK words,
    then G2P_CHUNK at a time."""
    bounds, start = [], 0
    while start < n:
        end = min(n, start + (G2P_FIRST_CHUNK if start == 0 else G2P_CHUNK))
        bounds.append((start, end))
        start = end
    return bounds


def _g2p_words(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(words, where each came from) for `tandem g2p`: the arguments, else --input, else
    stdin; one word per line (a TSV line: its first column), blank lines skipped."""
    if a.words:
        return list(a.words), [f"argument {i + 1}" for i in range(len(a.words))]
    label = a.input or "<stdin>"
    words, where = [], []
    for i, line in enumerate(iter_inputs(a.input), 1):
        if line.strip():
            words.append(line.strip())
            where.append(f"{label}:{i}")
    return words, where


TEXT_CHUNK = 256
"""Lines `tandem g2p --text` pronounces per batched call (written after each)."""


def cmd_g2p_text(a: argparse.Namespace) -> int:
    """`tandem g2p --text`: running text in (the arguments as one line, else --input or stdin,
    one line of text a line), one output line per input line (`tandem.pronounce.sentences`):
    the items of the line separated by ` | `, or with --json one object a line holding each
    token's span, spoken words, phonemes and source."""
    from tandem.pronounce import G2P
    from tandem.pronounce.sentences import TextG2P, line_text

    check_input(a.input, "running text, one line of text a line")
    g = G2P(a.model, dictionary=not a.no_dictionary, device=a.device, beam=a.beam,
            quantize=a.quantize, lexicon=a.lexicon)
    tg = TextG2P(g, homographs=False if a.no_homographs else a.homograph_model,
                 stress=not a.no_stress)
    label = "argument" if a.words else (a.input or "<stdin>")
    lines = iter([" ".join(a.words)]) if a.words else iter_inputs(a.input)
    out, n = sys.stdout, 0
    while True:
        chunk = [line for _, line in zip(range(TEXT_CHUNK), lines, strict=False)]
        if not chunk:
            return 0
        done = tg.pronounce_lines(chunk, where=label, first=n + 1)
        for line, spoken in zip(chunk, done, strict=True):
            n += 1
            if a.json:
                output.write_json_line(out, {"line": n, "text": line,
                                             "tokens": [s.to_dict() for s in spoken]})
            else:
                out.write(line_text(spoken) + "\n")
        out.flush()


def cmd_g2p(a: argparse.Namespace) -> int:
    """`tandem g2p WORD ...` (or --input FILE, or stdin): WORD<TAB>PHONEMES lines, the CMU
    dictionary first, the shipped model for other words; words are decoded in chunks
    (`g2p_chunks`: a small first one, then G2P_CHUNK at a time), so the first lines come out
    early and memory stays flat on long inputs."""
    from tandem.pronounce import G2P

    if a.text:
        return cmd_g2p_text(a)
    for flag in ("no_homographs", "homograph_model"):
        if getattr(a, flag):
            raise ConfigError(f"--{flag.replace('_', '-')} applies to --text (words in "
                              "sentences); word mode pronounces each word alone")
    check_input(a.input, "one word per line")
    words, where = _g2p_words(a)
    g = G2P(a.model, dictionary=not a.no_dictionary, device=a.device, beam=a.beam,
            quantize=a.quantize, lexicon=a.lexicon)
    out = sys.stdout
    for start, end in g2p_chunks(len(words)):
        chunk = words[start:end]
        results = g.pronounce(chunk, nbest=a.nbest, all_variants=a.all,
                              stress=not a.no_stress, where=where[start:end])
        for word, prons in zip(chunk, results, strict=True):
            output.write_pronunciations(out, word, prons, a.json)
        out.flush()
    return 0


def _g2p_parser(sub) -> None:
    g = sub.add_parser("g2p", help="English pronunciations (ARPAbet): the CMU dictionary, "
                       "then the shipped model")
    g.add_argument("words", nargs="*", metavar="WORD",
                   help="words to pronounce (default: one per line from --input or stdin); "
                        "with --text, the arguments are one line of text")
    g.add_argument("--text", action="store_true",
                   help="running text in, one line of text a line: numbers and symbols "
                        "written out, homographs chosen in context, punctuation kept; one "
                        "output line per input line, items separated by ' | ' "
                        "(docs/homograph_model.md)")
    g.add_argument("--lexicon", help="a file of your own pronunciations (WORD<TAB>ARPABET a "
                   "line; CMU format too), ahead of the dictionary and the models")
    g.add_argument("--no-homographs", action="store_true",
                   help="--text: the dictionary's first variant for homographs, no model")
    g.add_argument("--homograph-model", help="--text: another homograph model folder (an "
                   "export with its wordids.tsv); default: the shipped one")
    g.add_argument("--input", help="a file of words, one per line (TSV: the first column)")
    g.add_argument("--all", action="store_true",
                   help="every pronunciation the dictionary has (default: its first)")
    g.add_argument("--nbest", type=positive, default=1,
                   help="the model's K best guesses for words the dictionary lacks")
    g.add_argument("--no-stress", action="store_true", help="strip the stress digits")
    g.add_argument("--no-dictionary", action="store_true",
                   help="send every word to the model (to compare it with the dictionary)")
    g.add_argument("--model", help="another G2P model: an export folder (the lean runtime) or a "
                   "checkpoint (needs the train extra); default: the shipped export")
    g.add_argument("--beam", type=positive, default=DEFAULT_BEAM,
                   help=f"search width for words the dictionary lacks (default {DEFAULT_BEAM}, "
                        "the width chosen for accuracy and speed: its measurements are in "
                        "docs/g2p_model.md; --nbest K searches with at least K)")
    g.add_argument("--quantize", choices=["int8"],
                   help="int8 weights: the shipped model's int8 export (a checkpoint: "
                        "PyTorch's dynamic int8 quantization); faster, as accurate on held-out "
                        "words (docs/g2p_model.md)")
    g.add_argument("--json", action="store_true",
                   help="one JSON object per word: its pronunciations and their sources")
    device_arg(g)
    g.set_defaults(func=cmd_g2p, device="cpu")


PARSERS = {"g2p": _g2p_parser}
"""{command: the function that adds its parser to the subparsers}."""
