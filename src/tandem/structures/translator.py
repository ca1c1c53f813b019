"""seq2seq's loaded model: text in, tokenized, batched, searched, detokenized, text out, with
n-best lists, attention, ensembles, int8 and right-to-left reranking (`Translator`), and its
part of the one server (/v1/translate)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tandem import checkpoint
from tandem.config import Config, DecodeConfig, from_dict
from tandem.cpu import autocast, resolve_device
from tandem.data.batching import pad
from tandem.data.fields import Fields
from tandem.data.order import size_batches
from tandem.decode import search
from tandem.decode.ensemble import Ensemble
from tandem.decode.frontend import Result, TextDecoder
from tandem.decode.rescore import force_score, rerank
from tandem.decode.scoring import Scorer
from tandem.errors import CheckpointError, ConfigError, DataError
from tandem.model import fast
from tandem.model.seq2seq import Seq2Seq
from tandem.structures.base import LoadedModel

log = logging.getLogger("tandem")

STRUCTURE = "seq2seq"
"""The structure whose loaded model this is (tandem.structures.seq2seq)."""


class Translator(TextDecoder, LoadedModel):
    """A model (or ensemble) with its vocabularies and config, ready to decode text: text in,
    tokenized, batched, searched with the decoding options (the model's decode section as
    defaults, overridden per call by DecodeConfig field names), detokenized, text out."""

    def __init__(self, model: Seq2Seq | Ensemble, fields: Fields, config: Config) -> None:
        self.model = model.eval()
        self.fields = fields
        self.config = config
        self.decode_cfg = config.decode
        self.train_state: dict = {}  # step, best score... of the checkpoint, when known
        self.rescorers: list[Translator] = []  # models that rerank the n-best (rescore_with)
        self.int8 = False  # quantize() was called
        self.precision: fast.Precision | None = None  # what the kernels are prepared for
        self._prepare("fp32")

    def to(self, device: str | torch.device = "auto") -> Translator:
        """Run on `device`: auto (a CUDA GPU when there is one), cpu, cuda or cuda:N."""
        self.model = self.model.to(resolve_device(device))
        self._prepare("fp32", again=True)
        return self


    def _prepare(self, precision: fast.Precision = "fp32", again: bool = False) -> None:
        """Choose the model's inference kernels for its device and `precision` (int8 once
        quantized), when they change: the one place decoding picks them."""
        if self.int8:
            precision = "int8"
        if again or precision != self.precision:
            fast.prepare(self.model, self.device, "infer", precision,
                         self.config.model.fast_kernels)
            self.precision = precision

    def quantize(self, kind: str = "int8") -> Translator:
        """Dynamic int8 quantization of the Linear/LSTM/GRU layers (PyTorch's own API), for
        faster CPU inference; weights are stored as int8, activations stay float."""
        if kind != "int8":
            raise ConfigError(f"--quantize {kind!r}: only 'int8' is supported")
        if self.device.type != "cpu":  # PyTorch's dynamic int8 kernels are CPU kernels
            log.warning("int8 quantization runs on the CPU; moving the model there from %s",
                        self.device)
            self.model = self.model.cpu()
        self.model = fast.quantize_int8(self.model, self.config.model.fast_kernels)
        self.int8, self.precision = True, "int8"
        return self

    def rescore_with(self, *others: str | Path | Translator) -> Translator:
        """Rerank every search's candidates (all `beam` of them) by the mean of this model's
        score and these models' scores, e.g. right-to-left models (data.reverse_target)
        over a left-to-right one. Checkpoints load on this translator's device."""
        rescorers = [o if isinstance(o, Translator) else load(o, device=self.device)
                     for o in others]
        ours = self.fields.tgt_vocab.itos
        for i, (o, r) in enumerate(zip(others, rescorers, strict=True), 1):
            theirs = set(r.fields.tgt_vocab.itos)
            missing = [t for t in ours if t not in theirs]
            if missing:
                # its scores would count these tokens as unknown: a silently wrong ranking
                name = o if not isinstance(o, Translator) else f"rescoring model {i}"
                raise CheckpointError(
                    f"{name}: its target vocabulary lacks {len(missing)} of the tokens this "
                    f"model writes (e.g. {', '.join(missing[:5])}); a rescoring model must "
                    "be trained on the same task's targets")
        self.rescorers = rescorers
        return self

    def info(self) -> dict[str, Any]:
        """The common model info, the vocabularies, tokenizers, decoding defaults and the
        longest source."""
        data = self.config.data
        return {**super().info(), "src_vocab": len(self.fields.src_vocab),
                "tgt_vocab": len(self.fields.tgt_vocab), "src_tokenizer": data.src_tokenizer,
                "tgt_tokenizer": data.tgt_tokenizer,
                "decode_defaults": asdict(self.decode_cfg), "max_src_len": data.max_src_len,
                "frame_width": self.fields.frame_width}

    @classmethod
    def from_checkpoints(cls, paths: tuple[str | Path, ...], first: dict,
                         structure: Any = None) -> Translator:
        """`from_checkpoint`: several paths are an ensemble."""
        return cls.from_checkpoint(*paths, first=first)

    @torch.no_grad()
    def score(self, sources: list[str], targets: list[str] | list[list[str]],
              batch_size: int | None = None, on_long_input: str = "error") -> list[float]:
        """log P(target | source) under this model (or ensemble): the sum over the target's
        tokens and the end of sentence. Targets are texts or token lists in reading order.
        Sources longer than the model's limit are an error, or cut to it ('truncate')."""
        if len(sources) != len(targets):
            raise DataError(f"score: {len(sources)} sources but {len(targets)} targets")
        src_ids = self._sources(list(sources), on_long_input)[1]
        empty = [i for i, x in enumerate(src_ids) if not len(x)]
        if empty:
            raise DataError(f"score: source {empty[0] + 1} is empty after tokenization")
        tgt_ids = [self.fields.tgt_ids(self.fields.tgt_tok.tokenize(t) if isinstance(t, str)
                                        else list(t)) for t in targets]
        out = [0.0] * len(sources)
        for chunk in size_batches(len(sources), [len(x) for x in src_ids],
                                  batch_size or self.decode_cfg.batch_size):
            src = pad([src_ids[i] for i in chunk]).to(self.device)
            src_len = torch.tensor([len(src_ids[i]) for i in chunk], device=self.device)
            got = force_score(self.model, src, src_len, [tgt_ids[i] for i in chunk])
            for i, v in zip(chunk, got.tolist(), strict=True):
                out[i] = v
        return out

    def _rerank(self, texts: list[str], results: list[list[Result]], opts: DecodeConfig,
                scorer: Scorer, todo: list[int]) -> list[list[Result]]:
        """Rerank the candidates of the inputs `todo` (those not empty) by the mean score of
        this model and the rescorers (normalised by `scorer`); keep opts.nbest."""
        cands = [(texts[i], c.tokens) for i in todo for c in results[i]]
        columns = [r.score([s for s, _ in cands], [t for _, t in cands], opts.batch_size,
                           opts.on_long_input) for r in self.rescorers]
        per_cand = iter(list(zip(*columns, strict=True)))
        for i in todo:
            results[i] = rerank(results[i], [next(per_cand) for _ in results[i]], scorer)
        return [r[:opts.nbest] for r in results]

    @classmethod
    def from_checkpoint(cls, *paths: str | Path, first: dict | None = None) -> Translator:
        """One checkpoint, or several to decode as an ensemble (same vocabularies); `first`:
        the first one's contents when the caller has read them already."""
        if not paths:
            raise CheckpointError("no model given")
        loaded = [_load_model(p, first if i == 0 else None) for i, p in enumerate(paths)]
        model, fields, cfg, state = loaded[0]
        if len(loaded) == 1:
            tr = cls(model, fields, cfg)
            tr.train_state = state
            return tr
        for p, (_, f, _, _) in zip(paths[1:], loaded[1:], strict=True):
            if (f.reverse_source, f.reverse_target) != (fields.reverse_source,
                                                        fields.reverse_target):
                raise CheckpointError(
                    f"{p}: it reads or writes in another direction than {paths[0]} "
                    "(data.reverse_source/reverse_target); an ensemble's models must agree")
            if f.state() != fields.state():
                raise CheckpointError(f"{p}: its vocabularies/tokenizers differ from "
                                      f"{paths[0]}'s; an ensemble needs identical ones")
        return cls(Ensemble([m for m, _, _, _ in loaded]), fields, cfg)

    def _search_batch(self, inputs: list, opts: DecodeConfig, scorer: Scorer, attention: bool,
                      generator: torch.Generator | None) -> list[list[search.Hyp]]:
        """The PyTorch searches over one padded batch, on this translator's device."""
        src = pad(inputs).to(self.device)
        src_len = torch.tensor([len(x) for x in inputs], device=self.device)
        self._prepare("bf16" if opts.bf16 else "fp32")
        with autocast(opts.bf16, self.device.type):
            return search.run(self.model, src, src_len, opts, scorer, attention=attention,
                              generator=generator)


def _load_model(path: str | Path, ckpt: dict | None = None
                ) -> tuple[Seq2Seq, Fields, Config, dict]:
    """The model, fields, config and training summary of a checkpoint (`ckpt`: its contents
    when the caller has read them already)."""
    from tandem.structures import get

    ckpt = ckpt if ckpt is not None else checkpoint.load(path)
    structure = get(STRUCTURE)  # the fields and model seq2seq training builds
    with checkpoint.consistent(path):
        cfg = from_dict(ckpt["config"])
        fields = structure.fields_from_state(ckpt["fields"])
        model = structure.build(cfg, fields)
        model.load_state_dict(ckpt["model"])
    return model.eval(), fields, cfg, checkpoint.training_summary(ckpt)


def load(*paths: str | Path, device: str = "auto", first: dict | None = None) -> Translator:
    """Load a trained model: `tandem.load("best.pt").translate(["some input"], beam=5)`.
    Several paths give an ensemble that averages the models' log-probabilities. `device`:
    auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N."""
    return Translator.from_checkpoint(*paths, first=first).to(device)
