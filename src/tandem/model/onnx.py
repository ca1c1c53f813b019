"""The models as ONNX graphs, for `tandem export` and the lean runtime (`tandem.runtime`).

A seq2seq model becomes two graphs around the interface every search drives:
- `encoder`: source ids (or frames) and lengths -> the decoder's first state (`state`: h, an
  LSTM's c, input feeding's previous attentional vector) and what each step reads of the
  source (`memory`: every-step conditioning's c, attention's values, keys and mask);
- `step`: the previous token and the state and memory -> log-probabilities over the target
  vocabulary (pad and bos excluded, as `Seq2Seq.decode_step`), the next state, and the
  attention weights when the model attends.
The other structures' graphs are their forward pass (`forward_graph`).

Graphs are traced from the textbook kernels (a model built from its checkpoint, not one
`tandem.model.fast.prepare` changed) with PyTorch's TorchScript-based exporter: it exports
`pack_padded_sequence` as ONNX RNN nodes with per-row lengths, so padding never enters the
recurrence, as in training; the dynamo exporter cannot export packed sequences.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from tandem.model.decoder import DecoderState
from tandem.model.encoder import Encoder, packed_rnn
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


class _Encode(nn.Module):
    def __init__(self, model: Seq2Seq, state: list[str], memory: list[str]) -> None:
        super().__init__()
        self.model, self.state, self.memory = model, state, memory

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, ...]:
        st = self.model.init_state(self.model.encode(src, src_len))
        dec = self.model.decoder
        B = src_len.size(0)
        got = {}
        hidden = st.hidden
        if hidden is None:
            zeros = torch.zeros(dec.layers, B, dec.hidden_size)
            hidden = (zeros, zeros) if dec.lstm else zeros
        got["h"], got["c"] = (hidden if dec.lstm else (hidden, None))
        got["feed"] = torch.zeros(B, dec.out_size)
        got["cvec"], got["values"], got["keys"] = st.c, st.values, st.keys
        got["mask"] = st.mask
        return tuple(got[n] for n in self.state + self.memory)


class _Step(nn.Module):
    def __init__(self, model: Seq2Seq, state: list[str], memory: list[str]) -> None:
        super().__init__()
        self.model, self.state, self.memory = model, state, memory
        # decode_step's exclusion of pad and bos as an added row of -inf and zeros: the same
        # log-probabilities, where its in-place index write does not trace to valid ONNX
        never = torch.zeros(model.decoder.generator.out_features)
        never[NEVER_OUTPUT] = float("-inf")
        self.register_buffer("never", never)

    def forward(self, prev: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        got = dict(zip(self.state + self.memory, tensors, strict=True))
        hidden = (got["h"], got["c"]) if "c" in got else got["h"]
        st = DecoderState(hidden=hidden, feed=got.get("feed"), c=got.get("cvec"),
                          values=got.get("values"), keys=got.get("keys"),
                          mask=got.get("mask"))
        logits, new, att = self.model.decoder(prev.unsqueeze(1), st)
        logp = torch.log_softmax(logits.squeeze(1).float() + self.never, -1)
        att = None if att is None else att.squeeze(1)
        h, c = new.hidden if isinstance(new.hidden, tuple) else (new.hidden, None)
        out = {"h": h, "c": c, "feed": new.feed}
        extra = (att,) if att is not None else ()
        return (logp, *(out[n] for n in self.state), *extra)


def seq2seq_graphs(model: Seq2Seq, frames: int, folder: Path) -> dict:
    """Export a Seq2Seq's `encoder` and `step` graphs into `folder`; -> the manifest's
    `graphs`, `state` and `memory` (each name with its batch axis)."""
    dec = model.decoder
    state = ["h"] + (["c"] if dec.lstm else []) + (["feed"] if dec.input_feeding else [])
    memory = ((["cvec"] if dec.conditioning == "every_step" else [])
              + (["values", "keys", "mask"] if dec.attention is not None else []))
    axis = {"h": 1, "c": 1, "feed": 0, "cvec": 0, "values": 0, "keys": 0, "mask": 0}
    src, src_len = source_example(frames)
    enc_axes = {"src": {0: BATCH, 1: "src_len"}, "src_len": {0: BATCH}}
    for n in state + memory:
        enc_axes[n] = {axis[n]: BATCH, **({1: "src_len"} if n in ("values", "keys", "mask")
                                          else {})}
    encoder = export_graph(_Encode(model, state, memory), (src, src_len),
                           folder / "encoder.onnx", ["src", "src_len"], state + memory,
                           enc_axes)
    with torch.no_grad():
        first = _Encode(model, state, memory)(src, src_len)
    prev = torch.full((src.size(0),), 1, dtype=torch.long)
    step_axes = {"prev": {0: BATCH}, "log_probs": {0: BATCH}}
    for n in state + memory:
        step_axes[n] = enc_axes[n]
    outs = ["log_probs"] + [f"next_{n}" for n in state]
    for n in state:
        step_axes[f"next_{n}"] = {axis[n]: BATCH}
    if dec.attention is not None:
        outs.append("attention")
        step_axes["attention"] = {0: BATCH, 1: "src_len"}
    step = export_graph(_Step(model, state, memory), (prev, *first), folder / "step.onnx",
                        ["prev", *state, *memory], outs, step_axes)
    return {"graphs": {"encoder": encoder, "step": step},
            "state": {n: axis[n] for n in state}, "memory": {n: axis[n] for n in memory}}


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
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
