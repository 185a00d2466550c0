"""The reports page (``python -m reports_app``) over HTTP and in headless Chromium: it lists
every monitored window with its headline figures, draws the trend, and serves the full
Evidently reports (and nothing outside the reports folder)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from core import monitor
from core.config import REPO_ROOT
from reports_app.app import create_app
from tests.app.conftest import free_port

try:
    from playwright.sync_api import sync_playwright
except ModuleNotFoundError:  # reported by the browser test itself, as a failure
    sync_playwright = None

from tests.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCREENSHOT = REPO_ROOT / "var" / "screenshots" / "reports.png"


@pytest.fixture(scope="module")
def reports_url(traffic, monitored):
    """The page on a free port, in a thread of this process (uvicorn, as `python -m
    reports_app` runs it)."""
    settings = traffic.settings.model_copy(update={"reports_port": free_port()})
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.reports_port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the reports page did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{settings.reports_port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_page_lists_every_window_with_its_figures(reports_url, monitored):
    page = httpx.get(f"{reports_url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    shifted, calm, few = monitored["shifted"], monitored["in"], monitored["few"]
    for summary in (shifted, calm, few):
        assert f'data-window="{summary["report_dir"]}"' in text
    assert (
        f"{shifted['drift_share']:.1%} ({shifted['drifted_columns']}/{shifted['n_columns']})"
        in text
    )
    assert "data drift: " in text and "not enough data" in text and "no action" in text
    assert f"{calm['feedback_accuracy']:.0%} <small>({calm['feedback_rows']} rows)" in text
    assert 'href="reports/2026-03-02/drift.html"' in text
    assert 'href="reports/2026-03-01/quality.html"' in text
    assert 'href="reports/2026-03-03/drift.html"' not in text  # no verdict, no report
    assert 'src="trend.png"' in text


def test_full_reports_and_trend_are_served(reports_url, traffic, monitored):
    drift = httpx.get(f"{reports_url}/reports/2026-03-02/drift.html", timeout=30)
    assert drift.status_code == 200 and drift.headers["content-type"].startswith("text/html")
    on_disk = monitor.reports_dir(traffic.settings) / monitored["shifted"]["report_html"]
    assert len(drift.content) == on_disk.stat().st_size
    summary = httpx.get(f"{reports_url}/reports/2026-03-02/summary.json", timeout=30).json()
    assert summary["decision"] == "retrain"
    trend = httpx.get(f"{reports_url}/trend.png", timeout=60)
    assert trend.status_code == 200 and trend.headers["content-type"] == "image/png"
    assert trend.content.startswith(b"\x89PNG") and len(trend.content) > 10_000
    listing = httpx.get(f"{reports_url}/api/summaries", timeout=30).json()
    assert {row["decision"] for row in listing} >= {"retrain", "no action", "not enough data"}


@pytest.mark.parametrize(
    "path", ["/reports/%2e%2e/predictions.db", "/reports/..%2f..%2fetc/passwd", "/reports/nope"]
)
def test_nothing_outside_the_reports_folder_is_served(reports_url, path):
    assert httpx.get(reports_url + path, timeout=30).status_code == 404


@pytest.mark.browser
def test_page_in_headless_chromium(reports_url, monitored):
    if sync_playwright is None:
        pytest.fail("The playwright Python package is missing (see requirements.txt).")
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium`.")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{reports_url}/", wait_until="load")
            rows = page.locator("#windows tbody tr")
            assert rows.count() >= 3
            shifted = page.locator('tr[data-window="2026-03-02"]')
            assert "retrain" in shifted.inner_text()
            width = page.eval_on_selector("img.trend", "img => img.naturalWidth")
            assert width > 500  # the trend plot really loaded
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            with page.expect_popup() as popup:
                shifted.get_by_role("link", name="drift report").click()
            report = popup.value
            report.wait_for_load_state("load")
            assert report.url.endswith("/reports/2026-03-02/drift.html")
            report.get_by_text("Drifted Columns", exact=False).first.wait_for()
        finally:
            browser.close()
    assert errors == []
