"""`tandem serve`: an HTTP API and a web page over one model (FastAPI + uvicorn).

Requests that arrive within `max_wait_ms` of each other are decoded together (dynamic
batching) on one worker thread, so the event loop stays free for health checks while a batch
runs. Every limit is configurable and answered with a JSON error that names it.

The request model is built from the decoding options themselves (`DecodeConfig`: types,
docstrings, Ranges) and the server's limits, so the OpenAPI schema (/openapi.json) states
everything the server accepts: a request the schema allows is decoded, and one it does not
allow is refused with a 4xx naming the field or the limit. Outside the schema are only the
body size (413), a full queue and a decode over the time limit (503, retry).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from tandem.config import DecodeConfig, decode_fields, decode_options
from tandem.decode.translator import Result, Translator
from tandem.errors import ConfigError, TandemError

log = logging.getLogger("tandem")


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
    """A request whose decode takes longer is answered 503."""
    batching: bool = True
    """Decode requests that arrive together in one batch."""
    max_batch: int = 64
    """Sentences decoded together."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for company."""
    max_queue: int = 1024
    """Sentences waiting to be decoded; more are answered 503 at once."""
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


def request_model(defaults: DecodeConfig, opts: ServeOptions) -> type[BaseModel]:
    """The pydantic model of a /v1/translate request: `inputs` (1 to max_inputs texts of at
    most max_chars characters), `attention`, and one field per decoding option that is not
    SERVER_SIDE, with its type, Range, docstring and default (`defaults`'), beam and nbest
    at most max_beam. Strict types and no unknown fields, so that what the schema refuses
    the server refuses too."""
    text = Annotated[str, StringConstraints(max_length=opts.max_chars)]
    fields: dict[str, Any] = {
        "inputs": (list[text], Field(min_length=1, max_length=opts.max_inputs,
                                     description="texts to translate")),
        "attention": (bool, Field(False, description="return attention weights "
                                  "(output tokens x source tokens)")),
    }
    for f in decode_fields():
        if f.name in SERVER_SIDE:
            continue
        bounds: dict[str, Any] = {}
        if f.range is not None:
            bounds = {k: v for k in ("ge", "gt", "le") if (v := getattr(f.range, k)) is not None}
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
    return create_model("TranslateRequest", __config__=ConfigDict(strict=True, extra="forbid"),
                        **fields)


