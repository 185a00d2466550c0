"""The tracking-store probe answers in seconds, names the URI without its password, and the
bad-setting lines name the variable and the expected type."""

from __future__ import annotations

import socket
import time

import pytest
from pydantic import ValidationError

from core import setting_errors, tracking_probe
from core.config import Settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.unit
def test_local_stores_are_not_probed(tmp_path):
    tracking_probe.check(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}")
    tracking_probe.check(str(tmp_path / "mlruns"))


@pytest.mark.unit
@pytest.mark.parametrize("scheme", ["http", "postgresql"])
def test_closed_port_fails_fast_without_password(scheme):
    uri = f"{scheme}://user:s3cret@127.0.0.1:{closed_port()}" + (
        "/mlflow" if scheme == "postgresql" else ""
    )
    started = time.perf_counter()
    with pytest.raises(tracking_probe.TrackingUnreachable) as caught:
        tracking_probe.check(uri, timeout=2)
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "s3cret" not in message and "127.0.0.1" in message
    assert "COMPOSER_MLFLOW_TRACKING_URI" in message


@pytest.mark.integration
def test_running_postgres_passes(postgres_url):
    tracking_probe.check(postgres_url, timeout=5)


@pytest.mark.unit
def test_bad_settings_name_variable_and_type(monkeypatch):
    monkeypatch.setenv("COMPOSER_FEATURES__N_MFCC", "abc")
    monkeypatch.setenv("COMPOSER_USE_PACK", "maybe")
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ValidationError) as caught:
        Settings()
    lines = setting_errors.describe(caught.value)
    assert len(lines) == 3
    by_name = {line.split("=", 1)[0]: line for line in lines}
    assert "an integer" in by_name["COMPOSER_FEATURES__N_MFCC"]
    assert "<= 40" in by_name["COMPOSER_FEATURES__N_MFCC"]
    assert "true or false" in by_name["COMPOSER_USE_PACK"]
    assert "an integer" in by_name["PORT"]
