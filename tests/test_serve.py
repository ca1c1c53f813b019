"""The HTTP server: answers match the Translator, limits answer with a JSON error naming the
limit, requests are batched, a slow decode gets 503 while the server keeps serving."""

import asyncio
import json
import threading
import urllib.request

import pytest
from fastapi.testclient import TestClient

from conftest import live_server
from tandem.config import DecodeConfig
from tandem.serve import Batcher, ServeOptions, create_app
from tandem.structures.translator import Result, Translator, load


def key(beam: int = 5, attention: bool = False):
    """A batcher job key: decoding options with `beam`, and whether attention is returned."""
    return (DecodeConfig(beam=beam), attention)


@pytest.fixture(scope="module")
def translator(attention_checkpoint):
    return load(attention_checkpoint)


def client(translator, **opts) -> TestClient:
    return TestClient(create_app(translator, ServeOptions(**opts)))


def test_translate_matches_the_translator_and_returns_attention(translator):
    inputs = ["abc", "hello", "xy"]
    with client(translator) as c:
        r = c.post("/v1/translate", json={"inputs": inputs, "beam": 3, "nbest": 2,
                                          "attention": True})
    assert r.status_code == 200, r.text
    body = r.json()
    want = translator.translate(inputs, beam=3, nbest=2)
    assert [[h["text"] for h in res["hypotheses"]] for res in body["results"]] == want
    assert body["outputs"] == [w[0] for w in want]
    for res, text in zip(body["results"], inputs, strict=True):
        assert res["input"] == text and res["src_tokens"] == list(text)
        for h in res["hypotheses"]:
            att = h["attention"]
            assert len(att) == len(h["tokens"])
            assert all(len(row) == len(text) for row in att)
            assert all(abs(sum(row) - 1) < 1e-2 for row in att)


def test_attention_is_left_out_unless_asked(translator):
    with client(translator) as c:
        r = c.post("/v1/translate", json={"inputs": ["abc"]})
    assert r.status_code == 200
    assert "attention" not in r.json()["results"][0]["hypotheses"][0]


def test_model_health_schema_and_page(translator):
    with client(translator) as c:
        m = c.get("/v1/model").json()
        assert m["src_vocab"] == len(translator.fields.src_vocab)
        assert m["tgt_vocab"] == len(translator.fields.tgt_vocab)
        assert m["trained_on"] == {"task": "reverse"}
        assert m["device"] == str(translator.device)
        assert m["training"]["step"] > 0 and m["model"]["conditioning"] == "attention"
        assert c.get("/v1/health").json()["status"] == "ok"
        assert "/v1/translate" in c.get("/openapi.json").json()["paths"]
        page = c.get("/")
        assert page.status_code == 200 and 'id="heatmap"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing external


@pytest.mark.parametrize("payload, opts, status, limit", [
    ({"inputs": ["a"] * 5}, {"max_inputs": 4}, 413, "max_inputs"),
    ({"inputs": ["abcdef"]}, {"max_chars": 5}, 413, "max_chars"),
    ({"inputs": ["abc"], "beam": 9}, {"max_beam": 8}, 422, "max_beam"),
    ({"inputs": ["abc"], "nbest": 9}, {"max_beam": 8}, 422, "max_beam"),
    ({"inputs": []}, {}, 422, "inputs"),
    ({"inputs": ["x" * 400]}, {"max_body_bytes": 300}, 413, "max_body_bytes"),
])
def test_each_limit_is_a_json_error_that_names_it(translator, payload, opts, status, limit):
    with client(translator, **opts) as c:
        r = c.post("/v1/translate", json=payload)
        assert r.status_code == status, r.text
        assert r.json()["limit"] == limit and r.json()["error"]
        assert c.post("/v1/translate", json={"inputs": ["ab"]}).status_code == 200


def test_malformed_requests_name_the_field(translator):
    with client(translator) as c:
        r = c.post("/v1/translate", json={"inputs": "not a list"})
        assert r.status_code == 422 and r.json()["field"] == "inputs"
        r = c.post("/v1/translate", json={"inputs": ["a"], "beam": 0})
        assert r.status_code == 422 and r.json()["field"] == "beam"
        r = c.post("/v1/translate", content=b"{not json", headers={"content-type":
                                                                     "application/json"})
        assert r.status_code == 422 and "error" in r.json()


