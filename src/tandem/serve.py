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
        return JSONResponse({"error": str(self), "limit": self.limit, "allowed": self.allowed,
                             "got": self.got}, status_code=self.status)


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

    async def submit(self, inputs: list[str], key: tuple[int, int, bool]) -> list[list[Result]]:
        job = _Job(inputs, key, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def _gather(self) -> list[_Job]:
        jobs = [await self.queue.get()]
        if not self.opts.batching:
            return jobs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.max_wait_ms / 1000
        size = len(jobs[0].inputs)
        while size < self.opts.max_batch:
            try:
                job = self.queue.get_nowait() if loop.time() >= deadline else \
                    await asyncio.wait_for(self.queue.get(), deadline - loop.time())
            except (asyncio.QueueEmpty, TimeoutError):
                break
            jobs.append(job)
            size += len(job.inputs)
        return jobs

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]
            groups: dict[tuple[int, int, bool], list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for (beam, nbest, attention), group in groups.items():
                texts = [t for j in group for t in j.inputs]
                self.busy = True
                try:
                    out = await loop.run_in_executor(
                        self.worker, lambda t=texts, b=beam, n=nbest, a=attention:
                        self.translator.translate_full(t, beam=b, nbest=n, attention=a))
                except Exception as e:  # one bad batch answers its requests, not the server
                    for j in group:
                        if not j.future.done():
                            j.future.set_exception(e)
                    continue
                finally:
                    self.busy = False
                self.batches += 1
                self.sentences += len(texts)
                for j in group:
                    part, out = out[:len(j.inputs)], out[len(j.inputs):]
                    if not j.future.done():
                        j.future.set_result(part)


def _hypothesis(r: Result, attention: bool) -> dict:
    d = {"text": r.text, "tokens": r.tokens, "score": round(r.score, 4),
         "norm_score": round(r.norm_score, 4)}
    if attention and r.attention is not None:
        d["attention"] = [[round(w, 4) for w in row] for row in r.attention[:len(r.tokens)]]
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
    }


def create_app(translator: Translator, opts: ServeOptions | None = None) -> FastAPI:
    opts = opts or ServeOptions()
    batcher = Batcher(translator, opts)
    info = model_info(translator)
    default_beam = translator.config.decode.beam

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tandem", description="seq2seq translation with attention",
                  version="1", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_body_bytes:
            return LimitError(413, "max_body_bytes", f"request body is {declared} bytes; the "
                              f"limit is {opts.max_body_bytes}", opts.max_body_bytes,
                              int(declared)).response()
        return await call_next(request)

    @app.exception_handler(LimitError)
    async def _limit(request: Request, e: LimitError):
        return e.response()

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
    async def translate(req: TranslateRequest, request: Request) -> dict:
        size = len(await request.body())  # also covers bodies sent without a length
        if size > opts.max_body_bytes:
            raise LimitError(413, "max_body_bytes", f"request body is {size} bytes; the limit "
                             f"is {opts.max_body_bytes}", opts.max_body_bytes, size)
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
