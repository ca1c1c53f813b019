"""Exported models at work with numpy and onnxruntime only: a seq2seq model's searches
(`RuntimeTranslator`), a classifier's labels and a tagger's tags, each answering as the
PyTorch path's loaded model does (same methods, same decoding options, same results)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import tandem.runtime.search as search
from tandem.config import Config, DecodeConfig, from_dict
from tandem.data.fields import Fields, StructFields
from tandem.data.order import length_batches
from tandem.data.vocab import PAD_ID
from tandem.decode.frontend import TextDecoder
from tandem.decode.scoring import Scorer
from tandem.errors import CheckpointError, ConfigError, DataError
from tandem.verbs import ClassifierVerbs, GeneratingVerbs, GeneratorVerbs, LMVerbs, TaggerVerbs


class Graph:
    """One ONNX graph in an onnxruntime session on the CPU: call it with its inputs by name,
    get its outputs by name."""

    def __init__(self, folder: Path, spec: dict[str, Any], arena: bool = False) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # one thread per call: a model's cores go to whole batches searched side by side
        # (RuntimeModel.each_batch), which keeps them busy through the numpy work between
        # graph calls too, where splitting each small operator across cores cannot
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # without the arena, memory a call frees goes back to malloc instead of staying in a
        # pool at the largest batch's size: as fast for a search's many small calls, and
        # what keeps `tandem g2p` small; a classifier's or tagger's one large call a batch
        # runs faster with it (`arena`; docs/export.md)
        opts.enable_cpu_mem_arena = arena
        opts.enable_mem_pattern = arena
        path = folder / spec["file"]
        try:
            self.session = ort.InferenceSession(str(path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a bad graph
            raise CheckpointError(f"{path}: onnxruntime cannot load it ({e})") from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def shape_of(self, name: str, batch: int) -> tuple[int, ...]:
        """The shape of input `name` with its symbolic batch axis set to `batch`."""
        spec = next(i for i in self.session.get_inputs() if i.name == name)
        return tuple(d if isinstance(d, int) else batch for d in spec.shape)

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on the inputs it has (the exporter drops inputs a graph never
        reads)."""
        got = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})
        return dict(zip(self.outputs, got, strict=True))


