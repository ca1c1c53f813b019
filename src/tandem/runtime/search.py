"""The searches of `tandem.decode.search` over numpy arrays, for the lean runtime: greedy, beam
and sampling, batched, written against a model's `encode(src, src_len)` and
`decode_step(prev, state)` and the state's `expand` / `reorder` / `keep`, with the same
`Scorer` (length normalisation, coverage penalty, bans) and the same `Hyp` results.

They follow the PyTorch searches step for step (float32 scores, the same candidate order and
stopping rule), so both backends give the same tokens and scores within float32 rounding;
tests/test_runtime_search.py holds them equal over random decoding options. Sampling draws
from a numpy Generator, so a seed gives the same output every time in the runtime, but not the
output the PyTorch path draws with that seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tandem.config import DecodeConfig
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID
from tandem.decode.scoring import Scorer


@dataclass
class Hyp:
    """One output of a search for one sentence (as `tandem.decode.search.Hyp`)."""

    tokens: list[int]
    score: float
    norm_score: float
    attention: np.ndarray | None = None
    ended: bool = True


def max_lengths(src_len: np.ndarray, a: float, b: int) -> np.ndarray:
    """Per-sentence output limit (eos included): a * source length + b, at least 1."""
    return np.maximum((src_len.astype(np.float32) * np.float32(a) + b).astype(np.int64), 1)


def run(model: Any, src: np.ndarray, src_len: np.ndarray, opts: DecodeConfig,
        scorer: Scorer | None = None, *, attention: bool = False,
        rng: np.random.Generator | None = None) -> list[list[Hyp]]:
    """The search the options ask for: sampling, greedy (beam 1) or beam search."""
    scorer = scorer or Scorer.from_options(opts)
    if opts.sample:
        temperature, top_k = np.float32(opts.temperature), opts.top_k
        rng = rng or np.random.default_rng()

        def draw(logp: np.ndarray) -> np.ndarray:
            logits = logp / temperature
            if top_k:
                kth = -np.sort(-logits, axis=1)[:, min(top_k, logits.shape[1]) - 1:][:, :1]
                logits = np.where(logits < kth, -np.inf, logits)
            p = np.exp((logits - logits.max(1, keepdims=True)).astype(np.float64))
            p /= p.sum(1, keepdims=True)
            return np.array([rng.choice(len(row), p=row) for row in p])

        return _feed_back(model, src, src_len, opts, scorer, attention, draw, normalise=False)
    if opts.beam == 1:
        return _feed_back(model, src, src_len, opts, scorer, attention,
                          lambda logp: logp.argmax(-1), normalise=True)
    return beam_search(model, src, src_len, opts, scorer, attention=attention)


def _feed_back(model: Any, src: np.ndarray, src_len: np.ndarray, opts: DecodeConfig,
               scorer: Scorer, attention: bool, choose, normalise: bool) -> list[list[Hyp]]:
    """Greedy search and sampling: one token per sentence per step; finished sentences
    leave the batch."""
    B = src.shape[0]
    state = model.encode(src, src_len)
    limit = max_lengths(src_len, opts.max_len_a, opts.max_len_b)
    T = int(limit.max())
    out = np.full((B, T), PAD_ID, dtype=np.int64)
    att_buf = np.zeros((B, T, src.shape[1]), np.float32) if attention else None
    scores = np.zeros(B, np.float32)
    lengths = np.zeros(B, np.int64)
    ended = np.zeros(B, bool)
    alive = np.arange(B)
    prev = np.full(B, BOS_ID, dtype=np.int64)
    for t in range(T):
        logp, state, att = model.decode_step(prev, state)
        if scorer.bans:
            scorer.ban(logp, out[alive, :t].tolist())
        tok = np.asarray(choose(logp), dtype=np.int64)
        out[alive, t] = tok
        scores[alive] += logp[np.arange(len(tok)), tok]
        if att_buf is not None and att is not None:
            att_buf[alive, t, : att.shape[1]] = att
        is_eos = tok == EOS_ID
        fin = is_eos | (t + 1 >= limit[alive])
        if fin.any():
            lengths[alive[fin]] = t + 1
            ended[alive[fin]] = is_eos[fin]
            still = np.flatnonzero(~fin)
            if still.size == 0:
                break
            alive, tok = alive[still], tok[still]
            state = state.keep(still)
        prev = tok
    hyps = []
    for i in range(B):
        n, e = int(lengths[i]), bool(ended[i])
        s = float(scores[i])
        a = att_buf[i, :n, : int(src_len[i])] if att_buf is not None else None
        hyps.append([Hyp(out[i, : n - e].tolist(), s,
                         scorer.normalise(s, n) if normalise else s, a, e)])
    return hyps


def _finished_enough(fin: list[Hyp], k: int, alive: float, length: int,
                     scorer: Scorer) -> bool:
    if len(fin) < k:
        return False
    kth = sorted((h.norm_score for h in fin), reverse=True)[k - 1]
    return scorer.normalise(alive, length) <= kth


def _top(cand: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n largest of each row, largest first (ties: lower index first): values, indices."""
    n = min(n, cand.shape[1])
    rows = np.arange(cand.shape[0])[:, None]
    part = np.argpartition(-cand, n - 1, axis=1)[:, :n] if n < cand.shape[1] else \
        np.tile(np.arange(cand.shape[1]), (cand.shape[0], 1))
    vals = cand[rows, part]
    idx = part[rows, np.lexsort((part, -vals), axis=1)]
    return cand[rows, idx], idx


