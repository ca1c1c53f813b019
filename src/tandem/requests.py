"""The pieces of a request and its limits that every structure's schema is made of: the
server's limits (`ServeOptions`), the JSON error of a request over one (`LimitError`), the
`inputs` field, and the decoding fields generated from `DecodeConfig`, so that a request that
searches states every bound the same way whatever the structure."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, create_model

from tandem.config import DecodeConfig, decode_fields, decode_options
from tandem.errors import ConfigError


@dataclass
class ServeOptions:
    """The server's limits and batching, as the `tandem serve` flags set them."""

    max_body_bytes: int = 65_536
    """Largest request body in bytes (413 above it, before anything parses it)."""
    max_inputs: int = 64
    """Inputs per request (the schema's maxItems)."""
    max_chars: int = 1_000
    """Characters per input (the schema's maxLength)."""
    max_beam: int = 16
    """Largest beam (and nbest) a request may ask for (the schema's maximum)."""
    timeout_s: float = 30.0
    """A request whose run (decode, prediction, generation) takes longer is answered 503."""
    batching: bool = True
    """Run the requests that arrive together in one batch."""
    max_batch: int = 64
    """Inputs run together (sentences, texts, prompts: a generate request counts n per input)."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for company."""
    max_queue: int = 1024
    """Inputs waiting to be run; more are answered 503 at once."""
    max_new_tokens: int = 1000
    """Longest output a /v1/generate request may ask for (language models, generators)."""

    FLAGS = {"timeout_s": "--timeout", "batching": "--no-batching"}  # flags not named as fields

    def check(self) -> None:
        """Refuse impossible limits with a ConfigError naming the `tandem serve` flag."""
        def flag(name: str) -> str:
            return self.FLAGS.get(name, "--" + name.replace("_", "-"))

        for name in ("max_body_bytes", "max_inputs", "max_chars", "max_beam", "max_batch",
                     "max_queue", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag(name)}: expected an integer >= 1, got {value!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError(f"{flag('timeout_s')}: expected seconds > 0, got {self.timeout_s}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ConfigError(f"{flag('max_wait_ms')}: expected milliseconds >= 0, got "
                              f"{self.max_wait_ms}")


SERVER_SIDE = frozenset({"max_len_a", "max_len_b", "batch_size", "bf16", "on_long_input"})
"""Decoding options a request cannot set: they bound the work a request makes (output
length, batch size) or depend on the machine, so whoever runs the server chooses them (the
model's config, or `tandem serve --max-len-b ...`). Every other DecodeConfig field is a
request field."""


def server_defaults(decode: DecodeConfig, opts: ServeOptions) -> DecodeConfig:
    """The options a request starts from: the translator's, with the beam cut to the server's
    limit and nbest to the beam (`tandem serve` gives one output per input unless --nbest or
    the request asks for more)."""
    beam = min(decode.beam, opts.max_beam)
    return dataclasses.replace(decode, beam=beam, nbest=min(decode.nbest, beam))


def _whole(value: Any) -> Any:
    """2.0 as 2: JSON Schema counts a number with no fraction as an integer, so the server
    does too (strict validation refuses every other non-integer)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def text_inputs(opts: ServeOptions, what: str, min_chars: int = 0) -> tuple[Any, Any]:
    """The `inputs` field of a request: 1 to max_inputs texts of min_chars to max_chars
    characters (the schema's minItems, maxItems, minLength and maxLength)."""
    text = Annotated[str, StringConstraints(min_length=min_chars, max_length=opts.max_chars)]
    return (list[text], Field(min_length=1, max_length=opts.max_inputs, description=what))


def frame_inputs(opts: ServeOptions, width: int, what: str) -> tuple[Any, Any]:
    """The `inputs` field of a request to a model over frames: 1 to max_inputs series, each
    a list of 1 to max_chars frames of `width` numbers (the schema states all three)."""
    frame = Annotated[list[float], Field(min_length=width, max_length=width)]
    series = Annotated[list[frame], Field(min_length=1, max_length=opts.max_chars)]
    return (list[series], Field(min_length=1, max_length=opts.max_inputs,
                                description=f"{what}: series of frames of {width} numbers"))


def decode_request_fields(defaults: DecodeConfig, opts: ServeOptions,
                          skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One request field per decoding option that is neither SERVER_SIDE nor in `skip`, with
    its type, Range, docstring and default (`defaults`'), beam and nbest at most max_beam:
    the decoding part of every request that searches (translate, an lm's or a generator's
    generate), so the schema states every limit the same way for every structure."""
    fields: dict[str, Any] = {}
    for f in decode_fields():
        if f.name in SERVER_SIDE or f.name in skip:
            continue
        bounds: dict[str, Any] = {}
        if f.range is not None:
            bounds = {k: v for k in ("ge", "gt", "le", "lt")
                      if (v := getattr(f.range, k, None)) is not None}
        if f.name in ("beam", "nbest"):
            bounds["le"] = opts.max_beam
        if f.type is float:
            bounds["allow_inf_nan"] = False
        doc = f.doc
        if f.name == "nbest":
            doc += " A value above the beam size gives beam outputs."
        # the bounds go on the value's own type, so the schema states them inside the union
        tp = (Annotated[int, Field(**bounds), BeforeValidator(_whole)] if f.type is int
              else Annotated[f.type, Field(**bounds)])
        fields[f.name] = (tp | None, Field(getattr(defaults, f.name),
                                           description=doc + " null = the default."))
    return fields


def whole_int(**bounds: Any) -> Any:
    """An integer request field type with `bounds` (ge, le...), 2.0 read as 2."""
    return Annotated[int, Field(**bounds), BeforeValidator(_whole)]


def request(name: str, **fields: Any) -> type[BaseModel]:
    """A request model: strict types and no unknown fields, so that what the schema refuses
    the server refuses too."""
    return create_model(name, __config__=ConfigDict(strict=True, extra="forbid"), **fields)


def asked_options(req: BaseModel, defaults: DecodeConfig, exclude: set[str]) -> DecodeConfig:
    """The DecodeConfig a request asks for: its decoding fields over `defaults` (null keeps
    the default), nbest cut to the beam; one the schema allowed but the options refuse is a
    422 saying so."""
    asked = req.model_dump(exclude=exclude)
    beam = asked.get("beam") if asked.get("beam") is not None else defaults.beam
    nbest = asked.get("nbest") if asked.get("nbest") is not None else defaults.nbest
    try:
        return decode_options(defaults, **{**asked, "beam": beam, "nbest": min(nbest, beam)})
    except ConfigError as e:  # the schema allowed it: a disagreement, said as such
        raise LimitError(422, "options", f"{e} (the request schema allowed it; please "
                         "report this)") from None


class LimitError(Exception):
    """A request over one of the server's limits: answered with `status` and a JSON error
    naming the limit, what it allows and what the request had."""

    def __init__(self, status: int, limit: str, message: str, allowed=None, got=None) -> None:
        super().__init__(message)
        self.status, self.limit, self.allowed, self.got = status, limit, allowed, got

    def body(self) -> dict[str, Any]:
        """The JSON error: the message, the limit, what it allows and what the request had."""
        return {"error": str(self), "limit": self.limit, "allowed": self.allowed,
                "got": self.got}

    def headers(self) -> dict[str, str] | None:
        """503s say when to retry."""
        return {"Retry-After": "1"} if self.status == 503 else None