class RuntimeModel:
    """An export loaded for prediction: its manifest, config and graphs; what the command
    line and the server ask of every loaded model (`tandem.structures.base.LoadedModel`)."""

    structure = ""
    verbs: tuple[str, ...] = ()
    endpoint = ""
    page = "structures.html"
    reads_features = False
    continues = False
    unused_options: frozenset[str] = frozenset()
    arena = False
    """Whether its graphs run with onnxruntime's memory arena (`Graph`)."""

    def __init__(self, folder: Path, body: dict[str, Any], threads: int | None = None) -> None:
        self.folder = folder
        self.manifest = body
        self.config: Config = from_dict(body["config"])
        self.graphs = {name: Graph(folder, spec, self.arena)
                       for name, spec in body["graphs"].items()}
        self.threads = threads or usable_cpus()
        """How many batches of one call run at once, each on one core."""
        self._pool: ThreadPoolExecutor | None = None

    def spread(self, batches: list[list]) -> list[list]:
        """The batches, the largest halved until there are at least `threads` of them (or
        every batch has one item), so that a call of few batches still uses every core."""
        out = [list(b) for b in batches]
        while len(out) < self.threads:
            big = max(range(len(out)), key=lambda i: len(out[i]), default=None)
            if big is None or len(out[big]) < 2:
                break
            b = out.pop(big)
            out[big:big] = [b[: len(b) // 2], b[len(b) // 2:]]
        return out

    def each_batch(self, fn: Callable[[list], Sequence], batches: list[list],
                   parallel: bool = True) -> list[list]:
        """fn over batches of items (fn: a batch -> one result per item, a list or the rows of
        an array); each batch's item results as one list, in the batches' order. With
        `parallel`, up to `threads` batches run at once (onnxruntime and numpy release the
        GIL while they compute), fewer than `threads` batches split first (`spread`) so that
        every core has one; without it, or with one thread, they run one after the other as
        given (as is a call that is one item)."""
        if not parallel or self.threads < 2:
            return [list(fn(b)) for b in batches]
        # each part remembers the batch it came from, so its results go back there
        parts = self.spread([[(n, item) for item in b] for n, b in enumerate(batches)]) \
            if len(batches) < self.threads else [[(n, item) for item in b]
                                                for n, b in enumerate(batches)]
        if len(parts) < 2:
            return [list(fn(b)) for b in batches]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tandem-runtime")
        found = self._pool.map(lambda part: fn([item for _, item in part]), parts)
        joined: list[list] = [[] for _ in batches]
        for part, results in zip(parts, found, strict=True):
            if part:
                joined[part[0][0]].extend(results)
        return joined

    @property
    def reads_frames(self) -> bool:
        """Whether inputs are series of frames (data.src_kind: frames)."""
        return self.config.data.src_kind == "frames"

    def info(self) -> dict[str, Any]:
        """The structure, precision, files and the export's source checkpoint."""
        return {"structure": self.structure, "verbs": list(self.verbs), "backend": "onnxruntime",
                "precision": self.manifest.get("precision", "float32"),
                "export": str(self.folder), "files": sorted(self.manifest["files"]),
                "source": self.manifest.get("source", {}), "src_kind": self.config.data.src_kind}

    def _batch_tokens(self) -> int:
        return max(self.config.train.batch_tokens, 1000)

    @property
    def decode_defaults(self) -> DecodeConfig:
        """The decoding options requests start from (the model's decode section)."""
        return self.config.decode

    @property
    def train_state(self) -> dict[str, Any]:
        """The source checkpoint's training summary, as the manifest keeps it."""
        return dict(self.manifest.get("source", {}))

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A seq2seq export scores as its checkpoint does (`TextDecoder.evaluate`); the other
        structures' scores (loss, perplexity) are computed on checkpoints."""
        raise ConfigError(f"{self.folder}: a {self.structure} export predicts; evaluate its "
                          "checkpoint ("
                          f"{self.manifest.get('source', {}).get('checkpoint', 'the .pt')}), "
                          "or score the predictions yourself")


def pad(inputs: list) -> tuple[np.ndarray, np.ndarray]:
    """Id lists (or (T, C) frames) -> a padded (B, S) int64 (or (B, S, C) float32) array and
    the lengths (B,) int64."""
    lengths = np.array([len(x) for x in inputs], dtype=np.int64)
    if isinstance(inputs[0], np.ndarray) and inputs[0].ndim == 2:
        out = np.zeros((len(inputs), int(lengths.max()), inputs[0].shape[1]), np.float32)
    else:
        out = np.full((len(inputs), int(lengths.max())), PAD_ID, dtype=np.int64)
    for i, x in enumerate(inputs):
        out[i, : len(x)] = x
    return out, lengths


class State:
    """A search's state in the runtime: named arrays, each with its batch axis. `reordered`:
    those that follow the hypotheses (the decoder's recurrent state, and what each
    hypothesis carries); `per_sentence`: the encoder's memory kept one row per sentence,
    shared by its `group` hypotheses (otherwise every array has a row per hypothesis)."""

    def __init__(self, arrays: dict[str, np.ndarray], axes: dict[str, int], reordered: set[str],
                 group: int = 1, per_sentence: frozenset[str] = frozenset()) -> None:
        self.arrays, self.axes, self.reordered, self.group = arrays, axes, reordered, group
        self.per_sentence = per_sentence

    def _with(self, arrays: dict[str, np.ndarray], group: int) -> State:
        return State(arrays, self.axes, self.reordered, group, self.per_sentence)

    def _map(self, fn, names) -> dict[str, np.ndarray]:
        return {n: (fn(a, self.axes[n]) if n in names else a) for n, a in self.arrays.items()}

    def expand(self, k: int) -> State:
        """k rows per sentence (beam search): rows b*k .. b*k+k-1 are sentence b."""
        rows = [n for n in self.arrays if n not in self.per_sentence]
        return self._with(self._map(lambda a, ax: np.repeat(a, k, axis=ax), rows), k)

    def reorder(self, idx: np.ndarray) -> State:
        """Reorder the rows of the arrays that follow the hypotheses; idx keeps rows within
        their sentence, where the encoder's arrays are equal."""
        return self._with(self._map(lambda a, ax: np.take(a, idx, axis=ax), self.reordered),
                          self.group)

    def keep(self, sentences: np.ndarray) -> State:
        """Keep only these sentences with all their rows."""
        rows = sentences
        if self.group > 1:
            rows = (sentences[:, None] * self.group + np.arange(self.group)).reshape(-1)
        out = {n: np.take(a, sentences if n in self.per_sentence else rows, axis=self.axes[n])
               for n, a in self.arrays.items()}
        return self._with(out, self.group)


class Steps:
    """The searches' interface over an `encoder` and a `step` graph (`tandem.model.onnx`):
    `encode` gives the first State, `decode_step` one step; the manifest's `state` arrays
    follow the beams, its `memory` arrays stay with their sentence."""

    graphs: dict[str, Graph]

    def _steps(self, body: dict[str, Any]) -> None:
        self.axes = {**body.get("state", {}), **body.get("carried", {}),
                     **body.get("memory", {})}
        self.updated = set(body.get("state", {}))
        self.reordered = self.updated | set(body.get("carried", {}))
        self.per_sentence = frozenset(body.get("memory", {}) if body.get("memory_per_sentence")
                                      else ())

    def encode(self, src: np.ndarray, src_len: np.ndarray) -> State:
        """The encoder graph: the decoder's first state and the encoder's memory."""
        out = self.graphs["encoder"](src=src, src_len=src_len)
        return State(out, self.axes, self.reordered, 1, self.per_sentence)

    def decode_step(self, prev: np.ndarray, state: State
                    ) -> tuple[np.ndarray, State, np.ndarray | None]:
        """The step graph: log-probabilities (N, V), the next state, attention or None."""
        out = self.graphs["step"](prev=prev, **state.arrays)
        arrays = dict(state.arrays)
        for n in self.updated:
            arrays[n] = out[f"next_{n}"]
        return out["log_probs"], state._with(arrays, state.group), out.get("attention")


class RuntimeTranslator(Steps, TextDecoder, RuntimeModel):
    """An exported seq2seq model: `translate`, `translate_full`, `stream` and `evaluate`,
    with the same options and results as `tandem.Translator`."""

    def __init__(self, folder: Path, body: dict[str, Any], threads: int | None = None) -> None:
        RuntimeModel.__init__(self, folder, body, threads)
        self.fields = Fields.from_state(body["fields"])
        self.decode_cfg: DecodeConfig = self.config.decode
        self.rescorers: list = []
        self._steps(body)

    def _search_batch(self, inputs: list, opts: DecodeConfig, scorer: Scorer, attention: bool,
                      generator: Any) -> list[list[search.Hyp]]:
        src, src_len = pad(inputs)
        return search.run(self, src, src_len, opts, scorer, attention=attention, rng=generator)

    def _search_batches(self, batches: list[list], opts: DecodeConfig, scorer: Scorer,
                        attention: bool, generator: Any) -> Iterable[list[list[search.Hyp]]]:
        """Batches searched side by side (`each_batch`); sampling searches them in order as
        they are, so that a seeded generator's draws fall in the same batches every time."""
        return self.each_batch(
            lambda b: self._search_batch(b, opts, scorer, attention, generator), batches,
            parallel=not opts.sample)

    def translate_full(self, inputs, *, opts=None, attention=False, generator=None,
                       first_number=1, seed: int | None = None, **options):
        """As `tandem.Translator.translate_full`; sampling draws from `generator` (a numpy
        Generator) or a fresh one seeded with `seed`."""
        if generator is None and seed is not None:
            generator = np.random.default_rng(seed)
        return super().translate_full(inputs, opts=opts, attention=attention,
                                      generator=generator, first_number=first_number,
                                      **options)

    def translate(self, inputs, *, opts=None, generator=None, seed: int | None = None,
                  **options):
        """As `tandem.Translator.translate` (`seed`: as in `translate_full`)."""
        if generator is None and seed is not None:
            generator = np.random.default_rng(seed)
        return super().translate(inputs, opts=opts, generator=generator, **options)

    def info(self) -> dict[str, Any]:
        """The export's info, the vocabularies and decoding defaults."""
        from dataclasses import asdict

        return {**super().info(), "src_vocab": len(self.fields.src_vocab),
                "tgt_vocab": len(self.fields.tgt_vocab),
                "decode_defaults": asdict(self.decode_cfg),
                "max_src_len": self.config.data.max_src_len,
                "frame_width": self.fields.frame_width}


class RuntimeFieldsModel(RuntimeModel):
    """An exported classifier or tagger: its `StructFields`. Its one graph runs once a batch
    on the whole input, with the arena."""

    arena = True

    def __init__(self, folder: Path, body: dict[str, Any], threads: int | None = None) -> None:
        super().__init__(folder, body, threads)
        self.fields = StructFields.from_state(body["fields"])

    @property
    def labels(self) -> list[str]:
        """The labels (classes or tags) in id order."""
        return list(self.fields.labels)


class RuntimeClassifier(ClassifierVerbs, RuntimeFieldsModel):
    """An exported classifier: `predict` / `probabilities` as `ClassifierPredictor`."""


    def probabilities(self, inputs: list) -> np.ndarray:
        """P(label | input) (N, labels); an input is a text, or a (T, C) series of frames."""
        ids = self.encode_inputs(inputs)
        out = np.zeros((len(ids), len(self.fields.labels)), np.float32)
        batches = length_batches([len(x) for x in ids], self._batch_tokens(), None)

        def run(idx: list[int]) -> np.ndarray:
            src, src_len = pad([ids[i] for i in idx])
            return self.graphs["model"](src=src, src_len=src_len)["probs"]

        for idx, probs in zip(batches, self.each_batch(run, batches), strict=True):
            out[idx] = probs
        return out

    def predict(self, texts: list, topk: int = 1) -> list[list[tuple[str, float]]]:
        """The `topk` most likely labels of each input with their probabilities."""
        if topk < 1:
            raise DataError(f"topk = {topk}: give at least 1")
        probs = self.probabilities(texts)
        k = min(topk, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.fields.labels[j], float(p[j])) for j in row]
                for p, row in zip(probs, order, strict=True)]


