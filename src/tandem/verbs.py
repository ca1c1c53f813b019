"""The torch-free halves of the loaded models' verbs, shared by the PyTorch loaded models
(`tandem.structures`) and the lean runtime's (`tandem.runtime`): what the command line, files
and the server (/v1/predict, /v1/generate) ask of a classifier, a tagger, a generator and a
language model, over each backend's `predict` / `tag` / `tag_frames` / `_search`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from tandem.config import DecodeConfig, decode_options
from tandem.data.frames import read_series, segments
from tandem.errors import ConfigError, DataError


class ClassifierVerbs:
    """`predict_lines`, `predict_file`, `check_line` and the server's hooks over a subclass's
    `predict` and `fields`."""

    item = "text to classify"
    structure = "classify"
    verbs = ("predict",)
    endpoint = "/v1/predict"

    def predict(self, texts: list, topk: int = 1) -> list[list[tuple[str, float]]]:
        raise NotImplementedError

    def encode_inputs(self, inputs: list) -> list:
        """What the model reads of each input: token ids of a text, or a (T, C) series of
        frames normalised; a text empty after tokenization is a DataError naming it."""
        if self.fields.num_features:
            ids = [self.fields.frames(x) for x in inputs]
        else:
            ids = [self.fields.encode_text(t) for t in inputs]
        for i, x in enumerate(ids):
            if not len(x):
                raise DataError(f"input {i + 1}: empty after tokenization; nothing to classify")
        return ids

    def predict_file(self, path: str, topk: int = 1) -> list[dict[str, Any]]:
        """The top-k labels of every series of a .ts, .npz or .npy file (labels in it, if
        any, are not used), one record each, its input the series' place in the file."""
        series = read_series(path, labelled=False)
        tops = self.predict([x for x, _, _ in series], topk)
        return [{"input": where, "labels": [{"label": lab, "prob": p} for lab, p in top]}
                for (_, _, where), top in zip(series, tops, strict=True)]

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """`predict` for the command line: one record per line, {"input", "labels": [{"label",
        "prob"}]}; a line empty after tokenization is refused naming it."""
        return [{"input": x, "labels": [{"label": lab, "prob": p} for lab, p in top]}
                for x, top in zip(lines, self.predict(lines, topk), strict=True)]

    def check_line(self, line: str) -> str | None:
        """Why `line` cannot be classified (nothing left after tokenization), or None."""
        if self.fields.encode_text(line):
            return None
        return (f"empty after tokenization (the model's {self.fields.tok.kind} tokenizer "
                "keeps none of its characters)")

    def request_model(self, limits: Any) -> type:
        """{"inputs": texts to classify (or series of frames: each a list of at most
        max_chars frames of num_features numbers), "topk": 1 .. the number of labels}."""
        from tandem.requests import frame_inputs, request, text_inputs, whole_int

        if self.reads_frames:
            inputs = frame_inputs(limits, self.fields.num_features, "series to classify")
        else:
            inputs = text_inputs(limits, "texts to classify", 1)
        return request("PredictRequest", inputs=inputs,
                       topk=(whole_int(ge=1, le=len(self.labels)),
                             _field(1, "the most likely labels to return")))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each text is an item; the batch key is topk. A text empty after tokenization is
        refused here, so it never fails a batch of other requests."""
        if self.reads_frames:
            return [np.asarray(x, np.float32) for x in req.inputs], req.topk
        for i, text in enumerate(req.inputs):
            if self.check_line(text) is not None:
                raise DataError(f"input {i + 1}: empty after tokenization; nothing to classify")
        return list(req.inputs), req.topk

    def run(self, items: list[str], key: Any) -> list[Any]:
        """The top-`key` labels of each text."""
        return self.predict(items, key)

    def answer(self, req: Any, key: Any, outputs: list[Any], ms: float) -> dict[str, Any]:
        """{"results": [{"input", "labels": [{"label", "prob"}]}], "ms"}."""
        return {"results": [{"input": f"{len(x)} frames" if self.reads_frames else x,
                             "labels": [{"label": lab, "prob": round(p, 6)} for lab, p in top]}
                            for x, top in zip(req.inputs, outputs, strict=True)],
                "ms": ms}


class TaggerVerbs:
    """`predict_lines`, `predict_file`, `check_line` and the server's hooks over a subclass's
    `tag` and `tag_frames`."""

    item = "sentence to tag"
    structure = "tag"
    verbs = ("predict",)
    endpoint = "/v1/predict"

    def tag(self, sentences: list) -> list[list[tuple[str, str]]]:
        raise NotImplementedError

    def sentence_words(self, sentences: list) -> list[list[str]]:
        """The words of each sentence (a list of words, or a string split on whitespace); a
        sentence without words, or words given to a tagger over frames, is a DataError."""
        if self.reads_frames:
            raise DataError("this tagger reads series of frames: call tag_frames(series)")
        words = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        for i, ws in enumerate(words):
            if not ws:
                raise DataError(f"input {i + 1}: no words to tag")
        return words

    def tag_frames(self, series: list) -> list[list[str]]:
        raise NotImplementedError

    def predict_file(self, path: str, topk: int = 1) -> list[dict[str, Any]]:
        """The tag of every frame of every series of a .ts, .npz or .npy file (tags in it,
        if any, are not used), one record each: its place in the file, the tags and the
        segments (runs of one tag: first frame, end, tag)."""
        series = read_series(path, labelled=False)
        return [frame_record(where, tags) for (_, _, where), tags
                in zip(series, self.tag_frames([x for x, _, _ in series]), strict=True)]

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """`tag` for the command line: one record per line, {"input", "words", "tags"}."""
        return [{"input": x, "words": [w for w, _ in pairs], "tags": [t for _, t in pairs]}
                for x, pairs in zip(lines, self.tag(lines), strict=True)]

    def check_line(self, line: str) -> str | None:
        """Every non-blank line has words to tag."""
        return None

    def request_model(self, limits: Any) -> type:
        """{"inputs": sentences to tag, split on whitespace (or series of frames)}."""
        from tandem.requests import frame_inputs, request, text_inputs

        if self.reads_frames:
            return request("PredictRequest", inputs=frame_inputs(
                limits, self.fields.num_features, "series to tag frame by frame"))
        return request("PredictRequest",
                       inputs=text_inputs(limits, "sentences to tag (split on whitespace)", 1))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each sentence is an item; every request batches with every other. A sentence of
        no words is refused here, so it never fails a batch of other requests."""
        if self.reads_frames:
            return [np.asarray(x, np.float32) for x in req.inputs], None
        for i, text in enumerate(req.inputs):
            if not text.split():
                raise DataError(f"input {i + 1}: no words to tag")
        return list(req.inputs), None

    def run(self, items: list[str], key: Any) -> list[Any]:
        """The (word, tag) pairs of each sentence (the tags of each series' frames)."""
        return self.tag_frames(items) if self.reads_frames else self.tag(items)

    def answer(self, req: Any, key: Any, outputs: list[Any], ms: float) -> dict[str, Any]:
        """{"results": [{"input", "words", "tags"}], "ms"} (series of frames: {"input",
        "tags", "segments"})."""
        if self.reads_frames:
            return {"results": [frame_record(f"{len(x)} frames", tags)
                                for x, tags in zip(req.inputs, outputs, strict=True)], "ms": ms}
        return {"results": [{"input": x, "words": [w for w, _ in pairs],
                             "tags": [t for _, t in pairs]}
                            for x, pairs in zip(req.inputs, outputs, strict=True)], "ms": ms}


