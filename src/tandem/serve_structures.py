"""`tandem serve` over a model of the other structures: a classifier or tagger answers
POST /v1/predict, a language model or conditional generator POST /v1/generate; GET /v1/model
says which, and the web page (`web/structures.html`) shows label probabilities, per-word tags
or generated text to match.

The limits and error answers are the translation server's (`tandem.serve`: body size, inputs
per request, characters per input, beam, time; every refusal a JSON error naming its field or
limit). Each request is one batch, run on one worker thread so the event loop stays free for
health checks.

    POST /v1/predict   {"inputs": ["a gorgeous film"], "topk": 2}
        classify -> {"results": [{"input": ..., "labels": [{"label": "positive",
                     "prob": 0.93}, ...]}]}
        tag      -> {"results": [{"input": ..., "words": [...], "tags": [...]}]}
    POST /v1/generate  {"inputs": ["ROMEO:"], "n": 1, "max_len": 200, "temperature": 0.8,
                        "top_k": 0, "seed": 1, "beam": 1}
        lm: inputs are prompts ("" = a line break); generate: inputs are labels
        -> {"outputs": [...], "results": [{"input": ..., "outputs": [n texts]}]}
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from tandem.predict import GENERATE_MAX_LEN, Predictor
from tandem.serve import LimitError, ServeOptions, install_limits, within_limit


@dataclass
class Work:
    """The one worker thread of a structure server and the requests it has run."""

    pool: ThreadPoolExecutor
    busy: bool = False
    requests: int = 0


def structure_info(pred: Predictor) -> dict:
    """What /v1/model answers: the structure, its labels or tags, sizes, training, device."""
    cfg = pred.config
    data = cfg.data
    source = {k: v for k, v in (("corpus", data.corpus), ("train", data.train))
              if v is not None}
    return {
        "structure": pred.structure,
        "model": asdict(cfg.model),
        "parameters": sum(p.numel() for p in pred.model.parameters()),
        "labels": pred.labels,
        "vocab": len(pred.fields.vocab),
        "num_features": pred.fields.num_features,
        "trained_on": source,
        "training": {**pred.train_state, "valid_metric": cfg.train.valid_metric},
        "device": str(pred.device),
    }


def _inputs_field(opts: ServeOptions, min_chars: int):
    text = Annotated[str, StringConstraints(min_length=min_chars, max_length=opts.max_chars)]
    return (list[text], Field(min_length=1, max_length=opts.max_inputs))


def predict_request(pred: Predictor, opts: ServeOptions) -> type[BaseModel]:
    """The /v1/predict body: inputs (texts to classify, or sentences to tag, split on
    whitespace), and for a classifier topk (1 .. the number of labels)."""
    fields = {"inputs": _inputs_field(opts, 1)}
    if pred.structure == "classify":
        fields["topk"] = (int, Field(1, ge=1, le=len(pred.labels),
                                     description="the most likely labels to return"))
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"), **fields)


def generate_request(pred: Predictor, opts: ServeOptions) -> type[BaseModel]:
    """The /v1/generate body: inputs (prompts of a language model, labels of a generator),
    n outputs per input, max_len tokens each, and the sampling or search options."""
    dec = pred.config.decode
    what = ("prompts to continue ('' = from a line break)" if pred.structure == "lm"
            else f"labels to write from: {', '.join(pred.labels[:20])}")
    inputs = _inputs_field(opts, 0 if pred.structure == "lm" else 1)
    return create_model(
        "GenerateRequest", __config__=ConfigDict(extra="forbid"),
        inputs=(inputs[0], Field(min_length=1, max_length=opts.max_inputs, description=what)),
        n=(int, Field(1, ge=1, le=opts.max_inputs, description="outputs per input")),
        max_len=(int, Field(GENERATE_MAX_LEN, ge=1, le=opts.max_new_tokens,
                            description="tokens to write at most")),
        temperature=(float, Field(dec.temperature, ge=0.01, le=100.0)),
        top_k=(int, Field(dec.top_k, ge=0, description="sample from the K most likely tokens "
                          "(0 = all)")),
        beam=(int, Field(1, ge=1, le=opts.max_beam, description="1 = sample (or greedy with "
                         "sample false); above 1 = beam search")),
        sample=(bool, Field(True, description="draw tokens; false = the most likely")),
        seed=(int | None, Field(None, description="seed of the sampling (repeatable "
                                "outputs)")),
    )


def create_structure_app(pred: Predictor, opts: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app over a classifier, tagger, language model or generator: /v1/predict
    or /v1/generate, /v1/model, /v1/health and the web page."""
    opts = opts or ServeOptions()
    opts.check()
    work = Work(ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-model"))
    info = structure_info(pred)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        work.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tandem", description=f"a {pred.structure} model", version="1",
                  lifespan=lifespan)
    install_limits(app, opts)

    async def run(fn):
        """fn() on the worker thread, within the time limit; a TandemError is a 422."""
        loop = asyncio.get_running_loop()

        def job():
            work.busy = True
            try:
                return fn()
            finally:
                work.busy = False
                work.requests += 1

        return await within_limit(loop.run_in_executor(work.pool, job), opts, "the model")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("tandem").joinpath("web/structures.html").read_text(
            encoding="utf-8")

    @app.get("/v1/health")
    async def health() -> dict:
        return {"status": "ok", "busy": work.busy, "requests": work.requests}

    @app.get("/v1/model")
    async def model() -> dict:
        return info

    if pred.structure in ("classify", "tag"):
        async def predict(req) -> dict:
            t0 = time.perf_counter()
            if pred.structure == "classify":
                tops = await run(lambda: pred.predict(req.inputs, req.topk))
                results = [{"input": x, "labels": [{"label": lab, "prob": round(p, 6)}
                                                   for lab, p in top]}
                           for x, top in zip(req.inputs, tops, strict=True)]
            else:
                tagged = await run(lambda: pred.tag(req.inputs))
                results = [{"input": x, "words": [w for w, _ in pairs],
                            "tags": [t for _, t in pairs]}
                           for x, pairs in zip(req.inputs, tagged, strict=True)]
            return {"results": results, "ms": round(1000 * (time.perf_counter() - t0), 1)}

        predict.__annotations__["req"] = predict_request(pred, opts)
        app.post("/v1/predict")(predict)
    else:
        async def generate(req) -> dict:
            total = len(req.inputs) * req.n
            if total > opts.max_inputs:
                raise LimitError(413, "max_inputs", f"{len(req.inputs)} inputs x n {req.n} = "
                                 f"{total} outputs in one request; the limit is "
                                 f"{opts.max_inputs}", opts.max_inputs, total)
            options = {"temperature": req.temperature, "top_k": req.top_k, "beam": req.beam,
                       "sample": req.sample and req.beam == 1}
            t0 = time.perf_counter()
            texts = await run(lambda: pred.generate(req.inputs, n=req.n, max_len=req.max_len,
                                                    seed=req.seed, **options))
            results = [{"input": x, "outputs": texts[i * req.n:(i + 1) * req.n]}
                       for i, x in enumerate(req.inputs)]
            return {"outputs": texts, "results": results,
                    "ms": round(1000 * (time.perf_counter() - t0), 1)}

        generate.__annotations__["req"] = generate_request(pred, opts)
        app.post("/v1/generate")(generate)
    return app