class RuntimeTagger(TaggerVerbs, RuntimeFieldsModel):
    """An exported tagger: `tag` (words) or `tag_frames` (series), as `TaggerPredictor`."""


    def _logits(self, examples: list) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.empty(0)] * len(examples)
        batches = length_batches([len(e[0]) for e in examples], self._batch_tokens(), None)
        for idx, logits in zip(batches, self.each_batch(lambda idx: self._batch_logits(
                examples, idx), batches), strict=True):
            for i, row in zip(idx, logits, strict=True):
                out[i] = row[: len(examples[i][0])]
        return out

    def _batch_logits(self, examples: list, idx: list[int]) -> np.ndarray:
        """The model's logits (B, T, tags) for the examples idx."""
        words, lengths = pad([examples[i][0] for i in idx])
        feeds = {"words": words, "lengths": lengths}
        if not self.fields.num_features:
            longest = max(len(c) for i in idx for c in examples[i][1])
            chars = np.full((len(idx), words.shape[1], longest), PAD_ID, np.int64)
            char_len = np.zeros((len(idx), words.shape[1]), np.int64)
            for row, i in enumerate(idx):
                for j, c in enumerate(examples[i][1]):
                    chars[row, j, : len(c)] = c
                    char_len[row, j] = len(c)
            feeds.update(chars=chars, char_len=char_len)
        return self.graphs["model"](**feeds)["logits"]

    def tag(self, sentences: list) -> list[list[tuple[str, str]]]:
        """(word, tag) pairs of each sentence (a list of words, or a string split on
        whitespace)."""
        words = self.sentence_words(sentences)
        examples = [self.fields.encode_words(ws) for ws in words]
        return [[(w, self.fields.labels[int(t)]) for w, t in zip(ws, lg.argmax(-1), strict=True)]
                for ws, lg in zip(words, self._logits(examples), strict=True)]

    def tag_frames(self, series: list) -> list[list[str]]:
        """A tag for every frame of each series (a (T, C) array)."""
        examples = [(self.fields.frames(x), []) for x in series]
        return [[self.fields.labels[int(t)] for t in lg.argmax(-1)]
                for lg in self._logits(examples)]

