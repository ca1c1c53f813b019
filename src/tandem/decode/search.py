"""Searches: greedy, beam and sampling, batched, written only against the model's
`encode`, `init_state` and `decode_step` and the state's `expand`/`reorder`/`keep`, so every
decoder variant works with every search.

Each takes the decoding options whole (`DecodeConfig`) and a `Scorer` built once from them
(length normalisation, coverage penalty, bans; `scoring.py`), and returns, per sentence, a
list of `Hyp` (best first). `score` is the sum of the model's log-probabilities of the output
tokens (eos included when the hypothesis ended with eos); `norm_score` is the score the
hypotheses are ranked by: the scorer's length normalisation of it, plus, in beam search, the
coverage penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tandem.config import DecodeConfig
from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID
from tandem.decode.scoring import Scorer


@dataclass
class Hyp:
    """One output of a search for one sentence."""

    tokens: list[int]  # output ids without bos/eos
    score: float  # sum of the model's log-probabilities of the tokens (and eos when ended)
    norm_score: float  # the score it is ranked by (see the module docstring)
    attention: torch.Tensor | None = None  # (len(tokens) [+1 for eos], S) when asked
    ended: bool = True  # False when the length limit cut the output before eos


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output limit (eos included): a * source length + b, at least 1."""
    return (src_len.float() * a + b).long().clamp(min=1)


def run(model, src: torch.Tensor, src_len: torch.Tensor, opts: DecodeConfig,
        scorer: Scorer | None = None, *, attention: bool = False,
        generator: torch.Generator | None = None) -> list[list[Hyp]]:
    """The search the options ask for: sampling (opts.sample), greedy (opts.beam == 1) or
    beam search. `src` (B, S) ids, `src_len` (B,); `scorer` defaults to the options' own."""
    scorer = scorer or Scorer.from_options(opts)
    if opts.sample:
        return sample(model, src, src_len, opts, scorer, attention=attention,
                      generator=generator)
    if opts.beam == 1:
        return greedy(model, src, src_len, opts, scorer, attention=attention)
    return beam_search(model, src, src_len, opts, scorer, attention=attention)


def greedy(model, src: torch.Tensor, src_len: torch.Tensor, opts: DecodeConfig,
           scorer: Scorer | None = None, *, attention: bool = False) -> list[list[Hyp]]:
    """Feed the most likely token of each step back as the next input (opts.max_len_a/b
    bound the length; the scorer's bans apply and its length normalisation gives
    norm_score). `src` (B, S) ids, `src_len` (B,)."""
    return _feed_back(model, src, src_len, opts, scorer or Scorer.from_options(opts),
                      attention, lambda logp: logp.argmax(-1), normalise=True)


def sample(model, src: torch.Tensor, src_len: torch.Tensor, opts: DecodeConfig,
           scorer: Scorer | None = None, *, attention: bool = False,
           generator: torch.Generator | None = None) -> list[list[Hyp]]:
    """Feed a token drawn from each step's distribution back as the next input: the
    log-probabilities (after the scorer's bans) divided by opts.temperature, restricted to
    the opts.top_k most likely tokens when top_k > 0, drawn with `generator`. Nothing is
    ranked, so norm_score is the raw score."""
    temperature, top_k = opts.temperature, opts.top_k

    def draw(logp: torch.Tensor) -> torch.Tensor:
        """logp (N, V) -> one drawn token id per row (N,)."""
        logits = logp / temperature
        if top_k:
            kth = logits.topk(min(top_k, logits.size(-1)), -1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)

    return _feed_back(model, src, src_len, opts, scorer or Scorer.from_options(opts),
                      attention, draw, normalise=False)


