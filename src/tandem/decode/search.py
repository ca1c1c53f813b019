"""Searches: greedy, beam and sampling, batched, written only against the model's
`encode`, `init_state` and `decode_step` and the state's `select`/`reorder`, so every
decoder variant works with every search.

Each returns, per sentence, a list of `Hyp` (best first). `score` is the sum of the model's
log-probabilities of the output tokens (eos included when the hypothesis ended with eos);
`norm_score` is score / length**alpha (GNMT-style length normalisation, alpha=0: raw score).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID


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


def _norm(score: float, length: int, alpha: float) -> float:
    return score / (max(length, 1) ** alpha) if alpha else score


@torch.no_grad()
def greedy(model, src: torch.Tensor, src_len: torch.Tensor, max_len_a: float = 2.0,
           max_len_b: int = 10, attention: bool = False, sample: bool = False,
           temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None,
           length_penalty: float = 0.0) -> list[list[Hyp]]:
    """Feed each output back as the next input: argmax, or a sample when `sample`."""
    B = src.size(0)
    state = model.init_state(model.encode(src, src_len))
    limit = max_lengths(src_len, max_len_a, max_len_b)
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    scores = torch.zeros(B, device=src.device)
    steps, atts = [], []
    for t in range(int(limit.max())):
        logp, state, att = model.decode_step(prev, state)
        if sample:
            logits = logp / temperature
            if top_k:
                kth = logits.topk(min(top_k, logits.size(-1)), -1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
        else:
            tok = logp.argmax(-1)
        tok = tok.masked_fill(done, PAD_ID)
        scores += logp.gather(1, tok.unsqueeze(1)).squeeze(1).masked_fill(done, 0.0)
        steps.append(tok)
        if attention and att is not None:
            atts.append(att)
        done |= (tok == EOS_ID) | (t + 1 >= limit)
        prev = tok
        if bool(done.all()):
            break
    out = torch.stack(steps, 1).tolist()
    att_all = torch.stack(atts, 1) if atts else None
    hyps = []
    for i in range(B):
        seq = out[i]
        n = seq.index(EOS_ID) + 1 if EOS_ID in seq else len([x for x in seq if x != PAD_ID])
        toks = [x for x in seq[:n] if x != EOS_ID]
        s = float(scores[i])
        a = att_all[i, :n, : int(src_len[i])] if att_all is not None else None
        hyps.append([Hyp(toks, s, _norm(s, n, length_penalty), a, EOS_ID in seq[:n])])
    return hyps


def _finished_enough(fin: list[Hyp], k: int, alive: float, length: int, alpha: float) -> bool:
    """Done when k hypotheses are finished and the best unfinished one, scored at its current
    length, ranks below the k-th finished one. Exact for alpha=0 (scores only fall)."""
    if len(fin) < k:
        return False
    kth = sorted((h.norm_score for h in fin), reverse=True)[k - 1]
    return _norm(alive, length, alpha) <= kth


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_len: torch.Tensor, beam: int = 5, nbest: int = 1,
                max_len_a: float = 2.0, max_len_b: int = 10, length_penalty: float = 1.0,
                attention: bool = False) -> list[list[Hyp]]:
    """Batched beam search: one (B*k) tensor for all beams of all sentences.

    Each step keeps the k best unfinished expansions per sentence; expansions ending in eos
    among the top k are set aside as finished. A sentence is done when it has k finished
    hypotheses and its best unfinished one cannot overtake them (`_finished_enough`), or
    when it reaches its length limit; the search stops when every sentence is done.
    With k=1 this is exactly greedy search.
    """
    B, k, dev = src.size(0), beam, src.device
    state = model.init_state(model.encode(src, src_len))
    state = state.select(torch.arange(B, device=dev).repeat_interleave(k))
    limit = max_lengths(src_len, max_len_a, max_len_b).tolist()
    scores = torch.full((B, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    prev = torch.full((B * k,), BOS_ID, dtype=torch.long, device=dev)
    history = torch.empty((B * k, 0), dtype=torch.long, device=dev)
    att_hist: torch.Tensor | None = None
    finished: list[list[Hyp]] = [[] for _ in range(B)]
    done = [False] * B
    base = (torch.arange(B, device=dev) * k).unsqueeze(1)  # (B, 1)
    for t in range(max(limit)):
        logp, state, att = model.decode_step(prev, state)  # (B*k, V)
        V = logp.size(-1)
        cand = (scores.view(-1, 1) + logp).view(B, k * V)
        top_s, top_i = cand.topk(min(2 * k, k * V), dim=1)  # (B, 2k)
        src_beam, tok = top_i // V, top_i % V
        if attention and att is not None:
            step_att = att.unsqueeze(1)
            att_hist = step_att if att_hist is None else torch.cat([att_hist, step_att], 1)
        # set aside finished hypotheses (eos within the top k, or everything at the limit)
        is_eos = tok == EOS_ID
        at_limit = torch.tensor([t + 1 >= n for n in limit], device=dev).unsqueeze(1)
        rank_ok = torch.arange(top_s.size(1), device=dev).unsqueeze(0) < k
        fin = (is_eos | at_limit) & rank_ok & torch.isfinite(top_s)
        for b, j in fin.nonzero().tolist():
            if done[b]:
                continue
            row = int(base[b, 0] + src_beam[b, j])
            toks = history[row].tolist() + ([] if is_eos[b, j] else [int(tok[b, j])])
            n = t + 1
            s = float(top_s[b, j])
            a = None
            if att_hist is not None:
                a = att_hist[row, :n, : int(src_len[b])].clone()
            finished[b].append(Hyp(toks, s, _norm(s, n, length_penalty), a, bool(is_eos[b, j])))
        # keep the k best expansions that did not end in eos
        key = is_eos.float() * (2 * k) + torch.arange(top_s.size(1), device=dev).unsqueeze(0)
        keep = key.argsort(dim=1)[:, :k]  # (B, k)
        scores = top_s.gather(1, keep)
        best_alive = scores[:, 0].tolist()
        for b in range(B):
            if not done[b] and (t + 1 >= limit[b] or _finished_enough(
                    finished[b], k, best_alive[b], t + 1, length_penalty)):
                done[b] = True
        if all(done):
            break
        done_t = torch.tensor(done, device=dev).unsqueeze(1)
        scores = scores.masked_fill(done_t, float("-inf"))
        rows = (base + src_beam.gather(1, keep)).view(-1)
        prev = tok.gather(1, keep).view(-1)
        state = state.reorder(rows)
        history = torch.cat([history.index_select(0, rows), prev.unsqueeze(1)], 1)
        if att_hist is not None:
            att_hist = att_hist.index_select(0, rows)
    out = []
    for b in range(B):
        hyps = sorted(finished[b], key=lambda h: h.norm_score, reverse=True)
        out.append(hyps[:nbest])
    return out
