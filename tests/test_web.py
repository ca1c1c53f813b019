"""The web page in a real browser (Debian's chromium through Playwright): type, translate,
check the output text and that the heatmap has one cell per source x output token."""

import shutil

import pytest

from conftest import live_server
from tandem.decode.translator import load
from tandem.serve import ServeOptions, create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip():
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="the playwright package is not installed")
    if not shutil.which("chromium"):
        pytest.skip("no chromium on PATH; install it with `apt-get install -y chromium` "
                    "(.ci/run does this when it can)")
    return playwright


@pytest.mark.browser
def test_page_translates_and_draws_one_cell_per_token_pair(attention_checkpoint):
    pw = _browser_or_skip()
    tr = load(attention_checkpoint)
    with live_server(create_app(tr, ServeOptions())) as url:
        _drive_page(pw, url, tr)


def _drive_page(pw, url, tr):
    text = "hello"
    want = tr.translate_full([text], beam=3, nbest=2)[0]
    assert want[0].tokens and want[1].tokens, "the fixture model must say something"
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(url) else
                    external.append(r.url))
            page.goto(url + "/")
            page.wait_for_function("!document.getElementById('model').textContent"
                                   ".startsWith('loading')")
            page.fill("#source", text)
            page.fill("#beam", "3")
            page.fill("#nbest", "2")
            page.click("#translate")
            page.wait_for_selector("#outputs li")
            texts = page.locator("#outputs li .text").all_inner_texts()
            assert texts == [h.text for h in want]
            cells = page.locator("#heatmap td.cell")
            assert cells.count() == len(want[0].tokens) * len(want[0].src_tokens)
            rows = page.locator("#heatmap tbody th").all_inner_texts()
            assert rows == want[0].tokens
            cols = page.locator("#heatmap thead th").all_inner_texts()[1:]
            assert cols == want[0].src_tokens
            page.locator("#outputs li").nth(1).click()  # the second hypothesis' attention
            assert cells.count() == len(want[1].tokens) * len(want[1].src_tokens)
            page.fill("#beam", "99")
            page.click("#translate")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert "beam" in page.inner_text("#error")
            assert external == []
        finally:
            browser.close()
