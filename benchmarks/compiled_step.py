"""Would compiled step kernels (torch.compile, inductor CPU backend) make tandem's decoder
faster? Measured on the side-by-side benchmark's model, before building them into tandem.

    python benchmarks/compiled_step.py [--threads 2] [--rounds 7] [--out benchmarks/results]

The model is benchmarks/sidebyside's: embeddings 128, 2-layer biLSTM encoder (256 joined),
2-layer LSTM decoder of 256, Luong general attention, random weights (speed does not depend
on them), source and target vocabularies of 31 and 43 as in CMUdict G2P. It measures:

1. where the time of tandem's eager paths goes: torch.profiler's self CPU time of a beam-5
   search of 64 words and of an input-feeding training step (200 words of 9 letters): the
   matrix products' (mm, addmm, bmm, oneDNN RNN layers and their backward) share of all
   operators' time and of an unprofiled call's wall clock; the rest (pointwise operators,
   copies, indexing, Python between and inside operators) is all a compiler can fuse or
   remove;
2. one decoder search step (embedding, cells, attention, output layer, log-softmax) for 1 and
   64 sentences x 5 beams: tandem's eager step against the same step under
   `torch.compile(dynamic=True)`, written two ways (PyTorch's cell arithmetic; tandem's
   fused `StepCell`s), with and without inductor's `freezing` (weights as constants,
   prepacked for oneDNN), guards on module state skipped;
3. the input-feeding training step, eager against its per-step decoder under torch.compile.

Medians of --rounds interleaved rounds; the first call of each compiled variant (its compile
time) is reported apart. Writes benchmarks/results/compiled-step-<date>.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from common import write_report
from torch import nn

from tandem.config import DecodeConfig, ModelConfig
from tandem.decode import search
from tandem.model import fast
from tandem.model.decoder import DecoderState
from tandem.model.seq2seq import Seq2Seq, output_log_probs

SRC_V, TGT_V, SRC_LEN = 31, 43, 9
MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_rnn_layer",
          "aten::mkldnn_rnn_layer_backward", "aten::_mkldnn_rnn_layer", "aten::addmv",
          "aten::mv", "mkldnn::_linear_pointwise")


def model(feed: bool, train: bool) -> Seq2Seq:
    """The side-by-side model, prepared with tandem's kernels for training or inference."""
    cfg = ModelConfig(cell="lstm", emb_size=128, hidden_size=256, enc_hidden_size=256,
                      enc_layers=2, dec_layers=2, bidirectional=True, dropout=0.0,
                      bridge="linear", conditioning="attention", attention="general",
                      input_feeding=feed)
    torch.manual_seed(0)
    m = Seq2Seq(cfg, SRC_V, TGT_V).train(train)
    fast.prepare(m, "cpu", "train" if train else "infer")
    return m