class LimitError(Exception):
    """A request over one of the server's limits: answered with `status` and a JSON error
    naming the limit, what it allows and what the request had."""

    def __init__(self, status: int, limit: str, message: str, allowed=None, got=None) -> None:
        super().__init__(message)
        self.status, self.limit, self.allowed, self.got = status, limit, allowed, got

    def response(self) -> JSONResponse:
        """The JSON answer (503s say when to retry)."""
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse({"error": str(self), "limit": self.limit, "allowed": self.allowed,
                             "got": self.got}, status_code=self.status, headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 while it is read,
    whether or not the client declared its length, before anything parses it."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refuse(self, size: int) -> JSONResponse:
        return LimitError(413, "max_body_bytes", f"request body is {'over ' if size < 0 else ''}"
                          f"{abs(size)} bytes; the limit is {self.max_bytes}", self.max_bytes,
                          abs(size)).response()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(int(declared))(scope, receive, send)
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._refuse(-size)(scope, receive, send)
            body.append(chunk)
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


Key = tuple[DecodeConfig, bool]
"""What a decode call needs besides the texts: the options and whether attention is returned;
jobs with equal keys are decoded together."""


@dataclass
class _Job:
    inputs: list[str]
    key: Key
    future: asyncio.Future


class Batcher:
    """Queue of decode jobs; one task takes the first job, waits up to `max_wait_ms` for more
    (up to `max_batch` sentences), and decodes each group of jobs with the same options in one
    call on a worker thread. Jobs whose request timed out meanwhile are dropped unrun."""

    def __init__(self, translator: Translator, opts: ServeOptions) -> None:
        self.translator, self.opts = translator, opts
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="tandem-decode")
        self.busy = False
        self.batches = self.sentences = 0
        self.waiting = 0  # sentences queued, not yet taken into a batch
        self._carry: _Job | None = None  # taken from the queue but too big for the last batch

    async def submit(self, inputs: list[str], key: Key) -> list[list[Result]]:
        """Queue `inputs` for decoding with `key`'s options; their Results, in order."""
        job = _Job(inputs, key, asyncio.get_running_loop().create_future())
        self.waiting += len(inputs)
        await self.queue.put(job)
        return await job.future

    async def _next(self, timeout: float | None) -> _Job:
        if self._carry is not None:
            job, self._carry = self._carry, None
        elif timeout is None:
            job = await self.queue.get()
        elif timeout <= 0:
            job = self.queue.get_nowait()
        else:
            job = await asyncio.wait_for(self.queue.get(), timeout)
        self.waiting -= len(job.inputs)
        return job

    async def _gather(self) -> list[_Job]:
        """The next batch: the first job, then whatever arrives within max_wait_ms, up to
        max_batch sentences (a job that would overflow waits for the next batch)."""
        jobs = [await self._next(None)]
        if not self.opts.batching:
            return jobs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.max_wait_ms / 1000
        size = len(jobs[0].inputs)
        while size < self.opts.max_batch:
            try:
                job = await self._next(deadline - loop.time())
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if job.future.done():  # its request timed out meanwhile
                continue
            if size + len(job.inputs) > self.opts.max_batch:
                self._carry = job
                self.waiting += len(job.inputs)
                break
            jobs.append(job)
            size += len(job.inputs)
        return jobs

    async def _decode(self, texts: list[str], key: Key) -> list[list[Result]]:
        """Decode `texts` with `key`'s options on the worker thread."""
        opts, attention = key
        self.busy = True
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.worker, lambda: self.translator.translate_full(
                    texts, opts=opts, attention=attention))
        finally:
            self.busy = False

    async def run(self) -> None:
        """Forever: take the next batch, drop the jobs whose requests gave up, decode each
        group of jobs with equal keys in one call and answer every job."""
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]
            groups: dict[Key, list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for key, group in groups.items():
                texts = [t for j in group for t in j.inputs]
                try:
                    out = await self._decode(texts, key)
                except Exception:  # noqa: BLE001 - find the request that failed, answer the rest
                    if len(group) == 1:
                        await self._answer_alone(group[0])
                    else:
                        for j in group:
                            await self._answer_alone(j)
                    continue
                self.batches += 1
                self.sentences += len(texts)
                for j in group:
                    part, out = out[:len(j.inputs)], out[len(j.inputs):]
                    if not j.future.done():
                        j.future.set_result(part)

    async def _answer_alone(self, job: _Job) -> None:
        """Decode one request by itself, so an error names its own inputs and no other."""
        if job.future.done():
            return
        try:
            out = await self._decode(job.inputs, job.key)
        except Exception as e:  # noqa: BLE001 - the request gets the error, the server goes on
            if not job.future.done():
                job.future.set_exception(e)
            return
        self.batches += 1
        self.sentences += len(job.inputs)
        if not job.future.done():
            job.future.set_result(out)


def _hypothesis(r: Result, attention: bool) -> dict:
    d = {"text": r.text, "tokens": r.tokens, "score": round(r.score, 4),
         "norm_score": round(r.norm_score, 4)}
    if attention and r.token_attention is not None:
        d["attention"] = [[round(w, 4) for w in row] for row in r.token_attention]
    return d


def model_info(translator: Translator) -> dict:
    """What /v1/model answers: the model's shape, size, vocabularies, training and device."""
    cfg = translator.config
    data = cfg.data
    source = {k: v for k, v in (("task", data.task), ("corpus", data.corpus),
                                ("train", data.train)) if v is not None}
    model = translator.model
    return {
        "model": asdict(cfg.model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "src_vocab": len(translator.fields.src_vocab),
        "tgt_vocab": len(translator.fields.tgt_vocab),
        "src_tokenizer": data.src_tokenizer, "tgt_tokenizer": data.tgt_tokenizer,
        "trained_on": source,
        "training": {**translator.train_state, "valid_metric": cfg.train.valid_metric},
        "decode_defaults": asdict(cfg.decode),
        "max_src_len": data.max_src_len,
        "device": str(translator.device),
    }


def _limit_error(err: dict, opts: ServeOptions) -> LimitError | None:
    """The LimitError naming the server limit behind a schema violation, if one is."""
    loc = [x for x in err.get("loc", ()) if x != "body"]
    kind, value = err.get("type"), err.get("input")
    if loc == ["inputs"] and kind == "too_long":
        n = len(value) if isinstance(value, list) else None
        return LimitError(413, "max_inputs", f"{n} inputs in one request; the limit is "
                          f"{opts.max_inputs}", opts.max_inputs, n)
    if loc == ["inputs"] and kind == "too_short":
        return LimitError(422, "inputs", "inputs: give at least one text", 1, 0)
    if len(loc) == 2 and loc[0] == "inputs" and kind == "string_too_long":
        n = len(value) if isinstance(value, str) else None
        return LimitError(413, "max_chars", f"inputs[{loc[1]}] has {n} characters; the limit "
                          f"is {opts.max_chars}", opts.max_chars, n)
    if loc in (["beam"], ["nbest"]) and kind == "less_than_equal":
        return LimitError(422, "max_beam", f"{loc[0]} {value} is above the limit "
                          f"{opts.max_beam}", opts.max_beam, value)
    return None


async def within_limit(work, opts: ServeOptions, what: str):
    """Await `work` within the server's time limit: a 503 naming timeout_s when it takes
    longer, a 422 when the input is at fault (a TandemError)."""
    try:
        return await asyncio.wait_for(work, opts.timeout_s)
    except TimeoutError:
        raise LimitError(503, "timeout_s", f"{what} took longer than the {opts.timeout_s:g} s "
                         "limit; try fewer or shorter inputs", opts.timeout_s, None) from None
    except TandemError as e:
        raise LimitError(422, "input", str(e)) from None


def install_limits(app: FastAPI, opts: ServeOptions) -> None:
    """The body-size limit and the JSON error handlers every tandem app shares: a LimitError
    answers as itself, a schema violation names its field (or the server limit behind it),
    anything unexpected is a 500 with one line."""
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes)

    @app.exception_handler(LimitError)
    async def _limit(request: Request, e: LimitError):
        return e.response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"},
                            status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        # e.g. a body that is not UTF-8 text (400): the same JSON error shape as the rest
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errors = e.errors()
        for err in errors:
            limit = _limit_error(err, opts)
            if limit is not None:
                return limit.response()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}",
                             "field": where, "details": [
                                 {"field": ".".join(str(x) for x in d.get("loc", ())),
                                  "msg": d.get("msg")} for d in errors]}, status_code=422)


