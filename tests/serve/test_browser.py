"""The demo in a real browser: headless Debian Chromium driven by Playwright for Python.

Chromium comes from the Debian packages `chromium` and `chromium-driver` (.ci/run installs
them); Playwright's own browser download (`playwright install`) is never used.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STANCES = {"pro_negotiation", "accusatory", "neutral"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, demo_url):
    """A fresh page on the demo that records every request it makes."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(demo_url, wait_until="networkidle")
    yield page
    context.close()


def assert_only_local_requests(urls: list[str]) -> None:
    external = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert not external, f"the page reached outside this machine: {external[:5]}"


def test_classify_a_statement_in_the_browser(page, tmp_path):
    page.locator("#statement textarea").fill("We condemn the shelling of the port by the army.")
    page.locator("#classify").click()
    label = page.locator("#stance [data-testid='label-output-value']")
    label.wait_for(state="visible", timeout=30_000)
    assert label.inner_text().strip() in STANCES
    page.locator("#explanation-summary").get_by_text("Word occlusion").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert_only_local_requests(page.requests)


def test_an_example_is_one_click_away(page):
    page.get_by_text("There is nothing to discuss with people who bomb our schools.").click()
    label = page.locator("#stance [data-testid='label-output-value']")
    label.wait_for(state="visible", timeout=30_000)
    assert label.inner_text().strip() in STANCES
    assert "accusatory" in page.locator("#guideline textarea").input_value()


def test_upload_a_file_and_get_the_scored_table(page, tmp_path):
    data = tmp_path / "statements.csv"
    data.write_text("id,text\na,We welcome the ceasefire.\nb,\nc,They shelled the school.\n",
                    encoding="utf-8")
    page.get_by_role("tab", name="Batch").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#batch-file").get_by_text("Click to Upload").click()
    chooser.value.set_files(str(data))
    page.locator("#batch-file [aria-label='statements.csv']").wait_for(timeout=30_000)
    page.locator("#batch-run").click()
    summary = page.locator("#batch-summary")
    summary.get_by_text(re.compile(r"Scored \d+ of \d+ statements")).wait_for(timeout=60_000)
    assert "Scored 2 of 3 statements" in summary.inner_text()
    cell = page.locator("#batch-table").get_by_text("'text' is empty").filter(visible=True)
    cell.first.wait_for(timeout=30_000)
    download = page.locator("#batch-download [data-testid='download-link']")
    assert download.get_attribute("download").endswith(".csv")
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    assert_only_local_requests(page.requests)
