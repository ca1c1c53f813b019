"""The models as ONNX graphs, for `tandem export` and the lean runtime (`tandem.runtime`).

A seq2seq model becomes two graphs around the interface every search drives:
- `encoder`: source ids (or frames) and lengths -> the decoder's first state (`state`: h, an
  LSTM's c, input feeding's previous attentional vector) and what each step reads of the
  source (`memory`: every-step conditioning's c, attention's values, keys and mask);
- `step`: the previous token and the state and memory -> log-probabilities over the target
  vocabulary (pad and bos excluded, as `Seq2Seq.decode_step`), the next state, and the
  attention weights when the model attends.
The other structures' graphs are their forward pass (`forward_graph`).

Graphs are traced with PyTorch's TorchScript-based exporter: it exports `pack_padded_sequence`
as ONNX RNN nodes with per-row lengths, so padding never enters the recurrence, as in training
(the dynamo exporter cannot export packed sequences). A search's step is traced with the
kernels the PyTorch searches use on a CPU (`search_kernels`), so both do the same arithmetic.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from tandem.model.attention import Attention
from tandem.model.decoder import Decoder, DecoderState
from tandem.model.encoder import Encoder, packed_rnn
from tandem.model.fast import (
    Int8Steps,
    ProjectedKeys,
    SigmoidScores,
    add_step_cells,
    steppable,
)
from tandem.model.seq2seq import NEVER_OUTPUT, Seq2Seq

OPSET = 17
BATCH = "batch"


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """The exporter's C++ side writes shape-inference notes about packed sequences straight
    to file descriptor 2; they say nothing a user can act on (the graphs are checked against
    the model by the tests), so they are dropped while it runs."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded interpreters): nothing to quiet
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def traced_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor):
    """`packed_rnn` for tracing: the final state gains an empty sum over the padded states
    (exactly 0), so the states stay in the graph when a model reads only the final state (a
    classifier's last bridge, a tagger's character view): the exporter fails on an unused
    padded output."""
    states, hidden = packed_rnn(rnn, x, lengths)
    anchor = states[:, :0].sum()
    if isinstance(hidden, tuple):
        return states, (hidden[0] + anchor, hidden[1] + anchor)
    return states, hidden + anchor


