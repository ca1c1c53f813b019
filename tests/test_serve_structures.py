"""`tandem serve` over the structures beyond seq2seq: /v1/predict answers what the classifier
and tagger predictors answer, /v1/generate what the language model and generator write (the
same seed, the same text); limits and bad fields answer with a JSON error naming them; the
web page shows probabilities, tags or generated text in a real browser."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import tandem
from conftest import live_server
from tandem.serve import ServeOptions, create_app
from test_web import CHROMIUM, _browser_or_skip


def _client(path, **opts) -> tuple[TestClient, object]:
    pred = tandem.load(path)
    return TestClient(create_app(pred, ServeOptions(**opts))), pred


def test_model_info_names_the_structure_and_labels(structure_models):
    for s, path in structure_models.items():
        c, pred = _client(path)
        with c:
            info = c.get("/v1/model").json()
        assert info["structure"] == s and info["labels"] == pred.labels
        assert info["parameters"] == sum(p.numel() for p in pred.model.parameters())


def test_predict_classify_matches_the_predictor(structure_models):
    c, pred = _client(structure_models["classify"])
    texts = ["abxcd", "abcd", "fxx"]
    with c:
        r = c.post("/v1/predict", json={"inputs": texts, "topk": 2})
    assert r.status_code == 200, r.text
    want = pred.predict(texts, 2)
    got = [[(x["label"], x["prob"]) for x in res["labels"]] for res in r.json()["results"]]
    for g, w in zip(got, want, strict=True):
        assert [lab for lab, _ in g] == [lab for lab, _ in w]
        assert [p for _, p in g] == pytest.approx([p for _, p in w], abs=1e-5)


def test_predict_tag_matches_the_predictor(structure_models):
    c, pred = _client(structure_models["tag"])
    with c:
        r = c.post("/v1/predict", json={"inputs": ["ab cda ffb", "e"]})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["words"] == ["ab", "cda", "ffb"]
    assert [list(zip(x["words"], x["tags"], strict=True)) for x in res] == \
        [[tuple(p) for p in s] for s in pred.tag(["ab cda ffb", "e"])]


@pytest.mark.parametrize("structure, bodies", [
    ("classify", [{"inputs": ["abxcd"], "topk": 2}, {"inputs": ["abcd", "fxx"], "topk": 2},
                  {"inputs": ["xx"], "topk": 1}]),
    ("tag", [{"inputs": ["ab cda"]}, {"inputs": ["e", "ffb ab"]}, {"inputs": ["cd"]}]),
    ("generate", [{"inputs": ["A"], "n": 2}, {"inputs": ["B"], "n": 2, "seed": 5},
                  {"inputs": ["A", "B"]}])])
def test_concurrent_requests_share_a_batch(structure_models, structure, bodies):
    """Requests queued together run in one forward pass when their options agree (a seeded
    generate request runs alone, so its draws never depend on other requests), and each
    gets the answer it would get alone."""
    import asyncio

    import httpx

    pred = tandem.load(structure_models[structure])
    alone = []
    with TestClient(create_app(pred, ServeOptions(batching=False))) as c:
        alone = [c.post(pred.endpoint, json=b).json() for b in bodies]
    calls: list[int] = []
    real = pred.run
    pred.run = lambda items, key: calls.append(len(items)) or real(items, key)
    # max_batch = every item sent, so the batch closes when the last request is queued (the
    # long max_wait_ms only bounds a hang)
    total = sum(len(b["inputs"]) * b.get("n", 1) for b in bodies)
    app = create_app(pred, ServeOptions(max_wait_ms=60_000, max_batch=total))

    async def together():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*(c.post(pred.endpoint, json=b) for b in bodies))

    answers = [r.json() for r in asyncio.run(together())]
    for got, want in zip(answers, alone, strict=True):
        got.pop("ms"), want.pop("ms")
        if structure != "generate" or "seed" in want:  # unseeded draws differ run to run
            assert got == want
    want_calls = {"classify": [3, 1], "tag": [4], "generate": [4, 2]}[structure]
    assert sorted(calls) == sorted(want_calls)


def test_generate_requests_start_from_the_servers_defaults(structure_models):
    """Server-side defaults (`tandem serve --temperature ... --beam ...`) are what a request
    without those fields, or with them null, runs with; the beam is cut to max_beam as the
    schema states; a seed outside torch's range is refused by the schema."""
    pred = tandem.load(structure_models["lm"])
    pred.set_defaults(temperature=0.5, top_k=3, beam=20)
    seen = []
    real = pred.write
    pred.write = lambda items, opts, seed: seen.append(opts) or real(items, opts, seed)
    app = create_app(pred, ServeOptions(max_beam=4))
    fields = app.openapi()["components"]["schemas"]["GenerateRequest"]["properties"]
    assert fields["beam"]["default"] == 4 and fields["temperature"]["default"] == 0.5
    with TestClient(app) as c:
        plain = c.post("/v1/generate", json={"inputs": ["a"], "max_len": 4})
        nulls = c.post("/v1/generate", json={"inputs": ["a"], "max_len": 4,
                                             "temperature": None, "beam": None})
        huge = c.post("/v1/generate", json={"inputs": ["a"], "seed": 2**64})
    assert plain.status_code == nulls.status_code == 200, (plain.text, nulls.text)
    assert [(o.beam, o.temperature, o.top_k, o.sample) for o in seen] == [(4, 0.5, 3, False)] * 2
    assert huge.status_code == 422 and huge.json()["field"] == "seed"