WAIT_S = 60
"""How long a test waits for a thread or a held decode: a bound on a hang, never a verdict."""


def test_slow_decode_is_a_503_and_the_server_keeps_serving(translator, monkeypatch):
    real = translator.translate_full
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def held(texts, **kw):
        """The first decode runs only once the test releases it: slower than any limit."""
        if not started.is_set():
            started.set()
            release.wait(WAIT_S)
            try:
                return real(texts, **kw)
            finally:
                finished.set()
        return real(texts, **kw)

    monkeypatch.setattr(translator, "translate_full", held)
    opts = ServeOptions(timeout_s=0.3)
    try:
        with TestClient(create_app(translator, opts)) as c:
            # the decode is held until released, so only the time limit can answer this
            r = c.post("/v1/translate", json={"inputs": ["abc"]})
            assert r.status_code == 503 and r.json()["limit"] == "timeout_s"
            assert r.headers["retry-after"] == "1"
            assert started.is_set() and not release.is_set()  # answered while it decodes
            h = c.get("/v1/health")
            assert h.status_code == 200 and h.json()["busy"] is True
            release.set()
            assert finished.wait(WAIT_S)
            # the limit is read per request: a generous one now, so that a loaded machine
            # cannot turn the next answer into another 503
            opts.timeout_s = WAIT_S
            r = c.post("/v1/translate", json={"inputs": ["abc"]})
            assert r.status_code == 200 and r.json()["outputs"] == translator.translate(["abc"])
            assert c.get("/v1/health").json()["busy"] is False
    finally:
        release.set()  # a failed assertion must not leave the worker thread waiting


class FakeTranslator(Translator):
    """Records each decode call; the 'translation' of a text is the text reversed.

    With `hold=True` every decode sets `started` and then waits until the test sets
    `release`: a test knows that a batch is decoding, and for as long as it needs, without
    sleeping and hoping the machine keeps up."""

    device = "cpu"

    def __init__(self, hold: bool = False) -> None:  # no model: the decode is faked

        self.calls: list[tuple[list[str], dict]] = []
        self.started, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def translate_full(self, texts, **kw):
        self.calls.append((list(texts), kw))
        self.started.set()
        if not self.release.wait(WAIT_S):
            raise AssertionError(f"the test did not release the decode in {WAIT_S} s")
        return [[Result(t[::-1], list(t[::-1]), 0.0, 0.0, source=t)] for t in texts]


class FailsOnBoom(FakeTranslator):
    """Raises for any decode call that includes the text "boom"."""

    def translate_full(self, texts, **kw):
        if "boom" in texts:
            raise RuntimeError("decode failed")
        return super().translate_full(texts, **kw)


async def _concurrent(batcher: Batcher, jobs, return_exceptions: bool = False):
    """Run the batcher while all jobs are submitted at once; their answers, in order.

    Every job is queued before the batcher looks for a second one, and a job already queued
    joins the batch however short the window (max_wait_ms only bounds the wait for jobs not
    yet queued), so what is batched with what does not depend on the machine's speed."""
    task = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit(t, k) for t, k in jobs),
                                    return_exceptions=return_exceptions)
    finally:
        task.cancel()


def test_requests_arriving_together_are_decoded_in_one_batch():
    fake = FakeTranslator()
    batcher = Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=64))
    jobs = [([f"w{i}", f"v{i}"], key(5)) for i in range(8)] + [(["beam2"], key(2))]
    out = asyncio.run(_concurrent(batcher, jobs))
    assert [[r[0].text for r in res] for res in out] == [[t[::-1] for t in ts] for ts, _ in jobs]
    sizes = sorted(len(texts) for texts, _ in fake.calls)
    assert sizes == [1, 16]  # 8 requests with the same options in one call; beam 2 apart
    assert {kw["opts"].beam for _, kw in fake.calls} == {5, 2}


def test_max_batch_caps_a_batch_and_no_batching_decodes_one_by_one():
    fake = FakeTranslator()
    jobs = [([f"w{i}"] * 3, key()) for i in range(6)]
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=6)), jobs))
    assert all(len(texts) <= 6 for texts, _ in fake.calls) and len(fake.calls) == 3
    fake.calls.clear()
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(batching=False)), jobs))
    assert [len(texts) for texts, _ in fake.calls] == [3] * 6