@torch.no_grad()
def _feed_back(model, src: torch.Tensor, src_len: torch.Tensor, opts: DecodeConfig,
               scorer: Scorer, attention: bool, choose, normalise: bool) -> list[list[Hyp]]:
    """Greedy search and sampling: one token per sentence per step, chosen by `choose`
    from the (B', V) log-probabilities. Finished sentences leave the batch, so the work
    shrinks as outputs end."""
    B, dev = src.size(0), src.device
    state = model.init_state(model.encode(src, src_len))
    limit = max_lengths(src_len, opts.max_len_a, opts.max_len_b)
    T = int(limit.max())
    out = torch.full((B, T), PAD_ID, dtype=torch.long, device=dev)
    att_buf = torch.zeros(B, T, src.size(1), device=dev) if attention else None
    scores = torch.zeros(B, device=dev)
    lengths = torch.zeros(B, dtype=torch.long, device=dev)
    ended = torch.zeros(B, dtype=torch.bool, device=dev)
    alive = torch.arange(B, device=dev)  # original ids of the sentences still decoding
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=dev)
    for t in range(T):
        logp, state, att = model.decode_step(prev, state)
        if scorer.bans:
            scorer.ban(logp, out[alive, :t].tolist())
        tok = choose(logp)
        out[alive, t] = tok
        scores[alive] += logp.gather(1, tok.unsqueeze(1)).squeeze(1)
        if att_buf is not None and att is not None:
            att_buf[alive, t, : att.size(1)] = att
        is_eos = tok == EOS_ID
        fin = is_eos | (t + 1 >= limit[alive])
        if bool(fin.any()):
            lengths[alive[fin]] = t + 1
            ended[alive[fin]] = is_eos[fin]
            still = (~fin).nonzero().squeeze(1)
            if still.numel() == 0:
                break
            alive, tok = alive[still], tok[still]
            state = state.keep(still)
        prev = tok
    rows, hyps = out.tolist(), []
    for i in range(B):
        n, e = int(lengths[i]), bool(ended[i])
        s = float(scores[i])
        a = att_buf[i, :n, : int(src_len[i])] if att_buf is not None else None
        hyps.append([Hyp(rows[i][: n - e], s, scorer.normalise(s, n) if normalise else s, a, e)])
    return hyps