def create_app(translator: Translator, opts: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app over `translator`: /v1/translate, /v1/model, /v1/health and the web
    page, its request schema built from the decoding options and `opts`' limits."""
    opts = opts or ServeOptions()
    opts.check()
    batcher = Batcher(translator, opts)
    defaults = server_defaults(translator.decode_cfg, opts)
    TranslateRequest = request_model(defaults, opts)  # noqa: N806 - a class, built here
    info = {**model_info(translator), "decode_defaults": asdict(defaults)}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tandem", description="seq2seq translation with attention",
                  version="1", lifespan=lifespan)
    app.state.batcher = batcher

    install_limits(app, opts)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("tandem").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/v1/health")
    async def health() -> dict:
        return {"status": "ok", "decoding": batcher.busy, "queued": batcher.queue.qsize(),
                "batches": batcher.batches, "sentences": batcher.sentences}

    @app.get("/v1/model")
    async def model() -> dict:
        return info

    async def translate(req) -> dict:
        asked = req.model_dump(exclude={"inputs", "attention"})
        beam = asked["beam"] if asked["beam"] is not None else defaults.beam
        nbest = asked["nbest"] if asked["nbest"] is not None else defaults.nbest
        try:
            decode = decode_options(defaults, **{**asked, "beam": beam,
                                                 "nbest": min(nbest, beam)})
        except ConfigError as e:  # the schema allowed it: a disagreement, said as such
            raise LimitError(422, "options", f"{e} (the request schema allowed it; please "
                             "report this)") from None
        if batcher.waiting + len(req.inputs) > opts.max_queue:
            raise LimitError(503, "max_queue", f"{batcher.waiting} sentences are waiting to be "
                             f"decoded; the limit is {opts.max_queue}; retry shortly",
                             opts.max_queue, batcher.waiting + len(req.inputs))
        t0 = time.perf_counter()
        results = await within_limit(batcher.submit(req.inputs, (decode, req.attention)),
                                     opts, "decoding")
        return {
            "outputs": [r[0].text for r in results],
            "results": [{"input": r[0].source, "src_tokens": r[0].src_tokens,
                         "unknown": r[0].unknown,
                         "hypotheses": [_hypothesis(h, req.attention) for h in r]}
                        for r in results],
            "beam": beam, "ms": round(1000 * (time.perf_counter() - t0), 1),
        }

    # the request model is built at run time, so the annotation is set, not written
    translate.__annotations__["req"] = TranslateRequest
    app.post("/v1/translate", responses={
        400: {"description": "the body could not be read as text: a JSON error"},
        413: {"description": "a limit outside the decoding options is exceeded (body size, "
                             "inputs, characters): a JSON error naming it"},
        503: {"description": "the queue is full or the decode took too long: retry (see "
                             "Retry-After)"}})(translate)
    return app


def serve_app(app: FastAPI, host: str, port: int) -> None:
    """Run `app` with uvicorn on `host`:`port` until stopped; warns when `host` is not a
    loopback address (there is no authentication)."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable from other machines; tandem has no "
                    "authentication", host)
    log.info("serving on http://%s:%d/ (API under /v1, schema at /openapi.json)", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def serve(translator: Translator, host: str, port: int, opts: ServeOptions) -> None:
    """Serve `translator` (`create_app`) on `host`:`port` until stopped."""
    serve_app(create_app(translator, opts), host, port)