def test_a_failing_batch_answers_its_requests_and_the_batcher_goes_on():
    out = asyncio.run(_concurrent(Batcher(FailsOnBoom(), ServeOptions(batching=False)),
                                  [(["boom"], key(1)), (["ok"], key(1))],
                                  return_exceptions=True))
    assert isinstance(out[0], RuntimeError) and out[1][0][0].text == "ko"


def test_health_answers_while_a_batch_is_decoding(translator):
    fake = FakeTranslator(hold=True)
    fake.config, fake.fields, fake.train_state = translator.config, translator.fields, {}
    fake.decode_cfg = translator.decode_cfg
    fake.model = translator.model
    answers: list[dict] = []
    try:
        with live_server(create_app(fake, ServeOptions())) as url:
            request = urllib.request.Request(url + "/v1/translate", headers={
                "Content-Type": "application/json"},
                data=json.dumps({"inputs": ["abc"]}).encode())
            worker = threading.Thread(target=lambda: answers.append(
                json.loads(urllib.request.urlopen(request, timeout=WAIT_S).read())))
            worker.start()
            assert fake.started.wait(WAIT_S), "the decode never started"
            # the decode is held: health must answer now, from the event loop
            health = json.loads(urllib.request.urlopen(url + "/v1/health",
                                                       timeout=WAIT_S).read())
            assert health["busy"] is True and health["batches"] == 0
            assert worker.is_alive() and not answers
            fake.release.set()
            worker.join(WAIT_S)
            assert answers and answers[0]["outputs"] == ["cba"]
            health = json.loads(urllib.request.urlopen(url + "/v1/health").read())
            assert health["busy"] is False and health["batches"] == 1
    finally:
        fake.release.set()  # a failed assertion must not leave the decode waiting
    assert len(fake.calls) == 1


def test_odd_inputs_get_answers_not_errors(translator):
    odd = ["", "   ", "ab\u0000\ufffd☃\x1b[31m", "x" * 300, "abc"]
    with client(translator, max_chars=1000) as c:
        r = c.post("/v1/translate", json={"inputs": odd})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["input"] for x in results] == odd
        assert results[0]["hypotheses"][0]["text"] == "" == results[1]["hypotheses"][0]["text"]
        assert "☃" in results[2]["unknown"]
        assert len(results[3]["src_tokens"]) == translator.config.data.max_src_len  # truncated
        assert c.get("/v1/health").json()["status"] == "ok"


def test_a_chunked_body_over_the_limit_is_refused_while_read(translator):
    def chunks():
        yield b'{"inputs": ["'
        for _ in range(50):
            yield b"x" * 100
        yield b'"]}'

    with client(translator, max_body_bytes=1000, max_chars=10_000) as c:
        r = c.post("/v1/translate", content=chunks(), headers={"content-type":
                                                                "application/json"})
        assert r.status_code == 413 and r.json()["limit"] == "max_body_bytes"
        small = c.post("/v1/translate", content=iter([b'{"inputs": ', b'["abc"]}']),
                       headers={"content-type": "application/json"})
        assert small.status_code == 200, small.text


def test_a_full_queue_is_answered_503_at_once(translator):
    with client(translator, max_queue=2) as c:
        r = c.post("/v1/translate", json={"inputs": ["a", "b", "c"]})
        assert r.status_code == 503 and r.json()["limit"] == "max_queue"
        assert c.post("/v1/translate", json={"inputs": ["a", "b"]}).status_code == 200


def test_one_bad_request_in_a_batch_fails_alone():
    jobs = [(["ok1"], key()), (["boom"], key()), (["ok2"], key())]
    first, bad, last = asyncio.run(_concurrent(
        Batcher(FailsOnBoom(), ServeOptions(max_wait_ms=50)), jobs, return_exceptions=True))
    assert isinstance(bad, RuntimeError)
    assert first[0][0].text == "1ko" and last[0][0].text == "2ko"


def test_max_batch_is_never_exceeded():
    fake = FakeTranslator()
    jobs = [([f"w{i}"] * 5, key()) for i in range(5)]
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=12)), jobs))
    assert max(len(texts) for texts, _ in fake.calls) <= 12
    assert sum(len(texts) for texts, _ in fake.calls) == 25


