"""The page at ``/`` in a real headless browser (Debian's Chromium, driven by Playwright): submit
the quickstart's data job from the form and watch it succeed, its log and its links."""

from __future__ import annotations

import shutil

import pytest

from tests.serve.conftest import JOB_S

pytestmark = pytest.mark.xdist_group("serve")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path):
    """A page in Chromium from the system's packages (Playwright's own download needs the
    internet); a fresh profile folder each time."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.mark.slow
def test_the_page_runs_the_quickstart_data_job(serve, browser_page, tmp_path):
    server = serve()
    page = browser_page
    page.goto(server.url + "/")
    assert page.title() == "recipe-runner jobs"
    page.fill("#recipe_path", "recipes/quickstart.yaml")
    page.select_option("#type", "data")
    page.fill("#overrides", "filters.2.max_chars=2000")
    page.click("#submit")
    row = page.locator("tr[data-id]").first
    row.wait_for(timeout=30_000)
    page.wait_for_selector("tr[data-status=succeeded]", timeout=JOB_S * 1000)
    assert row.locator(".status").inner_text() == "succeeded"
    assert row.locator("td").nth(2).inner_text() == "quickstart"
    assert "data (ran)" in row.locator(".stage").inner_text()
    assert "100%" in row.inner_text()
    # The live log tail and the links to the run's files.
    page.wait_for_function("document.querySelector('#log').textContent.includes('data: done in')")
    report = page.locator("#detail-links a", has_text="data/report.md")
    assert report.get_attribute("href").startswith("/v1/runs/quickstart/files/")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    with page.context.expect_page() as opened:
        report.click()
    assert "train" in opened.value.content()
    # A mistake is shown with its line, nothing is queued.
    page.fill("#recipe_path", "recipes/quickstart.yaml")
    page.fill("#overrides", "train.epochz=1")
    page.click("#submit")
    page.wait_for_selector("#submit-errors:not([hidden])")
    assert "--set: train.epochz: unknown key" in page.inner_text("#submit-errors")
    assert page.locator("tr[data-id]").count() == 1
