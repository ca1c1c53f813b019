"""`tandem serve` over a model that reads series of frames (data.src_kind: frames): the page
it serves swaps the text box for a JSON series box with an example button and draws each
series as a line plot, and /v1/model and the endpoints answer what that page reads: the frame
width, "T frames", the labels, the tags and their segments, the output texts and attention
over the frames; in a real browser the example series is classified, tagged or translated and
plotted."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tandem
from conftest import live_server
from tandem.serve import ServeOptions, create_app
from test_frames import write_ts
from test_web import CHROMIUM, _browser_or_skip

# each test trains a small model or starts a process: the slow tier
pytestmark = pytest.mark.slow

# frame widths: classify's .ts has 2 channels; the tagger's 14 is more than the 12 lines a
# plot draws
WIDTH = {"classify": 2, "tag": 14, "seq2seq": 3}
PAGE = {"classify": "structures.html", "tag": "structures.html", "seq2seq": "index.html"}


def _config(root, structure: str, train: str, **data) -> dict:
    return {
        "run_dir": str(root / structure),
        "data": {"src_kind": "frames", "train": train, "frame_dev_fraction": 0.2, **data},
        "model": {"structure": structure, "cell": "gru", "emb_size": 8, "hidden_size": 16,
                  "dropout": 0.0,
                  **({"conditioning": "attention", "attention": "general"}
                     if structure == "seq2seq" else {})},
        "train": {"max_steps": 10, "valid_every": 10, "batch_tokens": 300, "lr": 0.02,
                  "progress": False, "tensorboard": False, "device": "cpu", "threads": 1}}


@pytest.fixture(scope="module")
def frames_models(tmp_path_factory) -> dict[str, object]:
    """One briefly trained model over frames per structure that reads them: {structure:
    the loaded model}."""
    from tandem.config import from_dict
    from tandem.train.trainer import train

    root = tmp_path_factory.mktemp("frames_page")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12, WIDTH["tag"])).astype(np.float32)
    np.savez(root / "tag.npz", x=x, y=np.where(x[:, :, 0] > 0, "high", "low"))
    x = rng.normal(size=(40, 9, WIDTH["seq2seq"])).astype(np.float32)
    np.savez(root / "s2s.npz", x=x, y=np.array(["ab" if v > 0 else "ba" for v in x[:, 0, 0]]))
    configs = {
        "classify": _config(root, "classify", str(write_ts(root / "train.ts", 60, 1)),
                            frame_dev_fraction=0.0),
        "tag": _config(root, "tag", str(root / "tag.npz")),
        "seq2seq": _config(root, "seq2seq", str(root / "s2s.npz"), tgt_tokenizer="char")}
    return {s: tandem.load(train(from_dict(raw)) / "best.pt", device="cpu")
            for s, raw in configs.items()}


def sines(n: int, width: int) -> list[list[float]]:
    """A made-up series like the page's example: n frames of `width` sines."""
    return [[round(math.sin(2 * math.pi * (k + 1) * t / n + k), 3) for k in range(width)]
            for t in range(n)]