def beam_search(model: Any, src: np.ndarray, src_len: np.ndarray, opts: DecodeConfig,
                scorer: Scorer | None = None, *, attention: bool = False) -> list[list[Hyp]]:
    """Batched beam search with k = opts.beam, the opts.nbest best hypotheses per sentence
    (`tandem.decode.search.beam_search`, step for step)."""
    scorer = scorer or Scorer.from_options(opts)
    B, k = src.shape[0], opts.beam
    state = model.encode(src, src_len)
    g = 1
    limit_all = max_lengths(src_len, opts.max_len_a, opts.max_len_b)
    limit_alive = limit_all  # the limit of each sentence still searched
    src_lens = src_len.tolist()
    alive = list(range(B))
    n_finished = np.zeros(B, np.int64)  # finished hypotheses of each sentence
    scores = np.zeros((B, 1), np.float32)
    prev = np.full(B, BOS_ID, dtype=np.int64)
    history = np.empty((B, 0), dtype=np.int64)
    att_hist: np.ndarray | None = None
    coverage: np.ndarray | None = None
    finished: list[list[Hyp]] = [[] for _ in range(B)]
    for t in range(int(limit_all.max())):
        n_alive = len(alive)
        logp, state, att = model.decode_step(prev, state)
        if scorer.bans:
            scorer.ban(logp, history.tolist())
        V = logp.shape[-1]
        cand = (scores.reshape(-1, 1) + logp).reshape(n_alive, g * V)
        top_s, top_i = _top(cand, 2 * k)
        if top_s.shape[1] < 2 * k:
            short = 2 * k - top_s.shape[1]
            top_s = np.concatenate([top_s, np.full((n_alive, short), -np.inf, np.float32)], 1)
            top_i = np.concatenate([top_i, np.zeros((n_alive, short), np.int64)], 1)
        src_beam, tok = top_i // V, top_i % V
        if attention and att is not None:
            step_att = att[:, None]
            att_hist = step_att if att_hist is None else np.concatenate([att_hist, step_att], 1)
        if scorer.uses_coverage and att is not None:
            coverage = att.copy() if coverage is None else coverage + att
        base = (np.arange(n_alive) * g)[:, None]
        is_eos = tok == EOS_ID
        at_limit = limit_alive <= t + 1
        rank_ok = np.arange(top_s.shape[1])[None] < k
        fin = (is_eos | at_limit[:, None]) & rank_ok & np.isfinite(top_s)
        fi, fj = np.nonzero(fin)
        if fi.size:
            fin_rows = base[fi, 0] + src_beam[fi, fj]
            hist_l = history[fin_rows].tolist()
            for i, row, eos, last, s, toks in zip(
                    fi.tolist(), fin_rows.tolist(), is_eos[fi, fj].tolist(),
                    tok[fi, fj].tolist(), top_s[fi, fj].tolist(), hist_l, strict=True):
                b = alive[i]
                if not eos:
                    toks.append(last)
                a = None
                if att_hist is not None:
                    a = att_hist[row, : t + 1, : src_lens[b]].copy()
                norm = scorer.normalise(s, t + 1)
                if coverage is not None:
                    norm += scorer.coverage(coverage[row, : src_lens[b]][None])
                finished[b].append(Hyp(toks, s, norm, a, eos))
            np.add.at(n_finished, np.asarray(alive)[fi], 1)
        key = is_eos.astype(np.float32) * (2 * k) + np.arange(top_s.shape[1])[None]
        keep = np.argsort(key, axis=1, kind="stable")[:, :k]
        at = np.arange(n_alive)[:, None]
        scores = top_s[at, keep]
        done = at_limit.copy()
        # only a sentence with k finished hypotheses can be done before its limit
        for i in np.flatnonzero(~done & (n_finished[alive] >= k)).tolist():
            done[i] = _finished_enough(finished[alive[i]], k, float(scores[i, 0]), t + 1,
                                       scorer)
        if done.all():
            break
        still = np.flatnonzero(~done).tolist()
        rows = (base + src_beam[at, keep]).reshape(-1)
        prev = tok[at, keep].reshape(-1)
        if g < k:
            state, g = state.expand(k), k
        else:
            state = state.reorder(rows)
        history = np.concatenate([history[rows], prev[:, None]], 1)
        if att_hist is not None:
            att_hist = att_hist[rows]
        if coverage is not None:
            coverage = coverage[rows]
        if len(still) < n_alive:
            keep_s = np.array(still)
            keep_rows = (keep_s[:, None] * k + np.arange(k)).reshape(-1)
            state = state.keep(keep_s)
            scores, prev = scores[keep_s], prev[keep_rows]
            history = history[keep_rows]
            if att_hist is not None:
                att_hist = att_hist[keep_rows]
            if coverage is not None:
                coverage = coverage[keep_rows]
            alive = [alive[i] for i in still]
            limit_alive = limit_alive[keep_s]
    return [sorted(f, key=lambda h: h.norm_score, reverse=True)[:opts.nbest] for f in finished]
