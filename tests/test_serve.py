"""The HTTP server: answers match the Translator, limits answer with a JSON error naming the
limit, requests are batched, a slow decode gets 503 while the server keeps serving."""

import asyncio
import json
import threading
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient

from conftest import live_server
from tandem.decode.translator import Result, load
from tandem.serve import Batcher, ServeOptions, create_app


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
    ({"inputs": ["abc"], "beam": 2, "nbest": 3}, {}, 422, "nbest"),
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


def test_slow_decode_is_a_503_and_the_server_keeps_serving(translator, monkeypatch):
    real = translator.translate_full
    slow = {"on": True}

    def maybe_slow(texts, **kw):
        if slow["on"]:
            time.sleep(3.0)
        return real(texts, **kw)

    monkeypatch.setattr(translator, "translate_full", maybe_slow)
    with client(translator, timeout_s=0.3) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/translate", json={"inputs": ["abc"]})
        assert r.status_code == 503 and r.json()["limit"] == "timeout_s"
        assert r.headers["retry-after"]
        assert time.perf_counter() - t0 < 2.5  # answered at the limit, not after the decode
        h = c.get("/v1/health")  # answers while the worker is still busy
        assert h.status_code == 200 and h.json()["decoding"] is True
        slow["on"] = False
        time.sleep(3.0)
        assert c.post("/v1/translate", json={"inputs": ["abc"]}).status_code == 200


class FakeTranslator:
    """Records each decode call; the 'translation' of a text is the text reversed."""

    device = "cpu"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[list[str], dict]] = []
        self.delay = delay

    def translate_full(self, texts, **kw):
        self.calls.append((list(texts), kw))
        time.sleep(self.delay)
        return [[Result(t[::-1], list(t[::-1]), 0.0, 0.0, source=t)] for t in texts]


class FailsOnBoom(FakeTranslator):
    """Raises for any decode call that includes the text "boom"."""

    def translate_full(self, texts, **kw):
        if "boom" in texts:
            raise RuntimeError("decode failed")
        return super().translate_full(texts, **kw)


async def _concurrent(batcher: Batcher, jobs, return_exceptions: bool = False):
    """Run the batcher while all jobs are submitted at once; their answers, in order."""
    task = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit(t, k) for t, k in jobs),
                                    return_exceptions=return_exceptions)
    finally:
        task.cancel()


def test_requests_arriving_together_are_decoded_in_one_batch():
    fake = FakeTranslator()
    batcher = Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=64))
    jobs = [([f"w{i}", f"v{i}"], (5, 1, False)) for i in range(8)] + [(["beam2"], (2, 1, False))]
    out = asyncio.run(_concurrent(batcher, jobs))
    assert [[r[0].text for r in res] for res in out] == [[t[::-1] for t in ts] for ts, _ in jobs]
    sizes = sorted(len(texts) for texts, _ in fake.calls)
    assert sizes == [1, 16]  # 8 requests with the same options in one call; beam 2 apart
    assert {kw["beam"] for _, kw in fake.calls} == {5, 2}


def test_max_batch_caps_a_batch_and_no_batching_decodes_one_by_one():
    fake = FakeTranslator()
    jobs = [([f"w{i}"] * 3, (5, 1, False)) for i in range(6)]
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=6)), jobs))
    assert all(len(texts) <= 6 for texts, _ in fake.calls) and len(fake.calls) == 3
    fake.calls.clear()
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(batching=False)), jobs))
    assert [len(texts) for texts, _ in fake.calls] == [3] * 6


def test_a_failing_batch_answers_its_requests_and_the_batcher_goes_on():
    out = asyncio.run(_concurrent(Batcher(FailsOnBoom(), ServeOptions(batching=False)),
                                  [(["boom"], (1, 1, False)), (["ok"], (1, 1, False))],
                                  return_exceptions=True))
    assert isinstance(out[0], RuntimeError) and out[1][0][0].text == "ko"


def test_health_answers_while_a_batch_is_decoding(translator):
    fake = FakeTranslator(delay=3.0)
    fake.config, fake.fields, fake.train_state = translator.config, translator.fields, {}
    fake.model = translator.model
    with live_server(create_app(fake, ServeOptions())) as url:
        request = urllib.request.Request(url + "/v1/translate", headers={
            "Content-Type": "application/json"}, data=json.dumps({"inputs": ["abc"]}).encode())
        worker = threading.Thread(target=lambda: urllib.request.urlopen(request).read())
        worker.start()
        deadline, seen = time.time() + 2.5, False
        while time.time() < deadline and not seen:  # health answers during the 3 s decode
            seen = json.loads(urllib.request.urlopen(url + "/v1/health").read())["decoding"]
            time.sleep(0.05)
        assert seen and worker.is_alive()
        worker.join()
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
    jobs = [(["ok1"], (5, 1, False)), (["boom"], (5, 1, False)), (["ok2"], (5, 1, False))]
    first, bad, last = asyncio.run(_concurrent(
        Batcher(FailsOnBoom(), ServeOptions(max_wait_ms=50)), jobs, return_exceptions=True))
    assert isinstance(bad, RuntimeError)
    assert first[0][0].text == "1ko" and last[0][0].text == "2ko"


def test_max_batch_is_never_exceeded():
    fake = FakeTranslator()
    jobs = [([f"w{i}"] * 5, (5, 1, False)) for i in range(5)]
    asyncio.run(_concurrent(Batcher(fake, ServeOptions(max_wait_ms=50, max_batch=12)), jobs))
    assert max(len(texts) for texts, _ in fake.calls) <= 12
    assert sum(len(texts) for texts, _ in fake.calls) == 25