@pytest.mark.parametrize("structure", list(WIDTH))
def test_the_page_of_a_frames_model_has_the_series_box_and_the_plot(frames_models, structure):
    """GET / serves the structure's page with the frames UI: the JSON series box, its hint,
    the example button, the reading of src_kind and the frame width, the series reader and
    the SVG plot; nothing in it is fetched from elsewhere (the server runs offline)."""
    model = frames_models[structure]
    with TestClient(create_app(model, ServeOptions())) as c:
        r = c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert ('id="translate"' in page) == (PAGE[structure] == "index.html")
    for hook in ('<textarea id="series"', 'id="frames-hint"', '<button id="example"',
                 'm.src_kind === "frames"', "m.frame_width || m.num_features",
                 "function readSeries(", "function exampleSeries(", "function plotSeries(",
                 'svg("polyline"', "COLOURS.length"):
        assert hook in page, hook
    if PAGE[structure] == "structures.html":
        assert "function showFrameTags(" in page and 'svg("rect", { class: "band"' in page
    else:
        assert "function showPlots(" in page and "plot-output" in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", page, re.I)
    assert not re.search(r"@import|url\(", page)
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize("structure", list(WIDTH))
def test_model_info_says_frames_and_their_width(frames_models, structure):
    """/v1/model says src_kind frames and the width C the page's hint names and its example
    and checks use (frame_width, else num_features), and the labels the page colours."""
    model = frames_models[structure]
    with TestClient(create_app(model, ServeOptions())) as c:
        info = c.get("/v1/model").json()
    assert info["src_kind"] == "frames" and info["endpoint"] == model.endpoint
    assert (info.get("frame_width") or info.get("num_features")) == WIDTH[structure]
    if structure != "seq2seq":
        assert info["num_features"] == WIDTH[structure] and info["labels"]


