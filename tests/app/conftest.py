"""A live app on a free port, backed by a real model trained into its own MLflow store and a
real prediction store. Module-scoped: each test module gets a fresh server."""

from __future__ import annotations

import random
import socket

import pytest

from core import pipeline
from core.config import AudioLimits
from gradio_app.app import launch
from tests.conftest import FAST_CANDIDATES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports below Linux's ephemeral range (32768+), so that no outgoing
    connection's source port takes one between choosing it and a server binding it."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < n:
        port = rng.randrange(20000, 32000)
        if port in chosen:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def app_test_settings(make_settings, data, tracking_uri: str | None = None):
    """Settings for an app under test: its own store, port and MLflow (when given)."""
    return make_settings(
        tracking_uri,
        database_url=f"sqlite:///{data / 'predictions.db'}",
        spool_dir=data / "spool",
        audio_store_dir=data / "audio",
        app_port=free_port(),
        app_workers=1,  # the pooled path, one process: start-up is the slow part of a test
        app_model_ttl_s=0.5,
        app_max_file_mb=5,
        audio=AudioLimits(max_seconds=60),
    )


@pytest.fixture(scope="module")
def app_settings(make_settings, tmp_path_factory):
    return app_test_settings(make_settings, tmp_path_factory.mktemp("app-data"))


@pytest.fixture(scope="module")
def live_app(app_settings):
    """(Running, first PipelineResult): the champion is v1 when the server starts."""
    first = pipeline.run(app_settings, "demo", candidates=FAST_CANDIDATES)
    running = launch(app_settings, block=False)
    yield running, first
    running.close()
