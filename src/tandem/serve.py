"""`tandem serve`: an HTTP API and a web page over one model of any structure (FastAPI +
uvicorn): one app factory for every structure (limits, errors, health, model info, the page)
and one batcher.

Requests that arrive within `max_wait_ms` of each other run together (dynamic batching) on
one worker thread, so the event loop stays free for health checks while a batch runs: a
translator's sentences, a classifier's texts, a tagger's sentences, a generator's prompts.
What a request is and how its items batch is the loaded model's (`LoadedModel.request_model`,
`plan`, `run`, `answer`, in each structure's module). Every limit is configurable and answered
with a JSON error that names it.

The request models are built from the decoding options themselves (`DecodeConfig`: types,
docstrings, Ranges) and the server's limits, so the OpenAPI schema (/openapi.json) states
everything the server accepts: a request the schema allows is run, and one it does not allow
is refused with a 4xx naming the field or the limit. Outside the schema are only the body size
(413), a full queue and a run over the time limit (503, retry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tandem.errors import TandemError
from tandem.requests import (
    SERVER_SIDE,
    LimitError,
    ServeOptions,
    server_defaults,
)

if TYPE_CHECKING:  # a lean install serves exports without torch, which structures imports
    from tandem.structures.base import LoadedModel

log = logging.getLogger("tandem")


def respond(e: LimitError) -> JSONResponse:
    """The JSON answer of a request over a limit (503s say when to retry)."""
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers())


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 while it is read,
    whether or not the client declared its length, before anything parses it."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refuse(self, size: int) -> JSONResponse:
        return respond(LimitError(413, "max_body_bytes", f"request body is "
                                  f"{'over ' if size < 0 else ''}{abs(size)} bytes; the limit is "
                                  f"{self.max_bytes}", self.max_bytes, abs(size)))

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


Key = Hashable
"""What a batch call needs besides the items (a LoadedModel's `plan` says: the decoding
options, attention, topk...); jobs with equal keys run together."""


@dataclass
class _Job:
    inputs: list[Any]
    key: Key
    future: asyncio.Future


class Batcher:
    """Queue of jobs (one request's items and key); one task takes the first job, waits up to
    `max_wait_ms` for more (up to `max_batch` items), and runs each group of jobs with the
    same key in one `model.run(items, key)` call on a worker thread. Jobs whose request timed
    out meanwhile are dropped unrun."""

    def __init__(self, model: LoadedModel, opts: ServeOptions) -> None:
        self.model, self.opts = model, opts
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="tandem-decode")
        self.busy = False
        self.batches = self.items = self.requests = 0
        self.waiting = 0  # items queued, not yet taken into a batch
        self._carry: _Job | None = None  # taken from the queue but too big for the last batch

    async def submit(self, inputs: list[Any], key: Key) -> list[Any]:
        """Queue `inputs` to run with `key`; their outputs, in order."""
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
        max_batch items (a job that would overflow waits for the next batch)."""
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

    async def _decode(self, items: list[Any], key: Key) -> list[Any]:
        """Run `items` with `key` on the worker thread."""
        self.busy = True
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.worker, lambda: self.model.run(items, key))
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
                self.items += len(texts)
                for j in group:
                    part, out = out[:len(j.inputs)], out[len(j.inputs):]
                    self.requests += 1
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
        self.items += len(job.inputs)
        self.requests += 1
        if not job.future.done():
            job.future.set_result(out)


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
        return respond(e)

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
                return respond(limit)
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}",
                             "field": where, "details": [
                                 {"field": ".".join(str(x) for x in d.get("loc", ())),
                                  "msg": d.get("msg")} for d in errors]}, status_code=422)


INCLUDE = "// @include "


def web_page(name: str) -> str:
    """The page `web/<name>`, with each line `// @include FILE ...` replaced by `web/FILE`
    (the script the pages share), so the server sends one self-contained page."""
    web = resources.files("tandem").joinpath("web")
    lines = []
    for line in web.joinpath(name).read_text(encoding="utf-8").split("\n"):
        if line.startswith(INCLUDE):
            line = web.joinpath(line[len(INCLUDE):].split()[0]).read_text(
                encoding="utf-8").rstrip("\n")
        lines.append(line)
    return "\n".join(lines)


def create_app(model: LoadedModel, opts: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app over a loaded model of any structure: its endpoint (/v1/translate,
    /v1/predict or /v1/generate, with the request schema the model states under `opts`'
    limits), /v1/model, /v1/health and its web page. Requests are batched alike for every
    structure (`Batcher`)."""
    opts = opts or ServeOptions()
    opts.check()
    batcher = Batcher(model, opts)
    Request = model.request_model(opts)  # noqa: N806 - a class, built here
    info = model.info()
    if "decode_defaults" in info:
        info["decode_defaults"] = asdict(server_defaults(model.decode_defaults, opts))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tandem", description=f"a {model.structure} model", version="1",
                  lifespan=lifespan)
    app.state.batcher = batcher
    install_limits(app, opts)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return web_page(model.page)

    @app.get("/v1/health")
    async def health() -> dict:
        return {"status": "ok", "busy": batcher.busy, "queued": batcher.queue.qsize(),
                "batches": batcher.batches, "items": batcher.items,
                "requests": batcher.requests}

    @app.get("/v1/model")
    async def model_info() -> dict:
        return info

    async def handle(req) -> dict:
        try:
            items, key = model.plan(req, opts)
        except TandemError as e:  # a bad input: this request's error, before it joins a batch
            raise LimitError(422, "input", str(e)) from None
        if batcher.waiting + len(items) > opts.max_queue:
            raise LimitError(503, "max_queue", f"{batcher.waiting} items are waiting to be "
                             f"run; the limit is {opts.max_queue}; retry shortly",
                             opts.max_queue, batcher.waiting + len(items))
        t0 = time.perf_counter()
        outputs = await within_limit(batcher.submit(items, key), opts, "the model")
        return model.answer(req, key, outputs, round(1000 * (time.perf_counter() - t0), 1))

    # the request model is built at run time, so the annotation is set, not written
    handle.__annotations__["req"] = Request
    app.post(model.endpoint, responses={
        400: {"description": "the body could not be read as text: a JSON error"},
        413: {"description": "a limit outside the request's options is exceeded (body size, "
                             "inputs, characters): a JSON error naming it"},
        503: {"description": "the queue is full or the model took too long: retry (see "
                             "Retry-After)"}})(handle)
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


def serve(model: LoadedModel, host: str, port: int, opts: ServeOptions) -> None:
    """Serve `model` (`create_app`) on `host`:`port` until stopped."""
    serve_app(create_app(model, opts), host, port)


__all__ = ["SERVER_SIDE", "Batcher", "LimitError", "ServeOptions", "create_app", "serve",
           "serve_app", "server_defaults"]