def _check_classify(info, body, out, series) -> None:
    assert len(out["results"]) == len(series)
    for res, s in zip(out["results"], series, strict=True):
        assert res["input"] == f"{len(s)} frames"
        assert len(res["labels"]) == body["topk"]
        probs = [x["prob"] for x in res["labels"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-4
        assert {x["label"] for x in res["labels"]} <= set(info["labels"])


def _check_tag(info, body, out, series) -> None:
    assert len(out["results"]) == len(series)
    for res, s in zip(out["results"], series, strict=True):
        assert res["input"] == f"{len(s)} frames"
        assert len(res["tags"]) == len(s) and set(res["tags"]) <= set(info["labels"])
        # the bands the page shades: contiguous runs from frame 0 to the end, one tag each
        segs = res["segments"]
        assert segs[0][0] == 0 and segs[-1][1] == len(s)
        assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(segs, segs[1:], strict=False))
        assert [t for first, end, tag in segs for t in [tag] * (end - first)] == res["tags"]


def _check_seq2seq(info, body, out, series) -> None:
    assert len(out["outputs"]) == len(out["results"]) == len(series)
    for text, res, s in zip(out["outputs"], out["results"], series, strict=True):
        assert res["input"] == f"{len(s)} frames" and res["src_tokens"] == []
        hyps = res["hypotheses"]
        assert isinstance(text, str) and hyps[0]["text"] == text
        assert 1 <= len(hyps) <= body["nbest"]
        for h in hyps:
            # the heatmap: a row per output token, a column per frame
            assert len(h["attention"]) == len(h["tokens"])
            assert all(len(row) == len(s) for row in h["attention"])


@pytest.mark.parametrize("structure", list(WIDTH))
def test_a_posted_series_gets_what_the_page_draws(frames_models, structure):
    """The page posts every series of the box (the example's 30 frames of sines and a shorter
    one) with its options and draws from the answer's keys: classify the labels with their
    probabilities, tag a tag per frame and the segments as bands, seq2seq the output texts
    and each hypothesis' attention over the frames."""
    model = frames_models[structure]
    width = WIDTH[structure]
    series = [sines(30, width), sines(7, width)]
    body = {"inputs": series, **{"classify": {"topk": 2}, "tag": {},
                                 "seq2seq": {"beam": 2, "nbest": 2, "attention": True}}[structure]}
    with TestClient(create_app(model, ServeOptions())) as c:
        info = c.get("/v1/model").json()
        r = c.post(info["endpoint"], json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out["ms"], float | int)
    {"classify": _check_classify, "tag": _check_tag, "seq2seq": _check_seq2seq}[structure](
        info, body, out, series)


@pytest.mark.parametrize("structure", list(WIDTH))
def test_a_series_the_model_cannot_read_is_a_422_the_page_shows(frames_models, structure):
    """A frame of the wrong width and a series over max_chars frames are 422s whose `error`
    (the line the page shows) names the series or frame and the limit."""
    model = frames_models[structure]
    width = WIDTH[structure]
    with TestClient(create_app(model, ServeOptions(max_chars=20))) as c:
        wide = c.post(model.endpoint, json={"inputs": [sines(3, width + 1)]})
        long = c.post(model.endpoint, json={"inputs": [sines(5, width), sines(21, width)]})
        ok = c.post(model.endpoint, json={"inputs": [sines(20, width)]})
    assert wide.status_code == 422 and wide.json()["error"].startswith("inputs.0.0: ")
    assert f"at most {width} items" in wide.json()["error"]
    assert long.status_code == 422 and long.json()["error"].startswith("inputs.1: ")
    assert "at most 20 items" in long.json()["error"]
    assert ok.status_code == 200, ok.text


@pytest.mark.browser
def test_the_page_plots_the_example_series_in_a_browser(frames_models):
    """In a real browser, for each frames model: the series box replaces the text box, the
    example button fills in 30 frames of the model's width, running it draws a plot with one
    line per channel (at most 12) and the top label, the tag bands or the output text; a
    malformed series is named before anything is sent."""
    pw = _browser_or_skip()
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for structure, model in frames_models.items():
                with live_server(create_app(model, ServeOptions())) as url:
                    page = browser.new_page()
                    external: list[str] = []
                    page.on("request", lambda r, url=url, seen=external:
                            None if r.url.startswith(url) else seen.append(r.url))
                    page.goto(url + "/")
                    page.wait_for_selector("#frames-input:not([hidden])")
                    assert not page.is_visible("#source")
                    assert f"C = {WIDTH[structure]}" in page.inner_text("#frames-hint")
                    page.click("#example")
                    example = page.input_value("#series")
                    _drive(page, structure, model, example)
                    page.fill("#series", "[[1]]" if WIDTH[structure] > 1 else "[[1, 2]]")
                    page.click("#translate" if structure == "seq2seq" else "#run")
                    assert "series 0, frame 0" in page.inner_text("#error")
                    assert external == []
                    page.close()
        finally:
            browser.close()


def _drive(page, structure, model, example: str) -> None:
    import json

    series = json.loads(example)
    width = WIDTH[structure]
    assert len(series) == 30 and all(len(f) == width for f in series)
    lines = min(width, 12)
    if structure == "classify":
        page.fill("#topk", "2")
        page.click("#run")
        page.wait_for_selector(".item svg.plot")
        assert page.locator("svg.plot polyline.channel").count() == lines
        label, prob = model.predict([np.asarray(series, np.float32)], 1)[0][0]
        assert page.text_content("svg.plot text.caption") == f"{label} {prob:.3f}"
        assert page.locator(".item .label").all_inner_texts()[0] == label
    elif structure == "tag":
        page.click("#run")
        page.wait_for_selector(".item svg.plot")
        assert page.locator("svg.plot polyline.channel").count() == lines
        tags = model.tag_frames([np.asarray(series, np.float32)])[0]
        runs = [tags[0]] + [b for a, b in zip(tags, tags[1:], strict=False) if a != b]
        assert page.locator("svg.plot rect.band").count() == len(runs)
        assert [x.split(" ", 1)[1] for x in page.locator(".segment").all_inner_texts()] == runs
    else:
        page.fill("#beam", "2")
        page.fill("#nbest", "2")
        page.click("#translate")
        page.wait_for_selector("#plots svg.plot")
        assert page.locator("svg.plot polyline.channel").count() == lines
        want = model.translate_full([np.asarray(series, np.float32)], beam=2, nbest=2)[0]
        assert page.inner_text(".plot-output") == want[0].text
        assert page.locator("#outputs li .text").all_inner_texts() == [h.text for h in want]
        cols = page.locator("#heatmap thead th").all_inner_texts()[1:]
        assert cols == ([str(j) for j in range(30)] if want[0].tokens else [])