class RuntimeGenerating(GeneratingVerbs, Steps, RuntimeFieldsModel):
    """An exported model that writes text: the numpy searches over its graphs, one output per
    condition row (`tandem.verbs.GeneratingVerbs.write` drives it)."""

    arena = False  # a search's many small calls, as a seq2seq model's

    def __init__(self, folder: Path, body: dict[str, Any], threads: int | None = None) -> None:
        super().__init__(folder, body, threads)
        self._steps(body)

    def _search(self, cond: np.ndarray, cond_len: np.ndarray, opts: DecodeConfig,
                seed: int | None) -> list[search.Hyp]:
        rng = np.random.default_rng(seed) if seed is not None else None
        # sampling: one search of every row, so that a seed's draws do not depend on threads
        found = self.each_batch(lambda r: search.run(self, cond[r], cond_len[r], opts, rng=rng),
                                [list(range(len(cond)))], parallel=not opts.sample)
        return [h[0] for h in found[0]]

    def info(self) -> dict[str, Any]:
        """The export's info and the decoding options requests start from."""
        from dataclasses import asdict

        return {**super().info(), "labels": self.labels,
                "decode_defaults": asdict(self.generation_defaults)}


class RuntimeGenerator(GeneratorVerbs, RuntimeGenerating):
    """An exported conditional generator: `generate(labels=... | features=...)`."""


