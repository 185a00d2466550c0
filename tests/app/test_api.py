"""The app through its public API (gradio_client), against a live server on a free port:
predictions are recorded, feedback lands in the store, a new champion is served without a
restart, and a missing or unreachable registry gives a clear error without stopping the
server (which then recovers by itself)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from core import pipeline, registry
from core.config import REPO_ROOT
from core.serving import ChampionService
from gradio_app.app import Running, launch
from tests.app.conftest import app_test_settings, free_port
from tests.conftest import FAST_CANDIDATES

pytestmark = pytest.mark.integration

DEMO_CLIP = REPO_ROOT / "data" / "demo" / "audio" / "Chopin" / "chpn-p7.ogg"
if not DEMO_CLIP.is_file():  # any demo clip will do
    DEMO_CLIP = sorted((REPO_ROOT / "data" / "demo" / "audio").rglob("*.ogg"))[0]
POLL_TRIES = 20
POLL_SLEEP_S = 0.3


def connect(url: str) -> Client:
    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


def predict(client: Client, path: Path = DEMO_CLIP):
    """/predict -> (label, timeline, neighbours, details, prediction_id, card, dropdown)."""
    return client.predict(handle_file(str(path)), api_name="/predict")


def app_error(client: Client, path: Path = DEMO_CLIP) -> str:
    with pytest.raises(AppError) as caught:
        predict(client, path)
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def endpoints(client: Client) -> dict:
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def client(live_app) -> Client:
    running, _ = live_app
    return connect(running.url)


def test_prediction_is_returned_and_recorded(live_app, client):
    running, first = live_app
    labels = list(first.trained.model.labels)
    label, _timeline, _neighbours, details, prediction_id, card, _dropdown = predict(client)

    # The Label shows the top 5 of every composer the model knows; the store has them all.
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert label["label"] in labels
    assert set(confidences) <= set(labels)
    assert len(confidences) == min(5, len(labels))
    assert 0 < sum(confidences.values()) <= 1 + 1e-6
    assert max(confidences, key=confidences.get) == label["label"]
    assert details["prediction_id"] == prediction_id
    assert details["model"] == "composer-classifier v1"
    assert details["composer"] == label["label"]
    assert "v1" in card

    rows = running.store.predictions()
    row = rows.set_index("id").loc[prediction_id]
    assert row["source"] == "api"
    assert row["model_version"] == "1"
    assert row["composer"] == label["label"]
    assert len(row["features"]) == len(first.trained.model.feature_names)
    assert all(v is None or np.isfinite(v) for v in row["features"])
    assert row["latency_s"] > 0
    assert set(row["probabilities"]) == set(labels)
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    for composer, confidence in confidences.items():
        assert row["probabilities"][composer] == pytest.approx(confidence, abs=1e-6)
    assert row["true_composer"] is None


def test_feedback_is_recorded(live_app, client):
    running, first = live_app
    *_, prediction_id, _card, _dropdown = predict(client)
    truth = first.trained.model.labels[-1]

    thanks = client.predict(prediction_id, truth, api_name="/feedback")
    assert "Thanks" in thanks and truth in thanks and prediction_id[:8] in thanks
    row = running.store.predictions().set_index("id").loc[prediction_id]
    assert row["true_composer"] == truth

    with pytest.raises(AppError) as caught:
        client.predict("", truth, api_name="/feedback")
    assert "Make a prediction first" in str(caught.value)
    with pytest.raises(AppError) as caught:
        client.predict("0" * 32, truth, api_name="/feedback")
    assert "Unknown prediction" in str(caught.value)


def test_new_champion_is_served_without_restart(live_app, client, app_settings):
    running, _ = live_app
    url_before = running.url
    second = pipeline.run(app_settings, "demo", candidates=("logistic_regression",))
    assert second.version != "1"
    registry.set_champion(registry.connect(app_settings), app_settings, second.version, "test")

    wanted = f"composer-classifier v{second.version}"
    seen = []
    for _ in range(POLL_TRIES):
        *_, details, prediction_id, card, _dropdown = predict(client)
        seen.append(details["model"])
        if details["model"] == wanted:
            break
        time.sleep(POLL_SLEEP_S)
    else:
        pytest.fail(f"the server never served v{second.version}; it served {seen}")

    assert f"v{second.version}" in card
    assert running.url == url_before  # same server, same client: no restart
    row = running.store.predictions().set_index("id").loc[prediction_id]
    assert row["model_version"] == second.version


def test_load_bench_runs_against_the_live_app(live_app, tmp_path):
    """``bench/app_load.py`` end to end, small: every request answered, figures written."""
    running, _ = live_app
    out = tmp_path / "app_load.json"
    command = [sys.executable, "bench/app_load.py", "--url", running.url, "--out", str(out)]
    command += ["--clients", "2", "--requests-per-client", "2", "--clip-seconds", "12"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert (summary["requests"], summary["ok"], summary["errors"]) == (4, 4, 0)
    assert 0 < summary["p50_s"] <= summary["p95_s"] <= summary["max_s"]
    assert summary["throughput_rps"] > 0
    assert set(summary["composers_predicted"]) <= set(running.service.current().model.labels)
    assert summary["cpu_s_per_request"]["clients"] > 0
    assert "p50 latency" in done.stdout


def own_server(make_settings, tmp_path, tracking_uri: str | None = None) -> Running:
    """A second app on its own port, store and MLflow (``tracking_uri`` when given)."""
    settings = app_test_settings(make_settings, tmp_path, tracking_uri)
    return launch(settings, service=ChampionService(settings), block=False)


def test_no_champion_gives_clear_error_then_recovers(make_settings, tmp_path):
    running = own_server(make_settings, tmp_path)
    try:
        client = connect(running.url)
        message = app_error(client)
        assert "No model has the alias 'champion'" in message
        assert "make run" in message and "composer train" in message
        assert running.store.predictions().empty
        # Still serving: the API answers, and asking again gives the same clear error.
        assert "/predict" in endpoints(client)
        assert "make run" in app_error(client)

        settings = running.service.settings
        trained = pipeline.run(settings, "demo", candidates=FAST_CANDIDATES)
        assert trained.promotion.promoted
        for _ in range(POLL_TRIES):
            try:
                *_, details, prediction_id, _card, _dropdown = predict(client)
                break
            except AppError:
                time.sleep(POLL_SLEEP_S)
        else:
            pytest.fail("the server did not pick up the new champion by itself")
        assert details["model"] == f"composer-classifier v{trained.version}"
        assert list(running.store.predictions()["id"]) == [prediction_id]
    finally:
        running.close()


def test_unreachable_registry_gives_clear_error(make_settings, tmp_path, monkeypatch):
    # No retries with backoff against a closed port (MLflow's default waits minutes).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}/"
    running = own_server(make_settings, tmp_path, tracking_uri=uri)
    try:
        client = connect(running.url)
        message = app_error(client)
        assert "Cannot reach the model registry" in message
        assert uri in message
        assert "COMPOSER_MLFLOW_TRACKING_URI" in message
        # The server keeps serving (and keeps saying why it cannot predict).
        assert "/feedback" in endpoints(client)
        assert "Cannot reach the model registry" in app_error(client)
        assert running.store.predictions().empty
    finally:
        running.close()
