"""Evaluation metrics for sequence outputs: exact match, edit-distance rates, BLEU and chrF;
and for the other structures: classification accuracy, macro-F1 and the confusion matrix,
tagging accuracy (also on words unseen in training), language-model cross-entropy,
perplexity and bits per character.

Every sentence may have several references (e.g. pronunciation variants in a G2P dictionary).
Sentence-level metrics compare the hypothesis with its *closest* reference: the one with the
smallest edit distance, ties broken by the shorter reference, then by the earlier one. All
rates are percentages in 0..100. BLEU and chrF are computed at corpus level by sacrebleu
(imported lazily, only when asked for).
"""

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from tandem.errors import ConfigError

METRICS: tuple[str, ...] = (
    "exact_match",
    "seq_error_rate",
    "token_acc",
    "token_error_rate",
    "cer",
    "bleu",
    "chrf",
)
EXTRA_METRICS: tuple[str, ...] = ("bleu_lc",)
"""Output metrics `score` computes besides METRICS (lowercased BLEU)."""
_LOWER_IS_BETTER = frozenset({"seq_error_rate", "token_error_rate", "cer", "loss", "ppl",
                              "bpc"})
_HIGHER_IS_BETTER = frozenset({"exact_match", "token_acc", "bleu", "bleu_lc", "chrf",
                               "accuracy", "macro_f1", "unseen_acc"})

SACREBLEU_METRICS = ("bleu", "bleu_lc", "chrf")


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between two token sequences (or two strings, over characters).

    Insertions, deletions and substitutions cost 1. Uses the bit-parallel algorithm of
    Myers (1999) in Hyyrö's formulation: one column of the DP matrix is kept as two bit
    vectors (Python ints of min(len(a), len(b)) bits), so the O(len(a)*len(b)) cell updates
    are done a machine word at a time.
    """
    # Common prefixes and suffixes never change the distance; strip them first.
    start, end_a, end_b = 0, len(a), len(b)
    while start < end_a and start < end_b and a[start] == b[start]:
        start += 1
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    if end_a - start > end_b - start:
        a, b, end_a, end_b = b, a, end_b, end_a
    m = end_a - start  # the shorter remaining part becomes the bit-vector "pattern"
    if m == 0:
        return end_b - start
    peq: dict[Hashable, int] = {}  # token -> bit mask of its positions in the pattern
    for i in range(m):
        token = a[start + i]
        peq[token] = peq.get(token, 0) | (1 << i)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, dist = full, 0, m  # vertical +1 / -1 deltas of the current column; D[m][j]
    for j in range(start, end_b):
        eq = peq.get(b[j], 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & full) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            dist += 1
        elif mh & top:
            dist -= 1
        ph = ((ph << 1) | 1) & full  # row 0 of the matrix grows by 1 per column
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return dist


def _closest(hyp: Sequence[Hashable], refs: Sequence[Sequence[Hashable]]) -> tuple[int, int]:
    """(edit distance, index) of the reference closest to hyp; ties go to the shorter one."""
    dists = [edit_distance(hyp, ref) for ref in refs]
    best = min(range(len(refs)), key=lambda k: (dists[k], len(refs[k]), k))
    return dists[best], best


def _rate(errors: int, total: int) -> float:
    """errors / total in percent; with empty references: 0 if nothing was produced else 100."""
    if total == 0:
        return 0.0 if errors == 0 else 100.0
    return 100.0 * errors / total


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of metric is better (also knows "loss" and "ppl")."""
    if metric in _HIGHER_IS_BETTER:
        return True
    if metric in _LOWER_IS_BETTER:
        return False
    allowed = ", ".join(sorted(_HIGHER_IS_BETTER | _LOWER_IS_BETTER))
    raise ConfigError(f"unknown metric {metric!r}; allowed: {allowed}")


def _sacrebleu_metric(name: str) -> Any:
    """The sacrebleu metric object score() uses for name ("bleu", "bleu_lc" or "chrf")."""
    from sacrebleu.metrics import BLEU, CHRF

    if name == "chrf":
        return CHRF()
    # force=True only silences the "looks tokenized" warning; the score is unchanged.
    return BLEU(lowercase=name == "bleu_lc", force=True)


def sacrebleu_signature() -> dict[str, str]:
    """Signatures of the sacrebleu metrics as score() configures them.

    The number of references ("nrefs") depends on the scored data, so it is left out.
    """
    signatures = {}
    for name in SACREBLEU_METRICS:
        metric = _sacrebleu_metric(name)
        metric.num_refs = None  # normally set while scoring; None drops it from the signature
        signatures[name] = metric.get_signature().format()
    return signatures


