"""Trained models of the structures beyond seq2seq, ready to use: what `tandem.load` returns
for a classifier, a tagger, a language model or a conditional generator checkpoint (a seq2seq
checkpoint gives a `Translator`).

    clf = tandem.load("runs/sst2/best.pt")
    clf.predict(["a gorgeous , witty film"], topk=2)   # [[('positive', 0.93), ('negative', 0.07)]]
    tandem.load("runs/ud_ewt/best.pt").tag(["The cat sat ."])  # [[('The', 'DET'), ...]]
    tandem.load("runs/shakespeare/best.pt").generate(["ROMEO:"], max_len=200, seed=1)
    tandem.load("runs/names_gen/best.pt").generate(labels=["Russian"] * 5, seed=1)

Each predictor holds the model (in eval mode, its inference kernels prepared once for its
device), its config and its fields; `evaluate(path)` scores a file in the structure's format
(or the test split of the model's config) with the metrics training validates with. The
language model and the generator are searched with seq2seq's searches (`tandem.decode.search`)
through the same `encode` / `init_state` / `decode_step` interface: sampling by default (text
generation), greedy or beam search when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tandem import checkpoint, metrics
from tandem.config import Config, DecodeConfig, decode_options, from_dict
from tandem.cpu import module_device, resolve_device
from tandem.data.structured import (
    NEWLINE,
    StructFields,
    collate_classify,
    collate_tag,
    evaluation_data,
    struct_batches,
)
from tandem.decode import search
from tandem.errors import CheckpointError, DataError
from tandem.evaluate import (
    evaluate_classifier,
    evaluate_generator,
    evaluate_lm,
    evaluate_tagger,
)
from tandem.model import fast
from tandem.model.build import build_model

GENERATE_MAX_LEN = 200
"""Tokens generated when the caller gives no max_len (a language model never ends by itself;
a generator ends at its end-of-sequence token first)."""


class Predictor:
    """A trained non-seq2seq model with its config and fields (`structure` says which)."""

    structure = ""

    def __init__(self, model: torch.nn.Module, fields: StructFields, config: Config,
                 train_state: dict | None = None) -> None:
        self.model = model.eval()
        self.fields = fields
        self.config = config
        self.train_state = train_state or {}
        self._prepare()

    @property
    def device(self) -> torch.device:
        """Where the model runs; inputs are moved there."""
        return module_device(self.model)

    def to(self, device: str | torch.device = "auto") -> Predictor:
        """Run on `device`: auto (a CUDA GPU when there is one), cpu, cuda or cuda:N."""
        self.model = self.model.to(resolve_device(device))
        self._prepare()
        return self

    def _prepare(self) -> None:
        """The model's inference kernels for its device (`tandem.model.fast`)."""
        fast.prepare(self.model, self.device, "infer", "fp32", self.config.model.fast_kernels)

    @property
    def labels(self) -> list[str]:
        """The labels (classify, generate from labels) or tags (tag) the model knows."""
        return list(self.fields.labels)

    def _batch_tokens(self) -> int:
        return max(self.config.train.batch_tokens, 1000)

    def evaluate(self, path: str | Path | None = None, features: str | Path | None = None,
                 split: str = "test") -> dict[str, Any]:
        """Score a file in the structure's format (or `split` of the model's config when
        `path` is None): the metrics of `tandem.evaluate` for this structure, plus `data`
        (what was read) and `items`."""
        raise NotImplementedError

    def _data(self, path, features, split):
        return evaluation_data(self.config, self.fields, path, features, split)


