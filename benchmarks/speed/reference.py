"""The reference `benchmarks/speed/speed.py` compares tandem against: a seq2seq model written
the way tutorials write it. The encoder is one `nn.LSTM` call (tutorials do that too); the
decoder is a Python loop over time steps with `nn.LSTMCell`s. Beam search decodes one sentence
at a time, in two ways: `beam_search_per_hyp` as tutorials write it (each hypothesis its own
decoder call, a sorted list of candidates), and `beam_search` with the k beams of the sentence
as one small batch (a stronger reference).

It exists only to be timed, and does the same arithmetic as tandem's LSTM model with
`general` attention, input feeding and the `linear` bridge, none of the batching: the keys
of the attention (the encoder states) are made once per batch, and each step projects the
decoder state onto them, as tandem does. (Many tutorials instead project every encoder state
at every step, which is source-length times that projection's work per step; timing that
would compare redundant arithmetic, not code.) `load_tandem` copies such a tandem model's
weights in, so both search with the same model: the same sentences then take about the same
number of steps in both, and the beam ratio compares searches, not two differently trained
models' output lengths.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from tandem.data.vocab import BOS_ID, EOS_ID, PAD_ID


class TutorialSeq2Seq(nn.Module):
    """LSTM encoder-decoder with Luong `general` attention and input feeding, written as a
    per-step loop. Sizes: `hidden` is the decoder's state size and the encoder's output size
    (two directions of hidden // 2)."""

    def __init__(self, src_vocab: int, tgt_vocab: int, emb: int, hidden: int, enc_layers: int,
                 dec_layers: int) -> None:
        super().__init__()
        self.hidden, self.dec_layers = hidden, dec_layers
        self.enc_layers = enc_layers
        self.src_embed = nn.Embedding(src_vocab, emb, padding_idx=PAD_ID)
        self.encoder = nn.LSTM(emb, hidden // 2, enc_layers, batch_first=True,
                               bidirectional=True)
        # per decoder layer: tanh(Linear) of the encoder's final h, and of its final c
        self.bridge_h = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(dec_layers))
        self.bridge_c = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(dec_layers))
        self.tgt_embed = nn.Embedding(tgt_vocab, emb, padding_idx=PAD_ID)
        self.cells = nn.ModuleList(nn.LSTMCell(emb + hidden if i == 0 else hidden, hidden)
                                   for i in range(dec_layers))
        self.att_proj = nn.Linear(hidden, hidden, bias=False)  # decoder state -> key space
        self.combine = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, tgt_vocab)

    def encode(self, src: torch.Tensor):
        """src (B, S) -> (encoder states = attention keys and values (B, S, hidden), mask of
        real tokens (B, S), [(h, c) (B, hidden) per decoder layer])."""
        states, (h, c) = self.encoder(self.src_embed(src))
        hc = []
        for i in range(self.dec_layers):
            j = i if self.enc_layers == self.dec_layers else self.enc_layers - 1
            h_j = torch.cat([h[2 * j], h[2 * j + 1]], -1)  # both directions of layer j
            c_j = torch.cat([c[2 * j], c[2 * j + 1]], -1)
            hc.append((torch.tanh(self.bridge_h[i](h_j)), torch.tanh(self.bridge_c[i](c_j))))
        return states, (src != PAD_ID), hc

    @torch.no_grad()
    def load_tandem(self, model) -> TutorialSeq2Seq:
        """Copy in the weights of a tandem Seq2Seq of the same sizes with `general` attention,
        input feeding and the `linear` bridge: the two are then the same model."""
        enc, dec, L = model.encoder, model.decoder, self.dec_layers
        cfg = model.cfg
        if (cfg.cell, cfg.conditioning, cfg.attention, cfg.input_feeding, cfg.bridge,
                cfg.dec_layers, cfg.enc_layers) != ("lstm", "attention", "general", True,
                                                     "linear", L, self.enc_layers):
            raise ValueError("load_tandem needs an LSTM model with general attention, input "
                             "feeding, the linear bridge and this model's layer counts")
        self.src_embed.weight.copy_(enc.embed.weight)
        self.encoder.load_state_dict(enc.rnn.state_dict())
        for i in range(L):
            for mine, theirs in ((self.bridge_h[i], model.bridge.proj[i]),
                                 (self.bridge_c[i], model.bridge.proj[L + i])):
                mine.load_state_dict(theirs.state_dict())
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.cells[i], name).copy_(getattr(dec.rnn, f"{name}_l{i}"))
        self.tgt_embed.weight.copy_(dec.embed.weight)
        self.att_proj.weight.copy_(dec.attention.query_proj.weight)
        self.combine.load_state_dict(dec.pre_output.state_dict())
        self.out.load_state_dict(dec.generator.state_dict())
        return self

    def step(self, y: torch.Tensor, feed: torch.Tensor, hc, states, mask):
        """One decoder step: previous tokens y (B,), attentional vector feed (B, hidden), the
        layers' (h, c) -> (log-probs (B, V), new attentional vector, new (h, c) list)."""
        x = torch.cat([self.tgt_embed(y), feed], -1)
        new = []
        for cell, (h, c) in zip(self.cells, hc, strict=True):
            h, c = cell(x, (h, c))
            new.append((h, c))
            x = h
        q = self.att_proj(x)  # score = (W h) . s, the keys s left as they are
        scores = torch.bmm(states, q.unsqueeze(2)).squeeze(2).masked_fill(~mask, float("-inf"))
        ctx = torch.bmm(torch.softmax(scores, -1).unsqueeze(1), states).squeeze(1)
        o = torch.tanh(self.combine(torch.cat([x, ctx], -1)))
        return torch.log_softmax(self.out(o), -1), o, new

    def forward(self, src: torch.Tensor, src_len: torch.Tensor | None,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probs (B, T, V) of src (B, S), tgt_in (B, T). `src_len` is
        taken for tandem's call signature and not used: like tutorials, the encoder runs
        over the padding too (the attention masks it)."""
        states, mask, hc = self.encode(src)
        feed = states.new_zeros(src.size(0), self.hidden)
        outs = []
        for t in range(tgt_in.size(1)):
            logp, feed, hc = self.step(tgt_in[:, t], feed, hc, states, mask)
            outs.append(logp)
        return torch.stack(outs, 1)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, beam: int, max_len: int) -> list[int]:
        """One sentence (1, S): k hypotheses as a batch of k; finished ones set aside."""
        states, mask, hc = self.encode(src)
        states, mask = states.expand(beam, -1, -1), mask.expand(beam, -1)
        hc = [(h.expand(beam, -1).contiguous(), c.expand(beam, -1).contiguous()) for h, c in hc]
        feed = states.new_zeros(beam, self.hidden)
        y = torch.full((beam,), BOS_ID)
        scores = torch.full((beam,), float("-inf"))
        scores[0] = 0.0
        hyps: list[list[int]] = [[] for _ in range(beam)]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len):
            logp, feed, hc = self.step(y, feed, hc, states, mask)
            cand = (scores.unsqueeze(1) + logp).view(-1)
            top, idx = cand.topk(beam)
            rows, toks = idx // logp.size(1), idx % logp.size(1)
            new_hyps, keep = [], []
            for s, r, t in zip(top.tolist(), rows.tolist(), toks.tolist(), strict=True):
                if t == EOS_ID:
                    finished.append((s / (len(hyps[r]) + 1), hyps[r]))
                    s = float("-inf")
                new_hyps.append(hyps[r] + [t])
                keep.append(s)
            if len(finished) >= beam:
                break
            hyps, scores, y = new_hyps, torch.tensor(keep), toks
            feed = feed[rows]
            hc = [(h[rows], c[rows]) for h, c in hc]
        if not finished:
            finished = [(float(scores.max()), hyps[int(scores.argmax())])]
        return max(finished, key=lambda x: x[0])[1]

    @torch.no_grad()
    def beam_search_per_hyp(self, src: torch.Tensor, beam: int, max_len: int) -> list[int]:
        """One sentence (1, S), one decoder call per hypothesis per step."""
        states, mask, hc = self.encode(src)
        feed = states.new_zeros(1, self.hidden)
        hyps = [(0.0, [BOS_ID], feed, hc)]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len):
            cands = []
            for score, toks, feed, hc in hyps:
                logp, new_feed, new_hc = self.step(torch.tensor([toks[-1]]), feed, hc, states,
                                                   mask)
                top, idx = logp[0].topk(beam)
                for s, i in zip(top.tolist(), idx.tolist(), strict=True):
                    cands.append((score + s, toks + [i], new_feed, new_hc))
            cands.sort(key=lambda c: c[0], reverse=True)
            hyps = []
            for c in cands[:beam]:
                if c[1][-1] == EOS_ID:
                    finished.append((c[0] / (len(c[1]) - 1), c[1][1:-1]))
                else:
                    hyps.append(c)
            if len(finished) >= beam or not hyps:
                break
        if not finished:
            finished = [(hyps[0][0], hyps[0][1][1:])]
        return max(finished, key=lambda x: x[0])[1]


def time_search(ref: TutorialSeq2Seq, examples, beam: int, method: str = "beam_search"
                ) -> tuple[float, float]:
    """The reference's `method` ("beam_search" or "beam_search_per_hyp") over the sources
    of `examples`, one sentence at a time, up to source length + 5 steps.
    Returns (sentences/s, output tokens/s)."""
    search = getattr(ref, method)
    ref.eval()
    out_tokens = 0
    t = time.perf_counter()
    with torch.no_grad():
        for src, _ in examples:
            out_tokens += len(search(torch.tensor([src]), beam, len(src) + 5))
    dt = time.perf_counter() - t
    return len(examples) / dt, out_tokens / dt
