"""Scoring a model's written outputs against references: the one place that turns
detokenised outputs into metrics, used by seq2seq's validation, `tandem evaluate`, the demo and
the benchmark scripts (each structure's module scores its own kind of prediction with
tandem.metrics' formulas)."""

from __future__ import annotations

import importlib.util
from collections import OrderedDict

from tandem import metrics
from tandem.data.fields import Fields


def group_references(pairs: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Pairs with the same source become one input with several references (dictionary
    variants); order of first appearance is kept.

    [(src, ref), ...] -> ([src, ...], [[ref, ...], ...]), one reference list per source.
    Sources that are series of frames (arrays) are never equal: one reference each.
    """
    if pairs and not isinstance(pairs[0][0], str):
        return [s for s, _ in pairs], [[t] for _, t in pairs]
    refs: OrderedDict[str, list[str]] = OrderedDict()
    for s, t in pairs:
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


def _installed(module: str) -> bool:
    """Whether `module` can be imported (an import hook that refuses it counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def evaluate_outputs(fields: Fields, hyps: list[str], refs: list[list[str]],
                     which: list[str] | None = None) -> dict[str, float]:
    """Score detokenised outputs against (possibly several) references per input.

    `hyps[i]` is scored against `refs[i]`; `which` picks metrics of tandem.metrics.METRICS
    (default all; without sacrebleu installed, all but BLEU and chrF). Token rates use the
    target tokenizer's tokens. BLEU/chrF use the detokenised text, except for character-level
    targets, where BLEU/chrF over single words would say nothing: there they are computed over
    the character tokens (BLEU on characters, as for G2P/transliteration).
    """
    if which is None and not _installed("sacrebleu"):
        # the lean install (no train extra) scores what it can; BLEU and chrF asked for by
        # name still fail with the train extra's one-line message
        which = [m for m in metrics.METRICS if m not in metrics.SACREBLEU_METRICS]
    tok = fields.tgt_tok
    h_toks = [tok.tokenize(h) for h in hyps]
    r_toks = [[tok.tokenize(r) for r in rs] for rs in refs]
    if tok.kind == "char":
        return metrics.score(h_toks, r_toks, which)
    return metrics.score(h_toks, r_toks, which, detok_hyps=hyps, detok_refs=refs)