class ClassifierPredictor(Predictor):
    """many-to-one: a label for each text, with its probability."""

    structure = "classify"

    @torch.no_grad()
    def probabilities(self, texts: list[str]) -> torch.Tensor:
        """P(label | text) for each text: (N, n_labels), on the CPU. A text that is empty
        after tokenization is a DataError naming its position."""
        ids = [self.fields.encode_text(t) for t in texts]
        for i, x in enumerate(ids):
            if not x:
                raise DataError(f"input {i + 1}: empty after tokenization; nothing to classify")
        out = torch.zeros(len(ids), len(self.fields.labels))
        examples = [(x, 0) for x in ids]
        for idx in struct_batches("classify", examples, self._batch_tokens(), None):
            b = collate_classify([examples[i] for i in idx], idx).to(self.device)
            out[torch.tensor(idx)] = torch.softmax(self.model(b.src, b.src_len).float(),
                                                   -1).cpu()
        return out

    def predict(self, texts: list[str], topk: int = 1) -> list[list[tuple[str, float]]]:
        """The `topk` most likely labels of each text, most likely first, with their
        probabilities."""
        if topk < 1:
            raise DataError(f"topk = {topk}: give at least 1")
        probs = self.probabilities(texts)
        k = min(topk, probs.size(1))
        top = probs.topk(k, -1)
        return [[(self.fields.labels[j], float(p)) for p, j in zip(ps, js, strict=True)]
                for ps, js in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """accuracy, macro_f1 (percent), loss, f1 per label, the confusion matrix
        ([gold][predicted] counts, rows and columns in `labels` order)."""
        exs, _, _, what = self._data(path, features, split)
        res = evaluate_classifier(self.model, exs, len(self.fields.labels),
                                  self._batch_tokens(), self.device)
        res.pop("predictions")
        return {"data": what, "items": len(exs), "labels": self.labels, **res}


class TaggerPredictor(Predictor):
    """synchronous many-to-many: a tag for every word."""

    structure = "tag"

    @torch.no_grad()
    def tag(self, sentences: list[str | list[str]]) -> list[list[tuple[str, str]]]:
        """(word, tag) pairs of each sentence; a sentence is a list of words or a string
        split on whitespace (give word lists for text tokenized another way)."""
        words = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        examples = []
        for i, ws in enumerate(words):
            if not ws:
                raise DataError(f"input {i + 1}: no words to tag")
            examples.append((*self.fields.encode_words(ws), [0] * len(ws)))
        tags: list[list[int]] = [[] for _ in examples]
        for idx in struct_batches("tag", examples, self._batch_tokens(), None):
            b = collate_tag([examples[i] for i in idx], idx).to(self.device)
            best = self.model(b.words, b.lengths, b.chars, b.char_len).argmax(-1).tolist()
            for row, i in enumerate(idx):
                tags[i] = best[row][: len(words[i])]
        return [[(w, self.fields.labels[t]) for w, t in zip(ws, ts, strict=True)]
                for ws, ts in zip(words, tags, strict=True)]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """token_acc, and unseen_acc / unseen_tokens (accuracy on words never seen in
        training), loss."""
        exs, items, _, what = self._data(path, features, split)
        unseen = [self.fields.unseen(ws) for ws, _, _ in items]
        res = evaluate_tagger(self.model, exs, unseen, self._batch_tokens(), self.device)
        res.pop("predictions")
        return {"data": what, "sentences": len(exs),
                "tokens": sum(len(e[0]) for e in exs), **res}


class _Generating(Predictor):
    """What the language model and the generator share: the searches' options and draw."""

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

    def _search(self, cond: torch.Tensor, cond_len: torch.Tensor, opts: DecodeConfig,
                seed: int | None) -> list[search.Hyp]:
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None \
            else None
        hyps = search.run(self.model, cond.to(self.device), cond_len.to(self.device), opts,
                          generator=gen)
        return [h[0] for h in hyps]


class LMPredictor(_Generating):
    """synchronous many-to-many over one stream: text continued from a prompt, and the
    model's probability of a text."""

    structure = "lm"

    def _prompt_ids(self, prompt: str) -> list[int]:
        """A prompt's ids; the empty prompt is a line break, the context the training
        stream gives at the start of every line (the model never saw bos)."""
        ids = self.fields.encode_text(prompt) if prompt else []
        return ids or self.fields.vocab.encode([NEWLINE])

    @torch.no_grad()
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
        ids = [self._prompt_ids(p) for p in prompts for _ in range(n)]
        width = max(len(x) for x in ids)
        cond = torch.zeros(len(ids), width, dtype=torch.long)
        for i, x in enumerate(ids):
            cond[i, : len(x)] = torch.tensor(x)
        lens = torch.tensor([len(x) for x in ids])
        hyps = self._search(cond, lens, opts, seed)
        return [self.fields.decode(h.tokens) for h in hyps]

    @torch.no_grad()
    def score(self, text: str) -> dict[str, float]:
        """The model's cross-entropy of a text (nats per token, the first token predicted
        from a line break), perplexity and, for a character model, bits per character."""
        ids = self._prompt_ids("") + self.fields.encode_text(text)
        if len(ids) < 2:
            raise DataError("score: the text has no tokens")
        x = torch.tensor([ids], device=self.device)
        logp = self.model.forced_log_probs(x[:, :-1])
        nll = -float(logp[0].gather(1, x[0, 1:].unsqueeze(1)).sum())
        count = len(ids) - 1
        chars = count if self.fields.tok is not None and self.fields.tok.kind == "char" else None
        return {**metrics.lm_scores(nll, count, chars), "tokens": count}

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """loss (nats per token), ppl and, for character tokens, bpc, over the text in
        contiguous streams with the hidden state carried (as training validates)."""
        ids, items, _, what = self._data(path, features, split)
        text = items[0]
        cfg = self.config
        streams = max(1, cfg.train.batch_tokens // cfg.train.bptt)
        res = evaluate_lm(self.model, ids, streams, cfg.train.bptt,
                          len(text) / max(len(ids), 1), self.device)
        return {"data": what, **res}


class GeneratorPredictor(_Generating):
    """one-to-many: a sequence written from one input (a label, or a feature vector)."""

    structure = "generate"

    @torch.no_grad()
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
            cond = torch.from_numpy(np.repeat(arr, n, axis=0))
        else:
            if features is not None:
                raise DataError("this generator is conditioned on a label: give labels, not "
                                f"features (its labels: {', '.join(f.labels[:20])})")
            if labels is None:
                raise DataError(f"give the labels to write from: {', '.join(f.labels[:20])}"
                                f"{' ...' if len(f.labels) > 20 else ''}")
            if isinstance(labels, str):
                labels = [labels]
            cond = torch.tensor([[f.label_id(lab)] for lab in labels for _ in range(n)])
        opts = self.options(max_len, **options)
        hyps = self._search(cond, torch.ones(cond.size(0), dtype=torch.long), opts, seed)
        return [f.decode(h.tokens) for h in hyps]

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """loss (cross-entropy per output token, eos included) and ppl of the references
        given their conditions (teacher forced)."""
        exs, _, matrix, what = self._data(path, features, split)
        res = evaluate_generator(self.model, exs, matrix, self._batch_tokens(), self.device)
        return {"data": what, "items": len(exs), **res}


PREDICTORS: dict[str, type[Predictor]] = {
    p.structure: p for p in (ClassifierPredictor, TaggerPredictor, LMPredictor,
                             GeneratorPredictor)}


def load_predictor(path: str | Path, ckpt: dict | None = None) -> Predictor:
    """The predictor of a non-seq2seq checkpoint (its `structure` key), on the CPU."""
    ckpt = ckpt if ckpt is not None else checkpoint.load(path)
    structure = ckpt.get("structure", "seq2seq")
    if structure not in PREDICTORS:
        raise CheckpointError(f"{path}: a {structure} checkpoint; load it with "
                              "tandem.load (a Translator)")
    with checkpoint.consistent(path):
        cfg = from_dict(ckpt["config"])
        fields = StructFields.from_state(ckpt["fields"])
        model = build_model(cfg.model, fields.sizes())
        model.load_state_dict(ckpt["model"])
    return PREDICTORS[structure](model, fields, cfg, checkpoint.training_summary(ckpt))


def load(*paths: str | Path, device: str = "auto"):
    """Load a trained model of any structure: a `Translator` for seq2seq (several paths = an
    ensemble), else the structure's predictor (`ClassifierPredictor`, `TaggerPredictor`,
    `LMPredictor`, `GeneratorPredictor`). `device`: auto, cpu, cuda or cuda:N."""
    from tandem.decode import translator

    if not paths:
        raise CheckpointError("tandem.load: give a checkpoint path")
    ckpt = checkpoint.load(paths[0])
    structure = ckpt.get("structure", "seq2seq")
    if structure == "seq2seq":
        return translator.load(*paths, device=device, first=ckpt)
    if len(paths) > 1:
        raise CheckpointError(f"{paths[0]}: a {structure} model; ensembles are for seq2seq "
                              "models, give one checkpoint")
    return load_predictor(paths[0], ckpt).to(device)