def _finished_enough(fin: list[Hyp], k: int, alive: float, length: int,
                     scorer: Scorer) -> bool:
    """Done when k hypotheses are finished and the best unfinished one, scored at its current
    length, ranks below the k-th finished one. Exact for alpha=0 (scores only fall)."""
    if len(fin) < k:
        return False
    kth = sorted((h.norm_score for h in fin), reverse=True)[k - 1]
    return scorer.normalise(alive, length) <= kth


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_len: torch.Tensor, opts: DecodeConfig,
                scorer: Scorer | None = None, *, attention: bool = False) -> list[list[Hyp]]:
    """Batched beam search with k = opts.beam, returning the opts.nbest best hypotheses per
    sentence: one (B*k) tensor for all beams of all sentences. `src` (B, S) ids,
    `src_len` (B,); the scorer bans tokens and ranks finished hypotheses.

    Each step keeps the k best unfinished expansions per sentence; expansions ending in eos
    among the top k are set aside as finished. A sentence is done when it has k finished
    hypotheses and its best unfinished one cannot overtake them (`_finished_enough`), or
    when it reaches its length limit; done sentences leave the batch, and the search stops
    when every sentence is done. With k=1 this is exactly greedy search.

    The first step runs one row per sentence (all k beams would start identical), and the
    state is expanded to k rows per sentence after it.
    """
    scorer = scorer or Scorer.from_options(opts)
    B, k, dev = src.size(0), opts.beam, src.device
    state = model.init_state(model.encode(src, src_len))
    g = 1  # rows per sentence: 1 for the first step, then k
    limit_all = max_lengths(src_len, opts.max_len_a, opts.max_len_b).tolist()
    src_lens = src_len.tolist()
    alive = list(range(B))  # original ids of the sentences still searching
    scores = torch.zeros((B, 1), device=dev)
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=dev)
    history = torch.empty((B, 0), dtype=torch.long, device=dev)
    att_hist: torch.Tensor | None = None
    coverage: torch.Tensor | None = None  # (B'*k, S) attention received so far, for beta > 0
    finished: list[list[Hyp]] = [[] for _ in range(B)]
    for t in range(max(limit_all)):
        n_alive = len(alive)
        logp, state, att = model.decode_step(prev, state)  # (B'*g, V)
        if scorer.bans:
            scorer.ban(logp, history.tolist())
        V = logp.size(-1)
        cand = (scores.view(-1, 1) + logp).view(n_alive, g * V)
        top_s, top_i = cand.topk(min(2 * k, g * V), dim=1)  # (B', 2k)
        if top_s.size(1) < 2 * k:  # first step, vocabulary < 2k: dead candidates fill up
            short = 2 * k - top_s.size(1)
            top_s = torch.cat([top_s, top_s.new_full((n_alive, short), float("-inf"))], 1)
            top_i = torch.cat([top_i, top_i.new_zeros((n_alive, short))], 1)
        src_beam, tok = top_i // V, top_i % V
        if attention and att is not None:
            step_att = att.unsqueeze(1)
            att_hist = step_att if att_hist is None else torch.cat([att_hist, step_att], 1)
        if scorer.uses_coverage and att is not None:
            coverage = att.clone() if coverage is None else coverage + att
        base = (torch.arange(n_alive, device=dev) * g).unsqueeze(1)
        # set aside finished hypotheses (eos within the top k, or everything at the limit)
        is_eos = tok == EOS_ID
        at_limit = torch.tensor([t + 1 >= limit_all[b] for b in alive], device=dev)
        rank_ok = torch.arange(top_s.size(1), device=dev).unsqueeze(0) < k
        fin = (is_eos | at_limit.unsqueeze(1)) & rank_ok & torch.isfinite(top_s)
        fi, fj = fin.nonzero(as_tuple=True)
        if fi.numel():
            # one gather per step, then plain Python lists: no per-hypothesis tensor indexing
            fin_rows = base[fi, 0] + src_beam[fi, fj]
            hist_l = history.index_select(0, fin_rows).tolist()
            for i, row, eos, last, s, toks in zip(
                    fi.tolist(), fin_rows.tolist(), is_eos[fi, fj].tolist(),
                    tok[fi, fj].tolist(), top_s[fi, fj].tolist(), hist_l, strict=True):
                b = alive[i]
                if not eos:
                    toks.append(last)
                a = None
                if att_hist is not None:
                    a = att_hist[row, : t + 1, : src_lens[b]].clone()
                norm = scorer.normalise(s, t + 1)
                if coverage is not None:
                    norm += scorer.coverage(coverage[row, : src_lens[b]].unsqueeze(0))
                finished[b].append(Hyp(toks, s, norm, a, eos))
        # keep the k best expansions that did not end in eos
        key = is_eos.float() * (2 * k) + torch.arange(top_s.size(1), device=dev).unsqueeze(0)
        keep = key.argsort(dim=1)[:, :k]  # (B', k)
        scores = top_s.gather(1, keep)
        best_alive = scores[:, 0].tolist()
        still = [i for i, b in enumerate(alive) if not (t + 1 >= limit_all[b] or _finished_enough(
            finished[b], k, best_alive[i], t + 1, scorer))]
        if not still:
            break
        rows = (base + src_beam.gather(1, keep)).view(-1)
        prev = tok.gather(1, keep).view(-1)
        if g < k:  # after the first step: every beam's parent is its sentence's one row
            state, g = state.expand(k), k
        else:
            state = state.reorder(rows)
        history = torch.cat([history.index_select(0, rows), prev.unsqueeze(1)], 1)
        if att_hist is not None:
            att_hist = att_hist.index_select(0, rows)
        if coverage is not None:
            coverage = coverage.index_select(0, rows)
        if len(still) < n_alive:  # drop done sentences from the batch
            keep_s = torch.tensor(still, device=dev)
            keep_rows = (keep_s.unsqueeze(1) * k + torch.arange(k, device=dev)).view(-1)
            state = state.keep(keep_s)
            scores, prev = scores.index_select(0, keep_s), prev.index_select(0, keep_rows)
            history = history.index_select(0, keep_rows)
            if att_hist is not None:
                att_hist = att_hist.index_select(0, keep_rows)
            if coverage is not None:
                coverage = coverage.index_select(0, keep_rows)
            alive = [alive[i] for i in still]
    return [sorted(f, key=lambda h: h.norm_score, reverse=True)[:opts.nbest] for f in finished]
