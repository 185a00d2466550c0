"""The page in a real (headless) Chromium: upload a demo clip, press the button, read the
composer off the Label, and check the prediction was recorded as an upload.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` Python package (no
Playwright-managed browser downloads). A missing browser is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import urlsplit

import pytest

from core.config import REPO_ROOT

try:
    from playwright.sync_api import sync_playwright
except ModuleNotFoundError:  # reported by the test itself, as a failure
    sync_playwright = None

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, require_system

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CLIP = REPO_ROOT / "data" / "demo" / "audio" / "Chopin" / "chpn-p2.ogg"
SCREENSHOT = REPO_ROOT / "var" / "screenshots" / "app-predict.png"
TIMEOUT_MS = 60_000


def _require_browser() -> None:
    if sync_playwright is None:
        pytest.fail(
            "The playwright Python package is missing: `.venv/bin/pip install -r "
            "requirements.txt` (no `playwright install` needed: the test uses Debian's chromium)."
        )
    require_system("chromium")


def _upload_fn_index(page_blocks) -> int:
    """The dependency that marks the session's source as 'upload' (audio.upload)."""
    for index, dependency in enumerate(page_blocks.config["dependencies"]):
        if any(trigger == "upload" for _, trigger in dependency["targets"]):
            return dependency.get("id", index)
    raise AssertionError("the page has no audio.upload event")


def test_upload_predict_and_record(live_app, app_settings, tmp_path):
    _require_browser()
    running, _first = live_app
    labels = list(running.service.current().card.composers)
    upload_fn = _upload_fn_index(running.page)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(running.url))
    assert urlsplit(running.url).hostname == "127.0.0.1"
    before = len(running.store.predictions())
    errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Only the app itself: anything else (fonts, CDNs, telemetry) is refused.
            page.route(lambda url: not url.startswith(origin), lambda route: route.abort())

            page.goto(running.url, wait_until="domcontentloaded")

            # Limits and model card (the card arrives through page.load).
            limits = page.locator("#limits")
            limits.wait_for()
            limits_text = limits.inner_text()
            assert f"Uploads up to {app_settings.app_max_file_mb:g} MB" in limits_text
            assert f"The first {app_settings.audio.max_seconds:g} s are analysed" in limits_text
            card = page.locator("#model-card")
            page.wait_for_function(
                "() => (document.querySelector('#model-card')?.innerText || '').includes(' v1')"
            )
            card_text = card.inner_text()
            assert f"{app_settings.model_name} v1" in card_text
            assert f"knows {len(labels)} composers" in card_text

            # Upload through the Audio component's own file input; wait for the player and for
            # the upload event (it marks the session's source as 'upload').
            audio_input = page.locator("input[type=file][accept*='audio']")
            assert audio_input.count() == 1, "expected exactly one audio file input"

            def is_upload_event(response) -> bool:
                request = response.request
                if request.method != "POST" or "/queue/join" not in request.url:
                    return False
                try:
                    return json.loads(request.post_data or "{}").get("fn_index") == upload_fn
                except ValueError:
                    return False

            with page.expect_response(is_upload_event) as joined:
                audio_input.set_input_files(str(CLIP))
            assert joined.value.ok, f"upload event rejected: {joined.value.status}"
            duration = page.locator("[data-testid='waveform-Piano recording'] #duration")
            duration.wait_for()
            page.wait_for_function(
                "() => { const d = document.querySelector("
                "\"[data-testid='waveform-Piano recording'] #duration\");"
                " return d && d.innerText.trim() !== '' && d.innerText.trim() !== '0:00'; }"
            )
            page.wait_for_timeout(500)  # the upload event is a one-line lambda; let it land

            page.locator("#predict").click()
            top = page.locator("#label [data-testid='label-output-value']")
            top.wait_for()
            page.wait_for_function(
                "() => (document.querySelector(\"#label [data-testid='label-output-value']\")"
                "?.innerText || '').trim() !== ''"
            )
            composer = top.inner_text().strip()
            assert composer in labels, f"{composer!r} is not one of the model's labels {labels}"
            # The answer in plain words: the clip is an excerpt of a known Chopin prelude.
            headline = page.locator("#headline").inner_text().strip()
            assert re.fullmatch(r"This sounds like Chopin's .+, from about \d+:\d\d", headline), (
                headline
            )
            # The notes it heard, drawn as a piano roll under the answer.
            page.locator("#piano-roll img, #piano-roll svg, #piano-roll canvas").first.wait_for()
            # Wait for the rest of the outputs (the card is re-rendered with the prediction).
            page.locator("#label .confidence-set").first.wait_for()
            page.wait_for_timeout(1000)  # let the plot finish drawing for the screenshot

            shot = tmp_path / "app-predict.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    for path in (shot, SCREENSHOT):
        assert path.exists()
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000, f"{path} looks empty ({path.stat().st_size} bytes)"

    assert not errors, f"JavaScript errors on the page: {errors}"

    rows = running.store.predictions()
    assert len(rows) == before + 1, rows
    row = rows.iloc[-1]
    assert row["source"] == "upload", f"recorded source {row['source']!r}, expected 'upload'"
    assert row["composer"] == composer
    assert row["model_version"] == "1"