class RuntimeLM(LMVerbs, RuntimeGenerating):
    """An exported language model: `generate(prompts)`. A prompt is read through the step
    graph up to its last token, which the first step of the search reads instead of its
    bos, as `LanguageModel.encode` does. (Exports made before 2026-12-08 also hold a
    `prefix` graph, which is loaded and not needed.)"""

    def encode(self, src: np.ndarray, src_len: np.ndarray) -> State:
        """Each prompt read but its last token, which waits as `pending` (PAD_ID: none)."""
        B = len(src)
        read = np.maximum(src_len - 1, 0)
        pending = np.where(src_len > 0, src[np.arange(B), read], PAD_ID).astype(np.int64)
        step = self.graphs["step"]
        arrays = {n: np.zeros(step.shape_of(n, B), np.float32) for n in self.reordered}
        for t in range(int(read.max(initial=0))):
            rows = np.flatnonzero(read > t)  # the prompts still being read
            out = step(prev=src[rows, t], **{k: a[:, rows] for k, a in arrays.items()})
            for k in arrays:
                arrays[k][:, rows] = out[f"next_{k}"]
        arrays["pending"] = pending
        axes = {**self.axes, "pending": 0}
        return State(arrays, axes, self.reordered | {"pending"}, 1, self.per_sentence)

    def decode_step(self, prev: np.ndarray, state: State
                    ) -> tuple[np.ndarray, State, np.ndarray | None]:
        """A step; the pending prompt token replaces `prev` once."""
        if "pending" in state.arrays:
            pending = state.arrays["pending"]
            prev = np.where(pending != PAD_ID, pending, prev)
            arrays = {k: v for k, v in state.arrays.items() if k != "pending"}
            state = State(arrays, self.axes, self.reordered, state.group, self.per_sentence)
        return super().decode_step(prev, state)


MODELS = {"seq2seq": RuntimeTranslator, "classify": RuntimeClassifier, "tag": RuntimeTagger,
          "generate": RuntimeGenerator, "lm": RuntimeLM}


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def share_malloc_arenas() -> None:
    """One glibc malloc arena for the whole process (as MALLOC_ARENA_MAX=1 would): the
    runtime's batch threads then reuse each other's freed buffers instead of each keeping a
    heap at its own peak. For a process that runs exports (the CLI calls it before any
    thread starts); a no-op without glibc or when MALLOC_ARENA_MAX is set."""
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def threads_from_env() -> int | None:
    """TANDEM_THREADS, when set: how many batches the runtime runs at once."""
    v = os.environ.get("TANDEM_THREADS")
    return int(v) if v and v.isdigit() else None