@pytest.mark.parametrize("wait_ms, calls", [(0, [["a"], ["b"]]), (60_000, [["a", "b"]])])
def test_max_wait_ms_is_how_long_a_batch_waits_for_company(wait_ms, calls):
    """A job queued after the batcher took the first one joins that batch only while the
    window is open: with none it is decoded next; with a window longer than any test it
    joins, and the batch closes because max_batch (2) is full, not because time passed."""
    fake = FakeTranslator()

    async def scenario():
        batcher = Batcher(fake, ServeOptions(max_wait_ms=wait_ms, max_batch=2))
        task = asyncio.create_task(batcher.run())
        try:
            a = asyncio.create_task(batcher.submit(["a"], key()))
            for _ in range(100):  # loop turns, not seconds: until the batcher has taken "a"
                await asyncio.sleep(0)
                if not batcher.waiting:
                    break
            assert batcher.waiting == 0 and batcher.queue.empty()
            b = asyncio.create_task(batcher.submit(["b"], key()))
            return await asyncio.gather(a, b)
        finally:
            task.cancel()

    a, b = asyncio.run(scenario())
    assert (a[0][0].text, b[0][0].text) == ("a", "b")
    assert [texts for texts, _ in fake.calls] == calls


# --- the server's flags, its warning, its 500 answer, timed-out jobs ----------------------


@pytest.mark.parametrize("flags, message", [
    (["--max-beam", "0"], "--max-beam: expected an integer >= 1, got 0"),
    (["--max-inputs", "0"], "--max-inputs: expected an integer >= 1, got 0"),
    (["--max-chars", "-3"], "--max-chars: expected an integer >= 1, got -3"),
    (["--max-body-bytes", "0"], "--max-body-bytes: expected an integer >= 1, got 0"),
    (["--max-batch", "0"], "--max-batch: expected an integer >= 1, got 0"),
    (["--max-queue", "0"], "--max-queue: expected an integer >= 1, got 0"),
    (["--timeout", "0"], "--timeout: expected seconds > 0, got 0.0"),
    (["--timeout", "inf"], "--timeout: expected seconds > 0, got inf"),
    (["--max-wait-ms", "-1"], "--max-wait-ms: expected milliseconds >= 0, got -1.0"),
])
def test_serve_refuses_impossible_flags_before_loading_the_model(tmp_path, flags, message):
    from tandem.cli import build_parser
    from tandem.errors import ConfigError

    a = build_parser().parse_args(["serve", "--model", str(tmp_path / "absent.pt"), *flags])
    with pytest.raises(ConfigError, match="^" + message.replace("+", r"\+") + "$"):
        a.func(a)  # the model file does not exist: the flags were checked first


# Each limit flag's ServeOptions field is honoured by a test above (limits, queue, time limit,
# batching) or in test_serve_structures.py (max_new_tokens); this test proves that each flag
# reaches its field, so the two together fail if `tandem serve` ignored the flag.
@pytest.mark.pins("serve --model", "serve --host", "serve --port", "serve --beam",
                  "serve --allow-unk", "serve --max-beam", "serve --max-body-bytes",
                  "serve --max-inputs", "serve --max-chars", "serve --timeout",
                  "serve --max-batch", "serve --max-wait-ms", "serve --max-queue",
                  "serve --no-batching", "serve --max-new-tokens")
