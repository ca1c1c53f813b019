"""The text side of a seq2seq model, shared by the PyTorch `Translator` and the lean runtime's
`RuntimeTranslator`: decoding options (the model's decode section as defaults, overridden per
call), inputs tokenized (or series of frames normalised) and cut to the model's limit, batched
by length, searched by the backend (`_search_batch`), and outputs detokenized into `Result`s in
reading order; and its part of the server (/v1/translate: the request schema, batching key and
answer). Imports no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tandem.config import Config, DecodeConfig, decode_options
from tandem.data.fields import Fields
from tandem.data.order import size_batches
from tandem.decode.scoring import Scorer
from tandem.errors import DataError

log = logging.getLogger("tandem")


@dataclass
class Result:
    """One output for one input, in reading order."""

    text: str
    tokens: list[str]
    score: float  # sum of log-probabilities
    norm_score: float  # length-normalised score used for ranking
    src_tokens: list[str] = field(default_factory=list)
    attention: list[list[float]] | None = None  # (output tokens [+ eos], source tokens)
    unknown: list[str] = field(default_factory=list)  # source tokens never seen in training
    source: str = ""  # the input text

    @property
    def token_attention(self) -> list[list[float]] | None:
        """Attention rows of the output tokens only (the end-of-sentence row left out)."""
        return None if self.attention is None else self.attention[:len(self.tokens)]


class TextDecoder:
    """Text (or frames) in, n-best `Result`s out, over any backend's search. A subclass sets
    `fields`, `config`, `decode_cfg` and `rescorers`, and implements `_search_batch` (and
    `_rerank` when it has rescorers)."""

    fields: Fields
    config: Config
    decode_cfg: DecodeConfig
    rescorers: list
    structure = "seq2seq"
    verbs = ("translate",)
    endpoint = "/v1/translate"
    page = "index.html"

    @property
    def decode_defaults(self) -> DecodeConfig:
        """The decoding options requests start from (`set_defaults` may have changed them)."""
        return self.decode_cfg

    def options(self, opts: DecodeConfig | None = None, **overrides) -> DecodeConfig:
        """The decoding options of a call: `opts` (default: this translator's, i.e. the
        model's decode section or what `set_defaults` made of it) with `overrides`, any
        DecodeConfig fields by name (None keeps the value), applied and checked."""
        return decode_options(opts or self.decode_cfg, **overrides)

    def set_defaults(self, **overrides) -> TextDecoder:
        """Change this translator's default decoding options (checked as `options` does)."""
        self.decode_cfg = self.options(**overrides)
        return self

    def translate_full(self, inputs: Iterable[str], *, opts: DecodeConfig | None = None,
                       attention: bool = False, generator: Any = None,
                       first_number: int = 1, **options) -> list[list[Result]]:
        """n-best Results per input. The decoding options are `opts` (default: this
        translator's) with `options` applied: any DecodeConfig field by name (beam=3,
        sample=True, ...; see docs/config.md). `attention`: return attention weights;
        `generator`: the random numbers of sampling (the backend's: a torch.Generator, a
        numpy Generator in the runtime). Messages number the inputs from `first_number`."""
        opts = self.options(opts, **options)
        scorer = Scorer.from_options(opts)
        reranking = bool(self.rescorers) and not opts.sample
        # when reranking, the search returns every beam candidate; opts.nbest are kept after
        search_opts = replace(opts, nbest=opts.beam) if reranking else opts
        texts = list(inputs)
        src_toks, ids = self._sources(texts, opts.on_long_input, first_number)
        results: list[list[Result]] = [[] for _ in texts]
        todo = [i for i, x in enumerate(ids) if len(x)]
        for i in set(range(len(texts))) - set(todo):  # nothing to translate
            results[i] = [Result("", [], 0.0, 0.0, [], source=texts[i])
                          for _ in range(opts.nbest)]
        batches = [[todo[j] for j in chunk] for chunk in
                   size_batches(len(todo), [len(ids[i]) for i in todo], opts.batch_size)]
        searched = self._search_batches([[ids[i] for i in idx] for idx in batches],
                                        search_opts, scorer, attention, generator)
        for idx, hyps in zip(batches, searched, strict=True):
            for i, nb in zip(idx, hyps, strict=True):
                results[i] = [self._result(h, src_toks[i], texts[i]) for h in nb]
        if reranking:
            return self._rerank(texts, results, opts, scorer, todo)
        return results

    def _search_batch(self, inputs: list, opts: DecodeConfig, scorer: Scorer, attention: bool,
                      generator: Any) -> list[list[Any]]:
        """The backend's search over one batch of encoded inputs (id lists, or frames):
        n-best `Hyp`s per input, best first."""
        raise NotImplementedError

    def _search_batches(self, batches: list[list], opts: DecodeConfig, scorer: Scorer,
                        attention: bool, generator: Any) -> Iterable[list[list[Any]]]:
        """`_search_batch` over each batch, results in the batches' order (a backend may
        search several batches at once)."""
        return (self._search_batch(b, opts, scorer, attention, generator) for b in batches)

    def _rerank(self, texts: list, results: list[list[Result]], opts: DecodeConfig,
                scorer: Scorer, todo: list[int]) -> list[list[Result]]:
        """Rerank with the `rescorers` (a backend that has them)."""
        raise NotImplementedError

    def _sources(self, texts: list, on_long_input: str, first_number: int = 1
                 ) -> tuple[list[list[str]], list]:
        """(the tokens of each input, what the model reads of it: ids, or normalised frames
        for a model over frames, whose inputs have no tokens), each cut to the model's
        data.max_src_len (with a warning), or an error naming the input when on_long_input
        is 'error'."""
        limit = self.config.data.max_src_len
        frames = bool(self.fields.frame_width)
        what = "frames" if frames else "tokens"
        src_toks = [[] if frames else self.fields.src_tok.tokenize(t) for t in texts]
        lengths = [len(x) if frames else len(t) for x, t in zip(texts, src_toks, strict=True)]
        cut = list(texts) if frames else src_toks
        for i, n in enumerate(lengths):
            if n > limit:
                if on_long_input == "error":
                    raise DataError(f"input {i + first_number} has {n} {what}, more than this "
                                    f"model's limit (data.max_src_len = {limit}); shorten it, "
                                    "or allow truncation (on_long_input: truncate)")
                log.warning("input %d has %d %s; truncated to data.max_src_len=%d",
                            i + first_number, n, what, limit)
                cut[i] = cut[i][:limit]
        if frames:
            read = []
            for i, x in enumerate(cut):
                try:
                    read.append(self.fields.src_frames(x))
                except DataError as e:
                    raise DataError(f"input {i + first_number}: {e}") from None
            return src_toks, read
        return src_toks, [self.fields.src_ids(t) for t in src_toks]

    def _result(self, h: Any, src_toks: list[str], source: Any) -> Result:
        toks = self.fields.tgt_tokens(h.tokens)
        att = None if h.attention is None else self._reading_order(h.attention, len(h.tokens))
        return Result(
            text=self.fields.tgt_tok.detokenize(toks), tokens=toks, score=h.score,
            norm_score=h.norm_score, src_tokens=src_toks,
            attention=att,
            unknown=self.fields.src_vocab.unknown(src_toks), source=source,
        )

    def _reading_order(self, att: Any, n: int) -> list[list[float]]:
        """Attention rows and columns (a tensor or an array) in reading order when the model
        reads or writes reversed (the n output tokens' rows; the end-of-sentence row, when
        there is one, stays last)."""
        rows = att.tolist()
        if self.fields.reverse_source:
            rows = [r[::-1] for r in rows]
        if self.fields.reverse_target:
            rows = rows[:n][::-1] + rows[n:]
        return rows

    def evaluate(self, path: str | Path | None = None, features: str | Path | None = None,
                 split: str = "test", *, src_suffix: str | None = None,
                 tgt_suffix: str | None = None, metrics: list[str] | None = None,
                 opts: DecodeConfig | None = None) -> dict[str, Any]:
        """Decode a test set and score the best output of each source against all its
        references: `path` a TSV (source<TAB>ref[<TAB>ref...]; a source on several lines has
        several references) or a prefix with `src_suffix` / `tgt_suffix`; None = `split` of
        the model's config. `metrics`: a subset of tandem.metrics.METRICS (default all).
        Returns the metrics, `data`, `sentences`, `references` and `beam`. Both backends
        score this way, a checkpoint and an export alike."""
        from tandem.data.corpora import read_references
        from tandem.evaluate import evaluate_outputs, group_references

        if features is not None:
            raise DataError("--features is for generators conditioned on feature vectors; a "
                            "seq2seq model reads text")
        if path is None:  # the task, corpus or files of the model's own config
            from tandem.data.dataset import load_splits

            pairs, path = getattr(load_splits(self.config.data), split), \
                f"the {split} split of the model's config"
            if not pairs:
                raise DataError(f"{path} is empty; give a TSV of source<TAB>reference "
                                "(tandem evaluate --data)")
        elif self.reads_frames:  # series of frames, each with its reference
            from tandem.data.frames import read_series

            pairs = [(x, text) for x, text, _ in read_series(path)]
        else:
            pairs = read_references(path, src_suffix, tgt_suffix)
        srcs, refs = group_references(pairs)
        opts = replace(self.options(opts), nbest=1)  # the best output is scored
        hyps = self.translate(srcs, opts=opts)
        return {"data": str(path), "sentences": len(srcs), "references": len(pairs),
                "beam": opts.beam, **evaluate_outputs(self.fields, hyps, refs, metrics)}

    def translate(self, inputs: Iterable[str], *, opts: DecodeConfig | None = None,
                  generator: Any = None, **options
                  ) -> list[str] | list[list[str]]:
        """Plain strings: one output per input, or a list of n-best outputs when nbest > 1
        (options as in `translate_full`)."""
        opts = self.options(opts, **options)
        full = self.translate_full(inputs, opts=opts, generator=generator)
        if opts.nbest == 1:
            return [r[0].text for r in full]
        return [[x.text for x in r] for r in full]

    def stream(self, lines: Iterable[str], chunk: int = 1000, *, opts: DecodeConfig | None = None,
               attention: bool = False, generator: Any = None, **options
               ) -> Iterator[list[Result]]:
        """Translate an arbitrarily long stream in chunks, in order, in constant memory
        (options as in `translate_full`, checked once before the first line is read)."""
        opts = self.options(opts, **options)
        buf: list[str] = []
        done = 0
        for line in lines:
            buf.append(line)
            if len(buf) >= chunk:
                yield from self.translate_full(buf, opts=opts, attention=attention,
                                               generator=generator, first_number=done + 1)
                done += len(buf)
                buf = []
        if buf:
            yield from self.translate_full(buf, opts=opts, attention=attention,
                                           generator=generator, first_number=done + 1)

    # --- serving ------------------------------------------------------------------------
    def request_model(self, limits: Any) -> type:
        """{"inputs": texts, "attention": bool} and one field per decoding option a request
        may set (`tandem.requests.decode_request_fields`), from the server's
        defaults (the beam cut to max_beam)."""
        from pydantic import Field

        from tandem.requests import (
            decode_request_fields,
            frame_inputs,
            request,
            server_defaults,
            text_inputs,
        )

        defaults = server_defaults(self.decode_cfg, limits)
        inputs = (frame_inputs(limits, self.fields.frame_width, "series to translate")
                  if self.reads_frames else text_inputs(limits, "texts to translate"))
        return request(
            "TranslateRequest", inputs=inputs,
            attention=(bool, Field(False, description="return attention weights (output "
                                   "tokens x source tokens)")),
            **decode_request_fields(defaults, limits))

    def plan(self, req: Any, limits: Any) -> tuple[list[str], Any]:
        """Each text is an item; the key is (the decoding options, attention)."""
        from tandem.requests import asked_options, server_defaults

        opts = asked_options(req, server_defaults(self.decode_cfg, limits),
                             {"inputs", "attention"})
        if self.reads_frames:
            return ([np.asarray(x, np.float32) for x in req.inputs],
                    (opts, req.attention))
        return list(req.inputs), (opts, req.attention)

    def run(self, items: list[str], key: Any) -> list[list[Result]]:
        """The n-best Results of each text."""
        opts, attention = key
        return self.translate_full(items, opts=opts, attention=attention)

    def answer(self, req: Any, key: Any, outputs: list[list[Result]], ms: float) -> dict[str, Any]:
        """{"outputs": the best texts, "results": [{"input", "src_tokens", "unknown",
        "hypotheses": [{"text", "tokens", "score", "norm_score"[, "attention"]}]}], "beam",
        "ms"}."""
        return {
            "outputs": [r[0].text for r in outputs],
            "results": [{"input": (f"{len(r[0].source)} frames" if self.reads_frames
                                   else r[0].source), "src_tokens": r[0].src_tokens,
                         "unknown": r[0].unknown,
                         "hypotheses": [_hypothesis(h, req.attention) for h in r]}
                        for r in outputs],
            "beam": key[0].beam, "ms": ms}


def _hypothesis(r: Result, attention: bool) -> dict:
    d = {"text": r.text, "tokens": r.tokens, "score": round(r.score, 4),
         "norm_score": round(r.norm_score, 4)}
    if attention and r.token_attention is not None:
        d["attention"] = [[round(w, 4) for w in row] for row in r.token_attention]
    return d