def torch_cells(rnn: nn.LSTM, x: torch.Tensor, hidden):
    """One LSTM step in PyTorch's own arithmetic (two products per layer), for the compiler."""
    inp, hs, cs = x[:, 0], [], []
    w = rnn._flat_weights
    for i in range(rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = w[4 * i: 4 * i + 4]
        g = nn.functional.linear(inp, w_ih, b_ih) + nn.functional.linear(hidden[0][i], w_hh,
                                                                          b_hh)
        ig, fg, gg, og = g.chunk(4, 1)
        c = torch.sigmoid(fg) * hidden[1][i] + torch.sigmoid(ig) * torch.tanh(gg)
        h = torch.sigmoid(og) * torch.tanh(c)
        hs.append(h)
        cs.append(c)
        inp = h
    return inp.unsqueeze(1), (torch.stack(hs), torch.stack(cs))


def decoder_step(dec, cells, fused: bool, frozen: bool, tokens, hidden, feed, c, values, keys,
                 mask, key_cache, group: int):
    """The decoder's step as one function of tensors (what torch.compile sees): PyTorch's
    cell arithmetic, or with `fused` tandem's fused StepCells `cells`. `frozen` only tells
    the compiled variants apart: guards on modules are skipped, so without a guarded plain
    argument a compiled graph would be reused by another variant."""
    state = DecoderState(hidden, feed, c, values, keys, mask, group, key_cache)
    emb = dec.dropout(dec.embed(tokens))
    x = dec._rnn_input(emb, state)
    if fused:
        h, hidden = fast.step_layers(x, state.hidden, list(cells), True, dec.rnn.hidden_size)
    else:
        h, hidden = torch_cells(dec.rnn, x, state.hidden)
    o, att = dec._outputs(h, emb, state)
    o = dec.dropout(o)
    return dec.generator(o), hidden, (o[:, -1] if dec.input_feeding else None), att


def compiled(freezing: bool = False):
    """decoder_step under torch.compile with dynamic shapes, guards on modules skipped (they
    cost a noticeable share of a step here; safe because each variant sees one model)."""
    options = {"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
    if freezing:
        options["freezing"] = True
    return torch.compile(decoder_step, dynamic=True, options=options)


def medians(fns: dict, rounds: int, calls: int) -> dict:
    """Per-call milliseconds of each function: the median of `rounds` interleaved rounds of
    `calls` calls, and each function's first two calls (compile time) apart."""
    first, times = {}, {n: [] for n in fns}
    for name, f in fns.items():
        t = time.perf_counter()
        f()
        f()
        first[name] = round(time.perf_counter() - t, 2)
    for _ in range(rounds):
        for name, f in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                f()
            times[name].append((time.perf_counter() - t) / calls * 1e3)
    return {n: {"median_ms": round(statistics.median(v), 3), "min_ms": round(min(v), 3),
                "first_two_calls_s": first[n]} for n, v in times.items()}


def matmul_share(fn, repeat: int) -> dict:
    """Where `fn`'s time goes: the matrix products' self CPU time (torch.profiler) as a share
    of all operators' self time and of the wall clock of an unprofiled call (Python between
    operators counts only in the latter), and the top operators."""
    from torch.profiler import profile

    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    wall_us = (time.perf_counter() - t) / repeat * 1e6
    with profile() as p:
        for _ in range(repeat):
            fn()
    ops = [(e.key, e.self_cpu_time_total) for e in p.key_averages()]
    total = sum(t for _, t in ops)
    mm = sum(t for k, t in ops if k in MATMUL)
    top = sorted(ops, key=lambda kv: -kv[1])[:8]
    return {"matmul_share_of_operator_time": round(mm / total, 3),
            "matmul_share_of_wall_time": round(mm / repeat / wall_us, 3),
            "wall_ms_per_call": round(wall_us / 1e3, 2),
            "top_ops": {k: round(t / total, 3) for k, t in top}}


def search_steps(rounds: int) -> dict:
    """Eager against compiled search steps, 1 and 64 sentences x 5 beams."""
    out = {}
    m = model(False, False)
    cells = m.decoder.run_rnn.cells(m.decoder.rnn)
    variants = {"torch_cells": (False, False), "fused_cells": (True, False),
                "fused_cells_freezing": (True, True)}
    for B in (1, 64):
        src = torch.randint(4, SRC_V, (B, SRC_LEN))
        lens = torch.full((B,), SRC_LEN)
        with torch.no_grad():
            st = m.init_state(m.encode(src, lens)).expand(5)
            prev = torch.randint(4, TGT_V, (B * 5,))
            fns = {"eager": lambda st=st, prev=prev: m.decode_step(prev, st)[0]}
            for name, (fused, freezing) in variants.items():
                step = compiled(freezing)

                def run(step=step, st=st, prev=prev, fused=fused, freezing=freezing):
                    logits, *_ = step(m.decoder, cells, fused, freezing, prev.unsqueeze(1),
                                      st.hidden, st.feed, st.c, st.values, st.keys, st.mask,
                                      st.key_cache, st.group)
                    return output_log_probs(logits.squeeze(1))
                fns[name] = run
            res = medians(fns, rounds, 50 if B == 64 else 200)
            ref = fns["eager"]()
            finite = torch.isfinite(ref)  # pad and bos are -inf in both
            check = {n: float((fns[n]() - ref)[finite].abs().max()) for n in variants}
        for n, d in check.items():
            res[n]["max_abs_log_prob_diff"] = d
        out[f"{B}x5_rows"] = res
    return out


def train_steps(rounds: int) -> tuple[dict, Callable[[], None]]:
    """Eager against a compiled per-step decoder in input-feeding training: the timings and
    the eager step (for the profile)."""
    m = model(True, True)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    B, T = 200, 9
    src = torch.randint(4, SRC_V, (B, SRC_LEN))
    lens = torch.full((B,), SRC_LEN)
    tgt = torch.randint(4, TGT_V, (B, T + 1))
    step = compiled()
    dec = m.decoder

    def loop_compiled():
        state = m.init_state(m.encode(src, lens))
        hidden, feed, outs = state.hidden, None, []
        for t in range(T):
            logits, hidden, feed, _ = step(dec, None, False, False, tgt[:, t:t + 1], hidden,
                                           feed, state.c, state.values, state.keys,
                                           state.mask, state.key_cache, 1)
            outs.append(logits)
        return torch.cat(outs, 1)

    def train(forward):
        logits = forward()
        loss = nn.functional.cross_entropy(logits.reshape(-1, TGT_V), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    fns = {"eager": lambda: train(lambda: m(src, lens, tgt[:, :-1])),
           "compiled_step": lambda: train(loop_compiled)}
    return medians(fns, rounds, 5), fns["eager"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="benchmarks/results")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    m = model(False, False)
    B = 64
    src = torch.randint(4, SRC_V, (B, SRC_LEN))
    lens = torch.full((B,), SRC_LEN)
    opts = DecodeConfig(beam=5, max_len_a=1.0, max_len_b=2)
    with torch.no_grad():
        beam_profile = matmul_share(lambda: search.beam_search(m, src, lens, opts), 3)
    steps = search_steps(a.rounds)
    train, eager_train = train_steps(a.rounds)
    body = {"threads": a.threads, "rounds": a.rounds,
            "model": "sidebyside: emb 128, biLSTM 2x(2x128), LSTM decoder 2x256, general "
                     "attention, vocab 31/43, random weights",
            "profile_eager": {"beam5_64_words": beam_profile,
                              "train_step_input_feeding_200x9": matmul_share(eager_train, 3)},
            "search_step": steps, "train_step_input_feeding": train}
    print(write_report(a.out, "compiled-step", "", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