def test_serve_decoding_flags_set_the_servers_defaults(attention_checkpoint, monkeypatch):
    import tandem.serve
    from tandem.cli import build_parser

    served = {}
    monkeypatch.setattr(tandem.serve, "serve", lambda tr, host, port, opts: served.update(
        tr=tr, host=host, port=port, opts=opts))
    # every value differs from the flag's default
    a = build_parser().parse_args([
        "serve", "--model", str(attention_checkpoint), "--beam", "2", "--no-allow-unk",
        "--max-beam", "4", "--host", "127.0.0.2", "--port", "8123", "--max-body-bytes", "4321",
        "--max-inputs", "3", "--max-chars", "99", "--timeout", "12.5", "--max-batch", "9",
        "--max-wait-ms", "3.5", "--max-queue", "77", "--no-batching", "--max-new-tokens", "55"])
    assert a.func(a) == 0
    tr, opts = served["tr"], served["opts"]
    assert (served["host"], served["port"]) == ("127.0.0.2", 8123)
    assert opts == ServeOptions(max_body_bytes=4321, max_inputs=3, max_chars=99, max_beam=4,
                                timeout_s=12.5, batching=False, max_batch=9, max_wait_ms=3.5,
                                max_queue=77, max_new_tokens=55)
    assert (tr.decode_cfg.beam, tr.decode_cfg.allow_unk) == (2, False)
    assert load(attention_checkpoint).decode_cfg.beam != 2  # so the flag, not the model, says 2
    with TestClient(create_app(tr, opts)) as c:
        r = c.post("/v1/translate", json={"inputs": ["abc", "hello"]}).json()
        assert r["beam"] == 2
        # the model served is the one --model names: its own translator agrees
        assert r["outputs"] == load(attention_checkpoint).translate(["abc", "hello"], beam=2)
        r = c.post("/v1/translate", json={"inputs": ["abc"], "beam": 5})
        assert r.status_code == 422 and r.json()["limit"] == "max_beam"


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("192.168.1.5", True),
                                          ("127.0.0.1", False), ("localhost", False),
                                          ("::1", False)])
def test_serving_beyond_loopback_warns(translator, monkeypatch, tandem_log, host, warned):
    import uvicorn

    from tandem.serve import serve

    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append(kw))
    serve(translator, host, 8765, ServeOptions())
    assert ran == [{"host": host, "port": 8765, "log_level": "warning"}]
    warnings = [r.getMessage() for r in tandem_log if r.levelname == "WARNING"]
    assert bool(warnings) == warned, warnings
    if warned:
        assert warnings == [f"serving on {host}: reachable from other machines; tandem has no "
                            "authentication"]


class Explodes(FakeTranslator):
    """A decode that fails with an error no user caused."""

    def translate_full(self, texts, **kw):
        raise RuntimeError("kernel fell over")


def test_an_unexpected_error_is_a_500_json_answer_and_the_server_goes_on(translator,
                                                                         tandem_log):
    fake = Explodes()
    fake.config, fake.fields, fake.train_state = translator.config, translator.fields, {}
    fake.decode_cfg, fake.model = translator.decode_cfg, translator.model
    with TestClient(create_app(fake, ServeOptions()), raise_server_exceptions=False) as c:
        r = c.post("/v1/translate", json={"inputs": ["abc"]})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error: RuntimeError: kernel fell over"}
        assert c.get("/v1/health").json()["status"] == "ok"
    assert any(r.getMessage() == "request failed" and r.exc_info for r in tandem_log)


def test_a_job_whose_request_timed_out_is_dropped_unrun():
    fake = FakeTranslator(hold=True)

    async def scenario():
        batcher = Batcher(fake, ServeOptions(max_wait_ms=20, max_batch=2))
        task = asyncio.create_task(batcher.run())
        try:
            first = asyncio.create_task(batcher.submit(["first"], key()))
            # once its decode has started, its batch is closed: the rest queue behind it
            assert await asyncio.to_thread(fake.started.wait, WAIT_S)
            queued = [asyncio.create_task(batcher.submit([text], key()))
                      for text in ("ok1", "gave up", "ok2", "gave up too", "ok3")]
            await asyncio.sleep(0)  # each task runs to its wait: all five jobs are queued
            assert batcher.waiting == 5 and not first.done()
            # two requests give up while the decode is held (the server's time limit,
            # asyncio.wait_for, cancels the wait the same way)
            queued[1].cancel()
            queued[3].cancel()
            fake.release.set()
            return await asyncio.gather(first, *queued, return_exceptions=True)
        finally:
            fake.release.set()
            task.cancel()

    first, ok1, gave_up, ok2, gave_up_too, ok3 = asyncio.run(scenario())
    assert [first[0][0].text, ok1[0][0].text, ok2[0][0].text, ok3[0][0].text] == [
        "tsrif", "1ko", "2ko", "3ko"]
    assert isinstance(gave_up, asyncio.CancelledError)
    assert isinstance(gave_up_too, asyncio.CancelledError)
    # neither ran: "gave up" was passed over while ok1's batch was gathered, taking no room
    # in it (max_batch 2); "gave up too" headed the next batch and was dropped from it
    assert [texts for texts, _ in fake.calls] == [["first"], ["ok1", "ok2"], ["ok3"]]
