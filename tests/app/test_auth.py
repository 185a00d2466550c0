"""The login page of a real app started with ``app_auth``: wrong passwords are throttled and
then locked out per client (before: 40 wrong passwords took 0.7 s), the right one works,
and an HTTP Basic header is not a way in (the README says "login page", not "basic auth")."""

from __future__ import annotations

import base64
import time
from collections import Counter

import httpx
import pytest

from gradio_app.access import LoginThrottle
from gradio_app.app import launch
from tests.app.conftest import app_test_settings

pytestmark = pytest.mark.integration

USER, PASSWORD = "composer", "a-long-test-password"


@pytest.fixture(scope="module")
def app_url(make_settings, tmp_path_factory):
    """No champion is needed to log in: an empty MLflow store, the page says so."""
    data = tmp_path_factory.mktemp("auth-app")
    settings = app_test_settings(make_settings, data).model_copy(
        update={"app_auth": f"{USER}:{PASSWORD}"}
    )
    running = launch(settings, block=False)
    yield running.url.rstrip("/")
    running.close()


def login(url: str, password: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    data = {"username": USER, "password": password}
    return httpx.post(f"{url}/login", data=data, headers=headers, timeout=60).status_code


def test_right_password_logs_in(app_url):
    assert login(app_url, PASSWORD) == 200


def test_basic_auth_header_is_not_a_way_in(app_url):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    response = httpx.get(f"{app_url}/config", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 401


def test_forty_wrong_passwords_are_slowed_then_locked_out(app_url):
    started = time.perf_counter()
    statuses = [login(app_url, f"guess-{i}") for i in range(40)]
    elapsed = time.perf_counter() - started
    counts = Counter(statuses)
    print(f"\n40 wrong passwords from one client: {elapsed:.1f} s, statuses {dict(counts)}")
    throttle = LoginThrottle(None)
    assert counts == {400: throttle.max_failures, 429: 40 - throttle.max_failures}
    expected = sum(
        min(throttle.base_delay_s * 2 ** (n - 1), throttle.max_delay_s)
        for n in range(1, throttle.max_failures)
    )
    assert elapsed >= expected  # 15.75 s with the defaults, vs 0.7 s before
    # locked: even the right password is not checked now
    response = httpx.post(
        f"{app_url}/login", data={"username": USER, "password": PASSWORD}, timeout=60
    )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 60
    assert "Too many failed logins" in response.text


def test_guesses_spread_over_many_addresses_meet_the_global_budget(app_url):
    """From 127.0.0.1 uvicorn takes X-Forwarded-For as the client address (its proxy
    handling), so each guess comes from a new client; past the global budget of failures a
    minute every attempt waits ``max_delay_s``, one at a time."""
    throttle = LoginThrottle(None)
    took = []
    for i in range(throttle.global_failures - throttle.max_failures + 4):  # 8 failed above
        started = time.perf_counter()
        assert login(app_url, f"spray-{i}", forwarded=f"10.0.{i}.1") == 400
        took.append(time.perf_counter() - started)
    print(f"\nspray: first {took[0]:.2f} s, last four {[round(t, 1) for t in took[-4:]]}")
    assert all(t >= throttle.max_delay_s for t in took[-4:])
    assert took[0] < throttle.max_delay_s