def export_graph(module: nn.Module, args: tuple, path: Path, inputs: list[str],
                 outputs: list[str], axes: dict[str, dict[int, str]]) -> dict:
    """Trace `module` on `args` into `path`; -> the manifest's entry for the graph."""
    for m in module.modules():
        if isinstance(m, Encoder):
            m.run_rnn = traced_rnn
    with warnings.catch_warnings(), torch.no_grad(), _quiet_native_stderr():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(module.eval(), args, str(path), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    return {"file": path.name, "inputs": inputs, "outputs": outputs}


def source_example(frames: int, batch: int = 2, length: int = 5
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A made-up padded batch to trace with: ids (B, S) (or frames (B, S, C)) and lengths
    that differ, so no shape is traced as a constant."""
    lengths = torch.tensor([length] + [max(1, length - 2)] * (batch - 1))
    if frames:
        return torch.randn(batch, length, frames), lengths
    src = torch.randint(4, 6, (batch, length))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    return src, lengths


AXIS = {"h": 1, "c": 1, "feed": 0, "cvec": 0, "values": 0, "keys": 0, "cache": 0, "mask": 0}
"""The batch axis of each array of a search's state."""
SENTENCES = "sentences"
"""The memory's batch axis in a step graph: one row per sentence, shared by its hypotheses."""
PER_POSITION = ("values", "keys", "cache", "mask")
"""The encoder-side arrays with a source position axis (axis 1)."""


def search_kernels(model: nn.Module) -> None:
    """Give `model` the kernels the PyTorch searches use on a CPU, in a traceable form:
    decoder steps through per-layer step cells (one product over [x; h], registered as the
    decoder's `step_cells`), general attention's keys projected once per batch, additive
    attention's sigmoid form. The exported step then does the PyTorch path's arithmetic."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.additive, m.general = SigmoidScores(), ProjectedKeys()
        elif isinstance(m, Decoder) and steppable(m.rnn):
            add_step_cells(m)
            m.run_rnn = Int8Steps(m.step_cells)  # the cells are float32 here


def _first_state(st: DecoderState, dec: Decoder, batch: int) -> dict[str, torch.Tensor | None]:
    """A DecoderState as named arrays: h (and c), input feeding's zeros, and the memory."""
    hidden = st.hidden
    if hidden is None:
        zeros = torch.zeros(dec.layers, batch, dec.hidden_size)
        hidden = (zeros, zeros) if dec.lstm else zeros
    h, c = hidden if dec.lstm else (hidden, None)
    return {"h": h, "c": c, "feed": torch.zeros(batch, dec.out_size) if dec.input_feeding
            else None, "cvec": st.c, "values": st.values, "keys": st.keys,
            "cache": st.key_cache, "mask": st.mask}


class _Encode(nn.Module):
    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """src, src_len -> the named first-state arrays, in `names` order."""
        st = self.model.init_state(self.model.encode(src, src_len))
        got = _first_state(st, self.model.decoder, src_len.size(0))
        return tuple(got[n] for n in self.names)


class _GroupedAttention(nn.Module):
    """Attention for a step whose N hypotheses (rows) share their sentence's memory row (B
    rows, N = B x k): the rows of one sentence are folded into its time axis, as
    `Attention.forward` does for a search's groups, with k read from the shapes so the graph
    takes any beam."""

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.inner = attention

    def project_keys(self, keys: torch.Tensor):
        """The wrapped attention's keys (once per batch, in the encoder graph)."""
        return self.inner.project_keys(keys)

    def forward(self, query, keys, values, mask, group=1, cache=None):
        """query (N, T, Hq) of N = B x k hypotheses, memory of B sentences -> context
        (N, T, He), weights (N, T, S)."""
        N, T = query.shape[0], query.shape[1]
        ctx, w = self.inner(query.reshape(values.size(0), -1, query.size(-1)), keys, values,
                            mask, 1, cache)
        return ctx.reshape(N, T, -1), w.reshape(N, T, -1)


class _Step(nn.Module):
    def __init__(self, decoder: Decoder, state: list[str], memory: list[str],
                 carried: list[str] | None = None) -> None:
        super().__init__()
        self.decoder, self.state, self.memory = decoder, state, memory
        self.carried = carried or []
        # decode_step's exclusion of pad and bos as an added row of -inf and zeros: the same
        # log-probabilities, where its in-place index write does not trace to valid ONNX
        never = torch.zeros(decoder.generator.out_features)
        never[NEVER_OUTPUT] = float("-inf")
        self.register_buffer("never", never)

    def forward(self, prev: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """prev (N,) and the state, carried and memory arrays -> log-probs (N, V), the next
        state, and attention (N, S) when the model attends."""
        got = dict(zip(self.state + self.carried + self.memory, tensors, strict=True))
        hidden = (got["h"], got["c"]) if "c" in got else got["h"]
        st = DecoderState(hidden=hidden, feed=got.get("feed"), c=got.get("cvec"),
                          values=got.get("values"), keys=got.get("keys"),
                          mask=got.get("mask"), key_cache=got.get("cache"))
        logits, new, att = self.decoder(prev.unsqueeze(1), st)
        logp = torch.log_softmax(logits.squeeze(1).float() + self.never, -1)
        h, c = new.hidden if isinstance(new.hidden, tuple) else (new.hidden, None)
        out = {"h": h, "c": c, "feed": new.feed}
        extra = (att.squeeze(1),) if att is not None else ()
        return (logp, *(out[n] for n in self.state), *extra)


def decoder_graphs(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor,
                   src_axes: dict[int, str], folder: Path) -> dict:
    """Export a model with the searches' interface (`encode`, `init_state` and a `decoder`)
    as `encoder` (src, src_len -> the first state and the memory) and `step` graphs; ->
    the manifest's `graphs`, `state` and `memory` (each name with its batch axis)."""
    search_kernels(model)
    dec = model.decoder
    with torch.no_grad():
        first = _first_state(model.init_state(model.encode(src, src_len)), dec, src.size(0))
    state = [n for n in ("h", "c", "feed") if first[n] is not None]
    # every-step conditioning's c goes with each hypothesis (the RNN's input); attention's
    # memory stays one row per sentence, its hypotheses folded together (_GroupedAttention)
    carried = ["cvec"] if first["cvec"] is not None else []
    memory = [n for n in ("values", "keys", "cache", "mask") if first[n] is not None]
    axes: dict[str, dict[int, str]] = {"src": src_axes, "src_len": {0: BATCH}}
    for n in state + carried + memory:
        axes[n] = {AXIS[n]: BATCH, **({1: "src_len"} if n in PER_POSITION else {})}
    prev = torch.full((src.size(0),), 1, dtype=torch.long)
    outs = ["log_probs"] + [f"next_{n}" for n in state]
    step_axes = {**{n: axes[n] for n in state + carried}, "prev": {0: BATCH},
                 **{n: {0: SENTENCES, 1: "src_len"} for n in memory},
                 "log_probs": {0: BATCH}, **{f"next_{n}": {AXIS[n]: BATCH} for n in state}}
    if dec.attention is not None:
        outs.append("attention")
        step_axes["attention"] = {0: BATCH, 1: "src_len"}
        dec.attention = _GroupedAttention(dec.attention)
    step = export_graph(_Step(dec, state, memory, carried),
                        (prev, *(first[n] for n in state + carried + memory)),
                        folder / "step.onnx", ["prev", *state, *carried, *memory], outs,
                        step_axes)
    # the memory the step reads (the exporter drops inputs a graph never uses: every-step
    # conditioning's c under attention, keys once projected): only those are kept and fed
    import onnx

    used = {i.name for i in onnx.load(str(folder / "step.onnx")).graph.input}
    carried = [n for n in carried if n in used]
    memory = [n for n in memory if n in used]
    step["inputs"] = ["prev", *state, *carried, *memory]
    if dec.attention is not None:
        dec.attention = dec.attention.inner
    encoder = export_graph(_Encode(model, state + carried + memory), (src, src_len),
                           folder / "encoder.onnx", ["src", "src_len"],
                           state + carried + memory, axes)
    return {"graphs": {"encoder": encoder, "step": step},
            "state": {n: AXIS[n] for n in state}, "carried": {n: AXIS[n] for n in carried},
            "memory": {n: AXIS[n] for n in memory}, "memory_per_sentence": True}


def generator_graphs(model: nn.Module, features: int, folder: Path) -> dict:
    """A ConditionalGenerator's `encoder` (cond: label ids (B, 1), or feature vectors (B, F))
    and `step` graphs (`decoder_graphs`)."""
    cond = torch.randn(2, features) if features else torch.tensor([[0], [1]])
    return decoder_graphs(model, cond, torch.ones(2, dtype=torch.long), {0: BATCH}, folder)


def lm_graphs(model: nn.Module, folder: Path) -> dict:
    """A LanguageModel as one `step` graph (the previous token and the state ->
    log-probabilities and the next state). A prompt is read through the same graph a token at
    a time (`tandem.runtime.models.RuntimeLM`), so the export holds the weights once."""
    search_kernels(model)
    dec = model.decoder
    state = ["h"] + (["c"] if dec.lstm else [])
    B = 2
    zeros = torch.zeros(dec.layers, B, dec.hidden_size)
    hidden = [zeros] * len(state)
    axes = {n: {1: BATCH} for n in state}
    step = export_graph(_Step(dec, state, []), (torch.full((B,), 4), *hidden),
                        folder / "step.onnx", ["prev", *state],
                        ["log_probs", *(f"next_{n}" for n in state)],
                        {"prev": {0: BATCH}, "log_probs": {0: BATCH}, **axes,
                         **{f"next_{n}": {1: BATCH} for n in state}})
    return {"graphs": {"step": step}, "state": {n: 1 for n in state}, "memory": {}}


def seq2seq_graphs(model: Seq2Seq, frames: int, folder: Path) -> dict:
    """A Seq2Seq's `encoder` and `step` graphs (`decoder_graphs`) over ids (or frames)."""
    src, src_len = source_example(frames)
    return decoder_graphs(model, src, src_len, {0: BATCH, 1: "src_len"}, folder)


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        """src, src_len -> P(label) (B, labels)."""
        return torch.softmax(self.model(src, src_len).float(), -1)


def classifier_graphs(model: nn.Module, frames: int, folder: Path) -> dict:
    """A classifier as one graph `model`: src (B, S) ids (or (B, S, C) frames), src_len ->
    probs (B, labels), the softmax of its logits."""
    src, src_len = source_example(frames)
    axes = {"src": {0: BATCH, 1: "src_len"}, "src_len": {0: BATCH}, "probs": {0: BATCH}}
    return {"graphs": {"model": export_graph(_Probabilities(model), (src, src_len),
                                             folder / "model.onnx", ["src", "src_len"],
                                             ["probs"], axes)}}


def tagger_graphs(model: nn.Module, frames: int, folder: Path) -> dict:
    """A tagger as one graph `model`: words (B, S) ids and lengths, with its character view
    chars (B, S, W) and char_len (B, S) (or frames (B, S, C) and lengths) -> logits
    (B, S, tags)."""
    words, lengths = source_example(frames)
    axes = {"words": {0: BATCH, 1: "words"}, "lengths": {0: BATCH},
            "logits": {0: BATCH, 1: "words"}}
    if frames or model.chars is None:
        return {"graphs": {"model": export_graph(model, (words, lengths), folder / "model.onnx",
                                                 ["words", "lengths"], ["logits"], axes)}}
    chars = torch.randint(4, 6, (*words.shape, 3))
    char_len = torch.full(words.shape, 3)
    char_len[1, 2] = 1
    for i, n in enumerate(lengths.tolist()):
        chars[i, n:], char_len[i, n:] = 0, 0
    axes.update(chars={0: BATCH, 1: "words", 2: "chars"}, char_len={0: BATCH, 1: "words"})
    return {"graphs": {"model": export_graph(model, (words, lengths, chars, char_len),
                                             folder / "model.onnx",
                                             ["words", "lengths", "chars", "char_len"],
                                             ["logits"], axes)}}