@pytest.mark.parametrize("structure, bad, good", [
    ("generate", {"inputs": ["A", "Klingon"]}, {"inputs": ["B"]}),
    ("tag", {"inputs": ["ab cd", "  "]}, {"inputs": ["ab"]})])
def test_a_bad_input_is_refused_before_it_joins_a_batch(structure_models, structure, bad, good):
    """An input the model cannot take is this request's 422, found before the request is
    queued: the good request beside it runs once, in a batch of its own items."""
    pred = tandem.load(structure_models[structure])
    calls: list[list[str]] = []
    real = pred.run
    pred.run = lambda items, key: calls.append(list(items)) or real(items, key)
    with TestClient(create_app(pred, ServeOptions())) as c:
        refused = c.post(pred.endpoint, json=bad)
        ok = c.post(pred.endpoint, json=good)
    assert refused.status_code == 422 and refused.json()["limit"] == "input"
    assert "input 2" in refused.json()["error"] or "Klingon" in refused.json()["error"]
    assert ok.status_code == 200 and calls == [good["inputs"]]


@pytest.mark.parametrize("structure,inputs", [("lm", ["the ", ""]), ("generate", ["A", "B"])])
def test_generate_is_seeded_and_matches_the_predictor(structure_models, structure, inputs):
    c, pred = _client(structure_models[structure])
    body = {"inputs": inputs, "n": 2, "max_len": 20, "seed": 3, "temperature": 0.7}
    with c:
        a = c.post("/v1/generate", json=body).json()
        b = c.post("/v1/generate", json=body).json()
    assert a["outputs"] == b["outputs"] and len(a["outputs"]) == 4
    assert a["outputs"] == pred.generate(inputs, n=2, max_len=20, seed=3, temperature=0.7)
    assert [r["outputs"] for r in a["results"]] == [a["outputs"][:2], a["outputs"][2:]]


def test_limits_and_bad_fields_are_named(structure_models):
    c, _ = _client(structure_models["generate"], max_inputs=4, max_new_tokens=50)
    with c:
        r = c.post("/v1/generate", json={"inputs": ["A", "B"], "n": 3})
        assert r.status_code == 413 and r.json()["limit"] == "max_inputs"
        r = c.post("/v1/generate", json={"inputs": ["A"], "max_len": 51})
        assert r.status_code == 422 and r.json()["field"] == "max_len"
        r = c.post("/v1/generate", json={"inputs": ["C"]})
        assert r.status_code == 422 and "'C'" in r.json()["error"]
        r = c.post("/v1/generate", json={"inputs": ["A"], "beam": 2, "bogus": 1})
        assert r.status_code == 422 and r.json()["field"] == "bogus"
    c, _ = _client(structure_models["classify"], max_chars=10)
    with c:
        r = c.post("/v1/predict", json={"inputs": ["x" * 11]})
        assert r.status_code == 413 and r.json()["limit"] == "max_chars"
        r = c.post("/v1/predict", json={"inputs": ["abc"], "topk": 3})  # 2 labels
        assert r.status_code == 422 and r.json()["field"] == "topk"
        assert c.post("/v1/generate", json={"inputs": ["abc"]}).status_code == 404


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_each_structure_in_a_browser(structure_models):
    pw = _browser_or_skip()
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for s, path in structure_models.items():
                pred = tandem.load(path)
                with live_server(create_app(pred, ServeOptions())) as url:
                    page = browser.new_page()
                    external: list[str] = []
                    page.on("request", lambda r, url=url, seen=external:
                            None if r.url.startswith(url) else seen.append(r.url))
                    page.goto(url + "/")
                    page.wait_for_selector("#form:not([hidden])")
                    assert s in page.inner_text("#model")
                    _drive(page, s, pred)
                    assert external == []
                    page.close()
        finally:
            browser.close()


def _drive(page, structure, pred) -> None:
    if structure == "classify":
        page.fill("#source", "abxcd\nabcd")
        page.fill("#topk", "2")
        page.click("#run")
        page.wait_for_selector(".item")
        items = page.locator(".item")
        assert items.count() == 2
        want = pred.predict(["abxcd", "abcd"], 2)
        labels = items.nth(0).locator(".label").all_inner_texts()
        assert labels == [lab for lab, _ in want[0]]
        probs = [float(x) for x in items.nth(1).locator(".prob").all_inner_texts()]
        assert probs == pytest.approx([p for _, p in want[1]], abs=1e-3)
    elif structure == "tag":
        page.fill("#source", "ab cda ffb")
        page.click("#run")
        page.wait_for_selector(".tok")
        assert page.locator(".tok .word").all_inner_texts() == ["ab", "cda", "ffb"]
        assert page.locator(".tok .tag").all_inner_texts() == \
            [t for _, t in pred.tag(["ab cda ffb"])[0]]
    else:
        if structure == "lm":
            page.fill("#source", "the ")
        else:
            page.select_option("#label", "B")
        page.fill("#n", "2")
        page.fill("#max_len", "15")
        page.fill("#seed", "4")
        page.fill("#temperature", "0.8")
        page.click("#run")
        page.wait_for_selector(".item")
        got = page.locator(".item .output").all_inner_texts()
        inp = "the " if structure == "lm" else "B"
        assert got == pred.generate([inp], n=2, max_len=15, seed=4, temperature=0.8)
        page.fill("#max_len", "100000")
        page.click("#run")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert "max_len" in page.inner_text("#error")