def frame_record(where: str, tags: list[str]) -> dict[str, Any]:
    """A tagged series: {"input": where, "tags", "segments": [[first, end, tag], ...]}."""
    return {"input": where, "tags": tags, "segments": [list(seg) for seg in segments(tags)]}


def _field(default: Any, doc: str) -> Any:
    from pydantic import Field

    return Field(default, description=doc)


GENERATE_MAX_LEN = 200
"""Tokens generated when the caller gives no max_len (a language model never ends by itself;
a generator ends at its end-of-sequence token first)."""
UNUSED_OPTIONS = frozenset({"nbest", "max_len_a", "max_len_b", "coverage_penalty", "batch_size",
                            "bf16", "on_long_input"})
"""Decoding options generation never reads: one output per search (n asks for several), the
length limit is max_len, there is no attention to cover, and every input is searched in one
batch, in float32, with no input length limit (`tandem generate` has no flag for them and
`tandem serve` refuses them for these models)."""

NEWLINE = "\n"
"""A language model's token for a line break (its text keeps them)."""


class GeneratingVerbs:
    """A model that writes text from a condition (`conditions(items)`: the model's inputs for
    a list of prompts or labels, as arrays), over a backend's `_search`: the decoding options
    of generation, `write`, and the server's /v1/generate."""

    verbs = ("generate",)
    endpoint = "/v1/generate"
    inputs_doc = ""
    min_chars = 1
    unused_options = UNUSED_OPTIONS

    def options(self, max_len: int | None = None, **overrides: Any) -> DecodeConfig:
        """The decoding options for generation: the model's decode section, sampling on
        unless `sample=False` or a beam is asked, the output limit `max_len` tokens (the
        search's max_len_a = 0, max_len_b = max_len), then any DecodeConfig overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        given.setdefault("sample", given.get("beam", 1) == 1)
        limit = max_len if max_len is not None else GENERATE_MAX_LEN
        if limit < 1:
            raise DataError(f"max_len = {limit}: give at least 1 token")
        return decode_options(self.config.decode, max_len_a=0.0, max_len_b=int(limit),
                              **{"nbest": 1, "beam": 1, **given})

    def _search(self, cond: np.ndarray, cond_len: np.ndarray, opts: DecodeConfig,
                seed: int | None) -> list[Any]:
        """The backend's search: one Hyp per condition row."""
        raise NotImplementedError

    def conditions(self, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(cond, cond_len): what the model writes from for each prompt or label."""
        raise NotImplementedError

    def check_inputs(self, items: list[str]) -> None:
        """Refuse (DataError) an input `conditions` cannot take; any prompt is text."""

    def write(self, items: list[str], opts: DecodeConfig, seed: int | None) -> list[str]:
        """One text written from each prompt or label (repeat an item for several)."""
        cond, lens = self.conditions(items)
        return [self.fields.decode(h.tokens) for h in self._search(cond, lens, opts, seed)]

    # --- serving ------------------------------------------------------------------------
    @property
    def decode_defaults(self) -> DecodeConfig:
        """The decoding options requests start from: `generation_defaults`."""
        return self.generation_defaults

    @property
    def generation_defaults(self) -> DecodeConfig:
        """What a request starts from: the model's decode section, drawing one output, with
        what `set_defaults` changed."""
        base = dataclasses.replace(self.config.decode, beam=1, nbest=1, sample=True)
        return decode_options(base, **getattr(self, "_default_overrides", {}))

    def set_defaults(self, **overrides: Any) -> GeneratingVerbs:
        """Change the decoding options requests start from (`tandem serve`'s decoding flags;
        None keeps a value); checked as `options` does."""
        given = {k: v for k, v in overrides.items() if v is not None}
        decode_options(self.config.decode, **given)  # refuse bad values now, naming them
        self._default_overrides = given
        return self

    def request_model(self, limits: Any) -> type:
        """{"inputs", "n", "max_len", "seed"} and the decoding fields of DecodeConfig that
        generation reads, their defaults `generation_defaults` with the beam cut to the
        server's max_beam."""
        from pydantic import Field

        from tandem.requests import (
            decode_request_fields,
            request,
            server_defaults,
            text_inputs,
            whole_int,
        )

        fields = decode_request_fields(server_defaults(self.generation_defaults, limits),
                                       limits, UNUSED_OPTIONS)
        return request(
            "GenerateRequest", inputs=text_inputs(limits, self.inputs_doc, self.min_chars),
            n=(whole_int(ge=1, le=limits.max_inputs), Field(1, description="outputs per input")),
            max_len=(whole_int(ge=1, le=limits.max_new_tokens),
                     Field(GENERATE_MAX_LEN, description="tokens to write at most")),
            seed=(whole_int(ge=-2**63, lt=2**64) | None,
                  Field(None, description="seed of the sampling (repeatable outputs)")),
            **fields)

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each input n times; the key is the options, and a request with a seed batches
        alone (its draws must not depend on other requests)."""
        from tandem.requests import LimitError, server_defaults

        total = len(req.inputs) * req.n
        if total > limits.max_inputs:
            raise LimitError(413, "max_inputs", f"{len(req.inputs)} inputs x n {req.n} = "
                             f"{total} outputs in one request; the limit is "
                             f"{limits.max_inputs}", limits.max_inputs, total)
        base = server_defaults(self.generation_defaults, limits)
        asked = {k: v for k, v in req.model_dump(exclude={"inputs", "n", "max_len", "seed"})
                 .items() if v is not None}  # null: the server's default
        beam = asked.get("beam", base.beam)
        asked["sample"] = asked.get("sample", base.sample) and beam == 1
        try:
            opts = decode_options(base, max_len_a=0.0, max_len_b=req.max_len, nbest=1, **asked)
        except ConfigError as e:  # the schema allowed it: a disagreement, said as such
            raise LimitError(422, "options", f"{e} (the request schema allowed it; please "
                             "report this)") from None
        self.check_inputs(list(req.inputs))  # a bad input: this request's error, not its batch's
        alone = object() if req.seed is not None else None
        return [x for x in req.inputs for _ in range(req.n)], (opts, req.seed, alone)

    def run(self, items: list[str], key: Any) -> list[str]:
        """The texts written from the items."""
        opts, seed, _ = key
        return self.write(items, opts, seed)

    def answer(self, req: Any, key: Any, outputs: list[str], ms: float) -> dict[str, Any]:
        """{"outputs": every text, "results": [{"input", "outputs": its n texts}], "ms"}."""
        return {"outputs": outputs,
                "results": [{"input": x, "outputs": outputs[i * req.n:(i + 1) * req.n]}
                            for i, x in enumerate(req.inputs)], "ms": ms}


class GeneratorVerbs(GeneratingVerbs):
    """one-to-many: a sequence written from one input (a label, or a feature vector)."""

    structure = "generate"
    continues = False
    reads_features = True

    def cli_inputs(self, prompts: list[str] | None, labels: list[str] | None,
                   features: str | None) -> tuple[Any, list[str]]:
        """`tandem generate`'s --label (default: every label) or the rows of --features (a
        .npy file), as (items, what is shown: the label or "row i"); --prompt is refused."""
        f = self.fields
        if prompts:
            raise ConfigError("tandem generate: --prompt is for a language model; a "
                              "conditional generator writes from --label (or --features)")
        if labels and f.num_features:
            raise ConfigError(f"--label: this generator writes from feature vectors of "
                              f"{f.num_features} numbers, not from a label; give --features "
                              "(a .npy matrix, one row per output)")
        if features is not None:
            rows = feature_rows(features, self)
            return ("features", rows), [f"row {i}" for i in range(len(rows))]
        labels = labels or (self.labels if not f.num_features else None)
        return ("labels", labels), list(labels or [])

    def generate_from(self, items: Any, n: int = 1, max_len: int | None = None,
                      seed: int | None = None, **options: Any) -> list[str]:
        """`generate` over the items `cli_inputs` gave."""
        kind, value = items
        if kind == "features":
            return self.generate(None, value, n, max_len, seed, **options)
        return self.generate(value, None, n, max_len, seed, **options)

    def generate(self, labels: list[str] | str | None = None,
                 features: np.ndarray | None = None, n: int = 1, max_len: int | None = None,
                 seed: int | None = None, **options: Any) -> list[str]:
        """`n` outputs for each label (or each row of `features`, an (N, F) matrix for a
        model conditioned on feature vectors), in order. Options: DecodeConfig fields
        (temperature, top_k, beam, sample...); sampling by default, `seed` repeatable."""
        if n < 1:
            raise DataError(f"n = {n}: give at least 1")
        f = self.fields
        if f.num_features:
            if features is None or labels is not None:
                raise DataError(f"this generator is conditioned on feature vectors of size "
                                f"{f.num_features}: give features (an (N, {f.num_features}) "
                                "matrix), not labels")
            arr = np.asarray(features, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] != f.num_features:
                raise DataError(f"features of shape {tuple(arr.shape)}: the model reads rows "
                                f"of {f.num_features} numbers, an (N, {f.num_features}) matrix")
            cond = np.repeat(arr, n, axis=0)
        else:
            if features is not None:
                raise DataError("this generator is conditioned on a label: give labels, not "
                                f"features (its labels: {', '.join(f.labels[:20])})")
            if labels is None:
                raise DataError(f"give the labels to write from: {', '.join(f.labels[:20])}"
                                f"{' ...' if len(f.labels) > 20 else ''}")
            if isinstance(labels, str):
                labels = [labels]
            cond = np.array([[f.label_id(lab)] for lab in labels for _ in range(n)],
                            dtype=np.int64)
        opts = self.options(max_len, **options)
        hyps = self._search(cond, np.ones(len(cond), dtype=np.int64), opts, seed)
        return [f.decode(h.tokens) for h in hyps]

    @property
    def inputs_doc(self) -> str:
        """What a request's inputs are: the labels it knows."""
        labels = self.labels
        return (f"labels to write from: {', '.join(labels[:20])}"
                f"{' ...' if len(labels) > 20 else ''}")

    def check_inputs(self, items: list[str]) -> None:
        """Every item a label the model knows; a generator conditioned on feature vectors
        takes none (its rows come through `generate(features=...)`)."""
        f = self.fields
        if f.num_features:
            raise DataError(f"this generator is conditioned on feature vectors of size "
                            f"{f.num_features}, not on labels: give an (N, {f.num_features}) "
                            "matrix to generate(features=...) or tandem generate --features")
        for lab in items:
            f.label_id(lab)

    def conditions(self, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The labels' ids as (N, 1), and ones (`check_inputs` refuses what it cannot take)."""
        self.check_inputs(items)
        cond = np.array([[self.fields.label_id(lab)] for lab in items], dtype=np.int64)
        return cond, np.ones(len(cond), dtype=np.int64)


class LMVerbs(GeneratingVerbs):
    """A language model's verbs: text continued from a prompt."""

    structure = "lm"
    inputs_doc = "prompts to continue ('' = from a line break)"
    min_chars = 0
    continues = True

    def cli_inputs(self, prompts: list[str] | None, labels: list[str] | None,
                   features: str | None) -> tuple[list[str], list[str]]:
        """`tandem generate`'s --prompt (default: a line break) as (items, what is shown);
        --label and --features are refused."""
        if labels or features:
            raise ConfigError("tandem generate: --label and --features are for a conditional "
                              "generator; a language model continues --prompt")
        prompts = prompts or [""]
        return prompts, prompts

    def generate_from(self, items: Any, n: int = 1, max_len: int | None = None,
                      seed: int | None = None, **options: Any) -> list[str]:
        """`generate` over the items `cli_inputs` gave."""
        return self.generate(items, n, max_len, seed, **options)

    def _prompt_ids(self, prompt: str) -> list[int]:
        """A prompt's ids; the empty prompt is a line break, the context the training
        stream gives at the start of every line (the model never saw bos)."""
        ids = self.fields.encode_text(prompt) if prompt else []
        return ids or self.fields.vocab.encode([NEWLINE])

    def generate(self, prompts: list[str] | str = "", n: int = 1, max_len: int | None = None,
                 seed: int | None = None, **options: Any) -> list[str]:
        """The text that follows each prompt (`n` continuations of each, in order; the
        prompt itself not repeated). Options: DecodeConfig fields (temperature, top_k,
        beam, sample...). Sampling by default; `seed` makes it repeatable."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if n < 1:
            raise DataError(f"n = {n}: give at least 1")
        opts = self.options(max_len, **options)
        return self.write([p for p in prompts for _ in range(n)], opts, seed)

    def conditions(self, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The prompts' ids, padded: (cond (N, longest), cond_len (N,))."""
        ids = [self._prompt_ids(p) for p in items]
        width = max(len(x) for x in ids)
        cond = np.zeros((len(ids), width), dtype=np.int64)
        for i, x in enumerate(ids):
            cond[i, : len(x)] = x
        return cond, np.array([len(x) for x in ids], dtype=np.int64)


def feature_rows(path: str, pred: GeneratorVerbs) -> np.ndarray:
    """`generate --features`: the (N, F) matrix of a .npy file for a generator conditioned on
    vectors of F numbers; anything else is one error naming --features, the file and what
    the model reads."""
    width = pred.fields.num_features
    if not width:
        raise ConfigError(f"--features {path}: this generator writes from a label, not from "
                          f"feature vectors; give --label (one of {', '.join(pred.labels[:20])}"
                          f"{' ...' if len(pred.labels) > 20 else ''})")
    need = f"a .npy file (numpy.save) of an (N, {width}) matrix of numbers, one row per output"
    if not Path(path).is_file():
        raise DataError(f"--features {path}: file not found; give {need}")
    try:
        with open(path, "rb") as f:
            arr = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # text, pickle, truncated: numpy's words mislead
        arr = None
    if not isinstance(arr, np.ndarray):  # also an .npz, which holds several arrays
        raise DataError(f"--features {path}: not a .npy file; give {need}")
    numeric = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) \
        or arr.dtype == np.bool_
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != width or not numeric:
        raise DataError(f"--features {path}: an array of shape {tuple(arr.shape)} "
                        f"({arr.dtype}); give {need}")
    finite = np.isfinite(arr.astype(np.float32)).all(axis=1)
    if not finite.all():
        raise DataError(f"--features {path}: row {int(np.argmin(finite))} holds NaN or infinity "
                        "(or a value too large for float32); give finite numbers")
    return arr
