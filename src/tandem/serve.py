"""`tandem serve`: an HTTP API and a web page over one model (FastAPI + uvicorn).

Requests that arrive within `max_wait_ms` of each other are decoded together (dynamic
batching) on one worker thread, so the event loop stays free for health checks while a batch
runs. Every limit is configurable and answered with a JSON error that names it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from tandem.decode.translator import Result, Translator
from tandem.errors import TandemError

log = logging.getLogger("tandem")


@dataclass
class ServeOptions:
    max_body_bytes: int = 65_536  # request body
    max_inputs: int = 64  # inputs per request
    max_chars: int = 1_000  # characters per input
    max_beam: int = 16
    timeout_s: float = 30.0  # a request whose decode takes longer is answered 503
    batching: bool = True
    max_batch: int = 64  # sentences decoded together
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 1024  # sentences waiting to be decoded; more are answered 503 at once


class TranslateRequest(BaseModel):
    inputs: list[str] = Field(description="texts to translate")
    beam: int | None = Field(None, ge=1, description="beam size (default: the model's)")
    nbest: int = Field(1, ge=1, description="hypotheses per input, at most beam")
    attention: bool = Field(False, description="return attention weights (output x source)")


class LimitError(Exception):
    def __init__(self, status: int, limit: str, message: str, allowed=None, got=None) -> None:
        super().__init__(message)
        self.status, self.limit, self.allowed, self.got = status, limit, allowed, got

    def response(self) -> JSONResponse:
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


@dataclass
class _Job:
    inputs: list[str]
    key: tuple[int, int, bool]  # beam, nbest, attention: jobs decoded together share these
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

    async def submit(self, inputs: list[str], key: tuple[int, int, bool]) -> list[list[Result]]:
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

    async def _decode(self, texts: list[str], key: tuple[int, int, bool]) -> list[list[Result]]:
        beam, nbest, attention = key
        self.busy = True
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.worker, lambda: self.translator.translate_full(
                    texts, beam=beam, nbest=nbest, attention=attention))
        finally:
            self.busy = False

    async def run(self) -> None:
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]
            groups: dict[tuple[int, int, bool], list[_Job]] = {}
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


def create_app(translator: Translator, opts: ServeOptions | None = None) -> FastAPI:
    opts = opts or ServeOptions()
    batcher = Batcher(translator, opts)
    info = model_info(translator)
    default_beam = min(translator.config.decode.beam, opts.max_beam)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tandem", description="seq2seq translation with attention",
                  version="1", lifespan=lifespan)
    app.state.batcher = batcher

    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes)

    @app.exception_handler(LimitError)
    async def _limit(request: Request, e: LimitError):
        return e.response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"},
                            status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}",
                             "field": where, "details": [
                                 {"field": ".".join(str(x) for x in d.get("loc", ())),
                                  "msg": d.get("msg")} for d in errors]}, status_code=422)

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

    @app.post("/v1/translate")
    async def translate(req: TranslateRequest) -> dict:
        if not req.inputs:
            raise LimitError(422, "inputs", "inputs: give at least one text", None, 0)
        if len(req.inputs) > opts.max_inputs:
            raise LimitError(413, "max_inputs", f"{len(req.inputs)} inputs in one request; the "
                             f"limit is {opts.max_inputs}", opts.max_inputs, len(req.inputs))
        for i, text in enumerate(req.inputs):
            if len(text) > opts.max_chars:
                raise LimitError(413, "max_chars", f"inputs[{i}] has {len(text)} characters; "
                                 f"the limit is {opts.max_chars}", opts.max_chars, len(text))
        beam = req.beam or default_beam
        if beam > opts.max_beam:
            raise LimitError(422, "max_beam", f"beam {beam} is above the limit "
                             f"{opts.max_beam}", opts.max_beam, beam)
        if req.nbest > beam:
            raise LimitError(422, "nbest", f"nbest {req.nbest} is above the beam size {beam}",
                             beam, req.nbest)
        if batcher.waiting + len(req.inputs) > opts.max_queue:
            raise LimitError(503, "max_queue", f"{batcher.waiting} sentences are waiting to be "
                             f"decoded; the limit is {opts.max_queue}; retry shortly",
                             opts.max_queue, batcher.waiting + len(req.inputs))
        t0 = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                batcher.submit(req.inputs, (beam, req.nbest, req.attention)), opts.timeout_s)
        except TimeoutError:
            raise LimitError(503, "timeout_s", f"decoding took longer than the "
                             f"{opts.timeout_s:g} s limit; try fewer or shorter inputs",
                             opts.timeout_s, None) from None
        except TandemError as e:
            raise LimitError(422, "input", str(e)) from None
        return {
            "outputs": [r[0].text for r in results],
            "results": [{"input": r[0].source, "src_tokens": r[0].src_tokens,
                         "unknown": r[0].unknown,
                         "hypotheses": [_hypothesis(h, req.attention) for h in r]}
                        for r in results],
            "beam": beam, "ms": round(1000 * (time.perf_counter() - t0), 1),
        }

    return app


def serve(translator: Translator, host: str, port: int, opts: ServeOptions) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable from other machines; tandem has no "
                    "authentication", host)
    log.info("serving on http://%s:%d/ (API under /v1, schema at /openapi.json)", host, port)
    uvicorn.run(create_app(translator, opts), host=host, port=port, log_level="warning")