def _resolve_metrics(metrics: Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(METRICS)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    allowed = METRICS + EXTRA_METRICS
    unknown = [m for m in names if m not in allowed]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def score(
    hyps: list[list[str]],
    refs: list[list[list[str]]],
    metrics: Iterable[str] | None = None,
    detok_hyps: list[str] | None = None,
    detok_refs: list[list[str]] | None = None,
) -> dict[str, float]:
    """Corpus-level metrics of tokenised hypotheses against one or more references each.

    cer, bleu and chrf use detokenised strings: detok_hyps / detok_refs if given, else the
    tokens joined by single spaces. Returns {metric: value} in the order requested.
    """
    names = _resolve_metrics(metrics)
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    if not hyps:
        raise ValueError("no sentences to score")
    if any(len(r) == 0 for r in refs):
        raise ValueError("every sentence needs at least one reference")
    if detok_hyps is not None and len(detok_hyps) != len(hyps):
        raise ValueError(f"{len(detok_hyps)} detokenised hypotheses for {len(hyps)} sentences")
    if detok_refs is not None:
        if len(detok_refs) != len(hyps):
            raise ValueError(f"{len(detok_refs)} detokenised references for {len(hyps)} sentences")
        if any(len(r) == 0 for r in detok_refs):
            raise ValueError("every sentence needs at least one detokenised reference")

    result: dict[str, float] = {}
    wanted = set(names)
    if wanted & {"exact_match", "seq_error_rate", "token_acc", "token_error_rate"}:
        exact = edits = ref_len = correct = positions = 0
        for hyp, sent_refs in zip(hyps, refs, strict=True):
            dist, k = _closest(hyp, sent_refs)
            ref = sent_refs[k]
            exact += dist == 0
            edits += dist
            ref_len += len(ref)
            correct += sum(x == y for x, y in zip(hyp, ref, strict=False))
            positions += max(len(hyp), len(ref))
        result["exact_match"] = 100.0 * exact / len(hyps)
        result["seq_error_rate"] = 100.0 - result["exact_match"]
        result["token_error_rate"] = _rate(edits, ref_len)
        result["token_acc"] = 100.0 * correct / positions if positions else 100.0

    if wanted & {"cer", *SACREBLEU_METRICS}:
        hyp_strs = detok_hyps if detok_hyps is not None else [" ".join(h) for h in hyps]
        ref_strs = (
            detok_refs if detok_refs is not None else [[" ".join(r) for r in rs] for rs in refs]
        )
        if "cer" in wanted:
            char_edits = char_len = 0
            for hyp_str, sent_refs in zip(hyp_strs, ref_strs, strict=True):
                dist, k = _closest(hyp_str, sent_refs)
                char_edits += dist
                char_len += len(sent_refs[k])
            result["cer"] = _rate(char_edits, char_len)
        if wanted & set(SACREBLEU_METRICS):
            # sacrebleu takes reference *streams* (stream j holds the j-th reference of every
            # sentence) and drops None entries per sentence, so sentences with fewer
            # references are padded with None (an empty string would count as a reference).
            n_streams = max(len(r) for r in ref_strs)
            streams = [[r[j] if j < len(r) else None for r in ref_strs] for j in range(n_streams)]
            for name in SACREBLEU_METRICS:
                if name in wanted:
                    metric = _sacrebleu_metric(name)
                    result[name] = float(metric.corpus_score(list(hyp_strs), streams).score)
    return {name: result[name] for name in names}


# --- classification, tagging, language models ----------------------------------------------


def classification_scores(gold: Sequence[int], pred: Sequence[int], n_labels: int
                          ) -> dict[str, Any]:
    """Accuracy and macro-F1 (percentages) and the confusion matrix of label ids in
    [0, n_labels).

    `confusion[g][p]` counts items of gold label g predicted as p. Macro-F1 is the mean of
    the per-label F1 over the labels that occur in `gold` or `pred` (a label neither has nor
    predicts says nothing); a label's F1 is 0 when it was never predicted right. Returns
    {"accuracy", "macro_f1", "confusion", "f1"} with `f1` the per-label list (None for a
    label that occurs nowhere)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("no items to score")
    confusion = [[0] * n_labels for _ in range(n_labels)]
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    f1: list[float | None] = []
    for k in range(n_labels):
        tp = confusion[k][k]
        gold_k = sum(confusion[k])
        pred_k = sum(row[k] for row in confusion)
        if gold_k + pred_k == 0:
            f1.append(None)
        else:
            f1.append(100.0 * 2 * tp / (gold_k + pred_k))  # 2PR/(P+R) = 2tp/(gold+pred)
    present = [x for x in f1 if x is not None]
    correct = sum(confusion[k][k] for k in range(n_labels))
    return {"accuracy": 100.0 * correct / len(gold), "macro_f1": sum(present) / len(present),
            "confusion": confusion, "f1": f1}


def tagging_scores(gold: Sequence[Sequence[int]], pred: Sequence[Sequence[int]],
                   unseen: Sequence[Sequence[bool]] | None = None) -> dict[str, float]:
    """Per-token accuracy of tag sequences (percent), and with `unseen` (True where the word
    did not occur in training) the accuracy on those words alone (`unseen_acc`; 100 when
    there are none) and their count (`unseen_tokens`). Sequences must match in length."""
    correct = total = u_correct = u_total = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        marks = unseen[i] if unseen is not None else [False] * len(g)
        for x, y, new in zip(g, p, marks, strict=True):
            correct += x == y
            total += 1
            if new:
                u_correct += x == y
                u_total += 1
    if total == 0:
        raise ValueError("no tokens to score")
    out = {"token_acc": 100.0 * correct / total}
    if unseen is not None:
        out["unseen_acc"] = 100.0 * u_correct / u_total if u_total else 100.0
        out["unseen_tokens"] = float(u_total)
    return out


def lm_scores(nll: float, tokens: int, chars: int | None = None) -> dict[str, float]:
    """A language model's scores from its summed negative log-likelihood `nll` (nats) over
    `tokens` predicted tokens: `loss` (cross-entropy, nats per token), `ppl` (perplexity,
    exp(loss)) and, when `chars` (the characters those tokens spell) is given, `bpc` (bits
    per character, nll / ln 2 / chars; for character tokens, loss / ln 2)."""
    if tokens <= 0:
        raise ValueError("no tokens to score")
    loss = nll / tokens
    out = {"loss": loss, "ppl": math.exp(min(loss, 100.0))}
    if chars is not None:
        out["bpc"] = nll / math.log(2) / max(chars, 1)
    return out
