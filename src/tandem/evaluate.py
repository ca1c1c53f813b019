"""Scoring a model's outputs against references: the one place that turns detokenised
outputs into metrics, used by validation during training, `tandem evaluate`, the demo and the
benchmark scripts. For classify, tag, lm and generate, `evaluate_classifier`,
`evaluate_tagger`, `evaluate_lm` and `evaluate_generator` run a model over a split's encoded
examples and score it (tandem.metrics has the formulas)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tandem import metrics
from tandem.cpu import autocast
from tandem.data.dataset import Fields
from tandem.data.structured import (
    TAG_PAD,
    collate_classify,
    collate_generate,
    collate_tag,
    lm_stream_batches,
    struct_batches,
)
from tandem.data.vocab import PAD_ID


def group_references(pairs: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Pairs with the same source become one input with several references (dictionary
    variants); order of first appearance is kept.

    [(src, ref), ...] -> ([src, ...], [[ref, ...], ...]), one reference list per source.
    """
    refs: OrderedDict[str, list[str]] = OrderedDict()
    for s, t in pairs:
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


def evaluate_outputs(fields: Fields, hyps: list[str], refs: list[list[str]],
                     which: list[str] | None = None) -> dict[str, float]:
    """Score detokenised outputs against (possibly several) references per input.

    `hyps[i]` is scored against `refs[i]`; `which` picks metrics of tandem.metrics.METRICS
    (default all). Token rates use the target tokenizer's tokens. BLEU/chrF use the
    detokenised text, except for character-level targets, where BLEU/chrF over single words
    would say nothing: there they are computed over the character tokens (BLEU on characters,
    as for G2P/transliteration).
    """
    tok = fields.tgt_tok
    h_toks = [tok.tokenize(h) for h in hyps]
    r_toks = [[tok.tokenize(r) for r in rs] for rs in refs]
    if tok.kind == "char":
        return metrics.score(h_toks, r_toks, which)
    return metrics.score(h_toks, r_toks, which, detok_hyps=hyps, detok_refs=refs)


# --- the other structures: a model run over a split and scored ------------------------------
#
# Each takes a model in any mode (it is put in eval mode), the split's encoded examples and the
# batching budget, runs the model without gradients on `device` (bf16 autocast with `bf16`) and
# returns plain numbers (and lists), so training validation, `tandem evaluate` and benchmarks
# score the same way.


def _ce_sum(logits: torch.Tensor, target: torch.Tensor, ignore: int) -> torch.Tensor:
    """Summed cross-entropy of logits (N, C) against target (N,), skipping `ignore`."""
    return F.cross_entropy(logits.float(), target, ignore_index=ignore, reduction="sum")


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, examples: list, n_labels: int,
                        batch_tokens: int = 4000, device: torch.device | None = None,
                        bf16: bool = False) -> dict[str, Any]:
    """A classifier on (token ids, label id) examples: `loss` (mean cross-entropy per item,
    nats), `accuracy`, `macro_f1` (percent), `confusion` ([gold][predicted] counts), `f1`
    (per label) and `predictions` (label ids, in the examples' order)."""
    device = device or torch.device("cpu")
    model.eval()
    pred = [0] * len(examples)
    nll = 0.0
    for idx in struct_batches("classify", examples, batch_tokens, None):
        b = collate_classify([examples[i] for i in idx], idx).to(device)
        with autocast(bf16, device.type):
            logits = model(b.src, b.src_len)
        nll += float(_ce_sum(logits, b.labels, -100))
        for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
            pred[i] = p
    scores = metrics.classification_scores([e[1] for e in examples], pred, n_labels)
    return {"loss": nll / len(examples), **scores, "predictions": pred}


@torch.no_grad()
def evaluate_tagger(model: torch.nn.Module, examples: list,
                    unseen: list[list[bool]] | None = None, batch_tokens: int = 4000,
                    device: torch.device | None = None, bf16: bool = False
                    ) -> dict[str, Any]:
    """A tagger on (word ids, char ids, tag ids) examples: `loss` (mean cross-entropy per
    word), `token_acc` and, with `unseen` (per sentence, True for a word not seen in
    training), `unseen_acc` and `unseen_tokens`; `predictions` (tag ids per sentence)."""
    device = device or torch.device("cpu")
    model.eval()
    pred: list[list[int]] = [[] for _ in examples]
    nll, words = 0.0, 0
    for idx in struct_batches("tag", examples, batch_tokens, None):
        b = collate_tag([examples[i] for i in idx], idx).to(device)
        with autocast(bf16, device.type):
            logits = model(b.words, b.lengths, b.chars, b.char_len)
        nll += float(_ce_sum(logits.reshape(-1, logits.size(-1)), b.tags.reshape(-1),
                             TAG_PAD))
        words += int(b.lengths.sum())
        best = logits.argmax(-1).tolist()
        for row, i in enumerate(idx):
            pred[i] = best[row][: len(examples[i][0])]
    scores = metrics.tagging_scores([e[2] for e in examples], pred, unseen)
    return {"loss": nll / max(words, 1), **scores, "predictions": pred}


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, ids: list[int], streams: int, bptt: int,
                chars_per_token: float | None = None, device: torch.device | None = None,
                bf16: bool = False) -> dict[str, float]:
    """A language model on one token stream, cut into at most `streams` parallel streams
    (fewer when the text is short) of `bptt`-step batches with the hidden state carried from
    batch to batch: `loss` (cross-entropy, nats per token), `ppl`, `tokens` (predicted) and,
    with `chars_per_token` (1 for character tokens), `bpc` (bits per character)."""
    device = device or torch.device("cpu")
    model.eval()
    streams = max(1, min(streams, (len(ids) - 1) // bptt))
    nll, count, state = 0.0, 0, None
    for b in lm_stream_batches(ids, streams, bptt):
        b = b.to(device)
        with autocast(bf16, device.type):
            logits, state = model(b.inputs, state)
        nll += float(_ce_sum(logits.reshape(-1, logits.size(-1)), b.targets.reshape(-1),
                             -100))
        count += b.targets.numel()
    chars = None if chars_per_token is None else round(count * chars_per_token)
    return {**metrics.lm_scores(nll, count, chars), "tokens": float(count)}


@torch.no_grad()
def evaluate_generator(model: torch.nn.Module, examples: list,
                       features: np.ndarray | None = None, batch_tokens: int = 4000,
                       device: torch.device | None = None, bf16: bool = False
                       ) -> dict[str, float]:
    """A conditional generator on (condition, target ids) examples (`features`: the split's
    feature matrix when conditions are rows of one): `loss` (cross-entropy per target token,
    eos included), `ppl` and `tokens`."""
    device = device or torch.device("cpu")
    model.eval()
    nll, count = 0.0, 0
    for idx in struct_batches("generate", examples, batch_tokens, None):
        b = collate_generate([examples[i] for i in idx], idx, features).to(device)
        with autocast(bf16, device.type):
            logits = model(b.cond, b.tgt_in)
        nll += float(_ce_sum(logits.reshape(-1, logits.size(-1)), b.tgt_out.reshape(-1),
                             PAD_ID))
        count += b.n_tokens
    return {**metrics.lm_scores(nll, count), "tokens": float(count)}
