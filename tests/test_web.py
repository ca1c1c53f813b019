"""The web page in a real browser (Debian's chromium through Playwright): type, translate,
check the output text and that the heatmap has one cell per source x output token."""

import os
import shutil

import pytest

from conftest import live_server
from tandem.serve import ServeOptions, create_app
from tandem.structures.translator import load

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip():
    """Playwright's sync API, with Debian's chromium on PATH. Playwright is part of the dev
    extra, so its absence is an error. Chromium is installed by `make test` when it runs as
    root; only a run as another user, which cannot install it, skips (with the reason)."""
    import playwright.sync_api

    if not shutil.which("chromium"):
        if os.geteuid() == 0:
            pytest.fail("no chromium on PATH although this runs as root: `make test` installs "
                        "it (scripts/ensure_chromium.sh); run that or `apt-get install -y "
                        "chromium`")
        pytest.skip("no chromium on PATH and not root, so it cannot be installed; install it "
                    "with `apt-get install -y chromium` to run the browser tests")
    return playwright.sync_api


@pytest.mark.slow
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
