"""The registered model answers audio end to end through MLflow's own server:
``mlflow models serve -m models:/composer-classifier@champion`` takes a clip (a path, or
samples + rate) and returns the same typed answer as the app (``core.verdict.Verdict``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from core import pipeline
from core.config import REPO_ROOT
from core.verdict import Verdict
from tests.app.conftest import free_port

pytestmark = pytest.mark.integration  # the default timeout: training featurizes the demo corpus

CLIP = sorted((REPO_ROOT / "data" / "demo" / "audio").rglob("*.ogg"))[0]
START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def mlflow_server(make_settings, tmp_path_factory):
    """A champion (one fast candidate, demo corpus only) served by ``mlflow models serve``."""
    settings = make_settings(use_pack=False)
    pipeline.run(settings, "demo", candidates=("logistic_regression",))
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    venv_bin = str(Path(sys.executable).parent)  # uvicorn is started by name
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    command = [
        *(sys.executable, "-m", "mlflow", "models", "serve"),
        *("-m", f"models:/{settings.model_name}@{settings.champion_alias}"),
        *("--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)),
    ]
    with log.open("w") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn it started
        server.wait(30)


def invoke(url: str, inputs: list[dict]) -> list[Verdict]:
    answer = httpx.post(f"{url}/invocations", json={"inputs": inputs}, timeout=120)
    assert answer.status_code == 200, answer.text[-3000:]
    return [Verdict.model_validate(item) for item in answer.json()["predictions"]]


def test_a_clip_by_path_and_by_samples(mlflow_server):
    url, log = mlflow_server
    samples, rate = sf.read(CLIP, dtype="float32")
    by_path, by_samples = invoke(
        url,
        [{"path": str(CLIP)}, {"samples": samples[: rate * 12].tolist(), "sample_rate": rate}],
    )
    for verdict in (by_path, by_samples):
        assert verdict.kind in ("work", "composer", "not_sure")  # a demo clip is piano music
        assert verdict.candidates and verdict.headline
    assert by_path.seconds == pytest.approx(30.0, abs=0.1)
    assert by_samples.seconds == pytest.approx(12.0, abs=0.1)
    assert "Add type hints" not in log.read_text()


def test_a_bad_input_is_a_client_error(mlflow_server):
    url, _ = mlflow_server
    answer = httpx.post(f"{url}/invocations", json={"inputs": [{"path": 3}]}, timeout=60)
    assert answer.status_code == 400
