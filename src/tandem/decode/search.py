"""Searches: greedy, beam and sampling, batched, written only against the model's
`encode`, `init_state` and `decode_step` and the state's `expand`/`reorder`/`keep`, so every
decoder variant works with every search.

Each returns, per sentence, a list of `Hyp` (best first). `score` is the sum of the model's
log-probabilities of the output tokens (eos included when the hypothesis ended with eos);
`norm_score` is the score divided by a length penalty: length**alpha (`length_norm: power`)
or ((5 + length) / 6)**alpha (`gnmt`, Wu et al. 2016); alpha=0 leaves the raw score. Beam
search can add GNMT's coverage penalty, beta * sum_j log(min(attention received by source
token j, 1)), to finished hypotheses. Both searches can forbid <unk> and repeated n-grams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID


@dataclass
class Hyp:
    tokens: list[int]  # output ids without bos/eos
    score: float
    norm_score: float
    attention: torch.Tensor | None = None  # (len(tokens) [+1 for eos], S) when asked
    ended: bool = True  # False when the length limit cut the output before eos


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output limit (eos included): a * source length + b, at least 1."""
    return (src_len.float() * a + b).long().clamp(min=1)


def _norm(score: float, length: int, alpha: float, kind: str = "power") -> float:
    if not alpha:
        return score
    if kind == "gnmt":
        return score / (((5 + length) / 6) ** alpha)
    return score / (max(length, 1) ** alpha)


def _ban(logp: torch.Tensor, history: list[list[int]], n: int, allow_unk: bool) -> None:
    """In place: -inf for <unk> (unless allowed) and, per row, for every token that would
    repeat an n-gram already in that row's history."""
    if not allow_unk:
        logp[:, UNK_ID] = float("-inf")
    if n <= 0 or not history or len(history[0]) < n - 1:
        return
    for row, h in enumerate(history):
        if n == 1:
            banned = set(h)
        else:
            tail = h[len(h) - n + 1:]
            banned = {h[i + n - 1] for i in range(len(h) - n + 1) if h[i:i + n - 1] == tail}
        if banned:
            logp[row, list(banned)] = float("-inf")


def coverage_penalty(att: torch.Tensor, beta: float) -> float:
    """GNMT: beta * sum over source tokens of log(min(total attention received, 1))."""
    return beta * float(att.sum(0).clamp(min=1e-6, max=1.0).log().sum())


@torch.no_grad()
def greedy(model, src: torch.Tensor, src_len: torch.Tensor, max_len_a: float = 2.0,
           max_len_b: int = 10, attention: bool = False, sample: bool = False,
           temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None,
           length_penalty: float = 0.0, length_norm: str = "power", no_repeat_ngram_size: int = 0,
           allow_unk: bool = True) -> list[list[Hyp]]:
    """Feed each output back as the next input: argmax, or a sample when `sample`.
    Finished sentences leave the batch, so the work shrinks as outputs end."""
    B, dev = src.size(0), src.device
    state = model.init_state(model.encode(src, src_len))
    limit = max_lengths(src_len, max_len_a, max_len_b)
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
        if no_repeat_ngram_size or not allow_unk:
            _ban(logp, out[alive, :t].tolist(), no_repeat_ngram_size, allow_unk)
        if sample:
            logits = logp / temperature
            if top_k:
                kth = logits.topk(min(top_k, logits.size(-1)), -1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
        else:
            tok = logp.argmax(-1)
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
        hyps.append([Hyp(rows[i][: n - e], s, _norm(s, n, length_penalty, length_norm), a, e)])
    return hyps


def _finished_enough(fin: list[Hyp], k: int, alive: float, length: int, alpha: float,
                     kind: str = "power") -> bool:
    """Done when k hypotheses are finished and the best unfinished one, scored at its current
    length, ranks below the k-th finished one. Exact for alpha=0 (scores only fall)."""
    if len(fin) < k:
        return False
    kth = sorted((h.norm_score for h in fin), reverse=True)[k - 1]
    return _norm(alive, length, alpha, kind) <= kth


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_len: torch.Tensor, beam: int = 5, nbest: int = 1,
                max_len_a: float = 2.0, max_len_b: int = 10, length_penalty: float = 1.0,
                attention: bool = False, length_norm: str = "power",
                coverage_penalty_beta: float = 0.0, no_repeat_ngram_size: int = 0,
                allow_unk: bool = True) -> list[list[Hyp]]:
    """Batched beam search: one (B*k) tensor for all beams of all sentences.

    Each step keeps the k best unfinished expansions per sentence; expansions ending in eos
    among the top k are set aside as finished. A sentence is done when it has k finished
    hypotheses and its best unfinished one cannot overtake them (`_finished_enough`), or
    when it reaches its length limit; done sentences leave the batch, and the search stops
    when every sentence is done. With k=1 this is exactly greedy search.

    The first step runs one row per sentence (all k beams would start identical), and the
    state is expanded to k rows per sentence after it.
    """
    B, k, dev = src.size(0), beam, src.device
    state = model.init_state(model.encode(src, src_len))
    g = 1  # rows per sentence: 1 for the first step, then k
    limit_all = max_lengths(src_len, max_len_a, max_len_b).tolist()
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
        if no_repeat_ngram_size or not allow_unk:
            _ban(logp, history.tolist(), no_repeat_ngram_size, allow_unk)
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
        if coverage_penalty_beta and att is not None:
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
                norm = _norm(s, t + 1, length_penalty, length_norm)
                if coverage is not None:
                    norm += coverage_penalty(coverage[row, : src_lens[b]].unsqueeze(0),
                                             coverage_penalty_beta)
                finished[b].append(Hyp(toks, s, norm, a, eos))
        # keep the k best expansions that did not end in eos
        key = is_eos.float() * (2 * k) + torch.arange(top_s.size(1), device=dev).unsqueeze(0)
        keep = key.argsort(dim=1)[:, :k]  # (B', k)
        scores = top_s.gather(1, keep)
        best_alive = scores[:, 0].tolist()
        still = [i for i, b in enumerate(alive) if not (t + 1 >= limit_all[b] or _finished_enough(
            finished[b], k, best_alive[i], t + 1, length_penalty, length_norm))]
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
    return [sorted(f, key=lambda h: h.norm_score, reverse=True)[:nbest] for f in finished]
