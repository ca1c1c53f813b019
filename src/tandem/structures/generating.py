"""What the structures that write text share (a language model continuing a prompt, a
generator writing from a label): the decoding options of generation, the search (seq2seq's
searches through `encode` / `init_state` / `decode_step`), and the request of the server's
/v1/generate, its decoding fields generated from `DecodeConfig` like translate's."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tandem.config import DecodeConfig, decode_options
from tandem.decode import search
from tandem.errors import ConfigError, DataError
from tandem.requests import (
    LimitError,
    decode_request_fields,
    request,
    server_defaults,
    text_inputs,
    whole_int,
)
from tandem.structures.common import FieldsModel

GENERATE_MAX_LEN = 200
"""Tokens generated when the caller gives no max_len (a language model never ends by itself;
a generator ends at its end-of-sequence token first)."""
UNUSED_OPTIONS = frozenset({"nbest", "max_len_a", "max_len_b", "coverage_penalty", "batch_size",
                            "bf16", "on_long_input"})
"""Decoding options generation never reads: one output per search (n asks for several), the
length limit is max_len, there is no attention to cover, and every input is searched in one
batch, in float32, with no input length limit (`tandem generate` has no flag for them and
`tandem serve` refuses them for these models)."""


class Generating(FieldsModel):
    """A model that writes text from a condition (`conditions(items)`: the model's inputs for
    a list of prompts or labels)."""

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

    def _search(self, cond: torch.Tensor, cond_len: torch.Tensor, opts: DecodeConfig,
                seed: int | None) -> list[search.Hyp]:
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None \
            else None
        hyps = search.run(self.model, cond.to(self.device), cond_len.to(self.device), opts,
                          generator=gen)
        return [h[0] for h in hyps]

    def conditions(self, items: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, cond_len): what the model writes from for each prompt or label."""
        raise NotImplementedError

    def check_inputs(self, items: list[str]) -> None:
        """Refuse (DataError) an input `conditions` cannot take; any prompt is text."""

    @torch.no_grad()
    def write(self, items: list[str], opts: DecodeConfig, seed: int | None) -> list[str]:
        """One text written from each prompt or label (repeat an item for several)."""
        cond, lens = self.conditions(items)
        return [self.fields.decode(h.tokens) for h in self._search(cond, lens, opts, seed)]


    # --- serving ------------------------------------------------------------------------
    @property
    def decode_defaults(self) -> DecodeConfig:
        """The decoding options requests start from: `generation_defaults`."""
        return self.generation_defaults

    def info(self) -> dict[str, Any]:
        """The common model info and the decoding options requests start from."""
        return {**super().info(), "decode_defaults": dataclasses.asdict(self.generation_defaults)}

    @property
    def generation_defaults(self) -> DecodeConfig:
        """What a request starts from: the model's decode section, drawing one output, with
        what `set_defaults` changed."""
        base = dataclasses.replace(self.config.decode, beam=1, nbest=1, sample=True)
        return decode_options(base, **getattr(self, "_default_overrides", {}))

    def set_defaults(self, **overrides: Any) -> Generating:
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
