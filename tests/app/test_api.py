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
from core.verdict import KINDS, Verdict
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


def predict(client: Client, path: Path = DEMO_CLIP) -> Verdict:
    """/identify -> one answer, typed (the API returns ``Verdict.as_dict()``)."""
    return Verdict.model_validate(client.predict(handle_file(str(path)), api_name="/identify"))


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
    verdict = predict(client)

    # One typed answer: a demo clip is an excerpt of a known work, so the work is recognised
    # (the model carries the work index); the style classifier's candidates come with it.
    assert verdict.kind == "work", verdict.headline
    assert verdict.work.composer == verdict.composer
    assert verdict.prediction_id and verdict.model == "composer-classifier v1"
    assert set(verdict.probabilities) == set(labels)
    assert sum(verdict.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    ranked = list(verdict.probabilities)
    assert [c.composer for c in verdict.candidates] == ranked[: len(verdict.candidates)]
    top = verdict.candidates[0]
    assert verdict.headline.startswith(f"This sounds like {verdict.work.composer}'s ")
    assert ", from about " in verdict.headline
    assert len(verdict.segments) >= 1 and verdict.sounds_like and len(verdict.heard) > 20
    assert verdict.features == []  # kept out of the API (the store has them)

    rows = running.store.predictions()
    row = rows.set_index("id").loc[verdict.prediction_id]
    assert row["source"] == "api"
    assert row["kind"] == verdict.kind
    assert row["model_version"] == "1"
    assert row["composer"] == top.composer
    assert len(row["features"]) == len(first.trained.model.feature_names)
    assert all(v is None or np.isfinite(v) for v in row["features"])
    assert row["latency_s"] > 0
    assert row["probabilities"] == pytest.approx(verdict.probabilities, abs=1e-6)
    assert row["true_composer"] is None


def test_the_api_is_one_typed_endpoint(client):
    """/identify (one dict, every kind a Verdict can have) and /feedback; nothing positional."""
    named = endpoints(client)
    assert set(named) == {"/identify", "/feedback"}
    assert len(named["/identify"]["returns"]) == 1
    assert set(KINDS) == {"work", "composer", "not_sure", "not_piano"}


def test_noise_is_not_piano_and_recorded_without_composer(live_app, client, tmp_path):
    """White noise: the answer says it is not piano music, and the store has no composer."""
    import soundfile as sf

    running, _ = live_app
    noise = tmp_path / "noise.wav"
    rng = np.random.default_rng(0)
    sf.write(noise, (0.3 * rng.standard_normal(22050 * 12)).astype(np.float32), 22050)
    verdict = predict(client, noise)
    assert verdict.kind == "not_piano" and verdict.composer is None
    assert verdict.candidates == [] and verdict.headline.startswith("This does not sound like")
    row = running.store.predictions().set_index("id").loc[verdict.prediction_id]
    assert row["kind"] == "not_piano" and row["composer"] is None


def test_feedback_is_recorded(live_app, client):
    running, first = live_app
    prediction_id = predict(client).prediction_id
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
        verdict = predict(client)
        seen.append(verdict.model)
        if verdict.model == wanted:
            break
        time.sleep(POLL_SLEEP_S)
    else:
        pytest.fail(f"the server never served v{second.version}; it served {seen}")

    assert running.service.current().version == second.version
    assert running.url == url_before  # same server, same client: no restart
    row = running.store.predictions().set_index("id").loc[verdict.prediction_id]
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
    assert set(summary["composers_predicted"]) <= set(running.service.current().card.composers)
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
        assert "make run" in message and "composer-id train" in message
        assert running.store.predictions().empty
        # Still serving: the API answers, and asking again gives the same clear error.
        assert "/identify" in endpoints(client)
        assert "make run" in app_error(client)

        settings = running.service.settings
        trained = pipeline.run(settings, "demo", candidates=FAST_CANDIDATES)
        assert trained.promotion.promoted
        for _ in range(POLL_TRIES):
            try:
                verdict = predict(client)
                break
            except AppError:
                time.sleep(POLL_SLEEP_S)
        else:
            pytest.fail("the server did not pick up the new champion by itself")
        assert verdict.model == f"composer-classifier v{trained.version}"
        assert list(running.store.predictions()["id"]) == [verdict.prediction_id]
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
