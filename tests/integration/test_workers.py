"""Predictions in worker processes: the same answer as in the server process, the version
the server asks for, and a crash or a killed server costs no more than it must."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.audio import AudioError
from core.config import REPO_ROOT
from core.serving import ChampionService, ModelUnavailable
from core.workers import PredictionWorkers, WorkerCrashed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIPS = sorted((REPO_ROOT / "data" / "demo" / "audio").rglob("*.ogg"))[:3]


@pytest.fixture(scope="module")
def served(trained):
    settings, _ = trained
    service = ChampionService(settings, load_model=True)  # to compare with in-process answers
    return settings, service.current()


@pytest.fixture()
def workers(served):
    settings, current = served
    pool = PredictionWorkers(settings, processes=1).start(current)
    yield pool
    pool.close()


def test_workers_answer_as_the_server_process_would(served, workers):
    _, current = served
    settings, current = served
    for clip in CLIPS:
        here = current.identify(clip, settings)
        there = workers.identify(current, clip)
        assert (there.kind, there.composer) == (here.kind, here.composer)
        assert there.model == here.model == f"composer-classifier v{current.version}"
        assert list(there.probabilities) == list(here.probabilities)
        np.testing.assert_allclose(
            list(there.probabilities.values()), list(here.probabilities.values())
        )
        np.testing.assert_allclose(there.features, here.features)
        assert there.sounds_like == here.sounds_like


def test_in_process_mode_uses_the_served_model(served):
    settings, current = served
    local = PredictionWorkers(settings, processes=0).start(current)
    assert (
        local.identify(current, CLIPS[0]).probabilities
        == current.identify(CLIPS[0], settings).probabilities
    )


def test_a_server_with_workers_reads_the_card_from_the_registry(served):
    """The server process does not load the model its workers load: the card comes from
    the registry and says what the loaded model says."""
    settings, current = served
    card_only = ChampionService(settings, load_model=False).current()
    assert card_only.model is None
    assert card_only.card.composers == tuple(current.model.labels)
    assert card_only.card.feature_config == current.model.feature_config
    assert card_only.card.candidate == current.model.candidate
    assert card_only.card.recording_accuracy == pytest.approx(
        current.model.metrics["recording_accuracy"]
    )


def test_audio_errors_come_back_typed(served, workers, tmp_path):
    _, current = served
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio at all")
    with pytest.raises(AudioError, match=r"notes\.wav"):
        workers.identify(current, fake)
    assert workers.identify(current, CLIPS[0]).candidates  # and the worker is still fine


def test_a_version_the_worker_cannot_load_is_a_clear_error(served, workers):
    _, current = served
    missing = dataclasses.replace(current, card=dataclasses.replace(current.card, version="999"))
    with pytest.raises(ModelUnavailable, match="could not load composer-classifier v999"):
        workers.identify(missing, CLIPS[0])
    assert workers.identify(current, CLIPS[0]).candidates


def test_a_killed_worker_fails_only_its_request(served, workers):
    _, current = served
    pids = _worker_pids(workers)
    outcome: dict[str, BaseException | str] = {}

    def request() -> None:
        try:
            outcome["result"] = workers.identify(current, CLIPS[0]).kind
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.05)  # the request is in the worker (a 30 s clip takes > 0.1 s)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    thread.join(60)
    assert isinstance(outcome.get("error"), WorkerCrashed), outcome
    assert "keeps serving" in str(outcome["error"])
    # The next request gets a fresh worker.
    assert workers.identify(current, CLIPS[1]).candidates
    assert set(_worker_pids(workers)).isdisjoint(pids)


def test_a_pool_broken_between_requests_is_replaced_silently(served, workers):
    _, current = served
    for pid in _worker_pids(workers):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # the pool notices the dead worker and marks itself broken
    assert workers.identify(current, CLIPS[0]).candidates


def test_workers_leave_with_a_killed_server(served, tmp_path):
    settings, _ = served
    saved = tmp_path / "settings.pickle"
    saved.write_bytes(pickle.dumps(settings))
    script = textwrap.dedent(
        f"""
        import pickle, time
        from pathlib import Path
        from core.workers import PredictionWorkers
        settings = pickle.loads(Path({str(saved)!r}).read_bytes())
        pool = PredictionWorkers(settings, processes=1).start()
        print(*[p.pid for p in pool._running_pool()._processes.values()], flush=True)
        time.sleep(600)
        """
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        worker = int(server.stdout.readline().split()[0])
        assert _alive(worker)
    finally:
        server.kill()  # SIGKILL: no chance to shut the pool down
        server.wait(30)
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the worker outlived its server"


def _worker_pids(workers: PredictionWorkers) -> list[int]:
    return [process.pid for process in workers._running_pool()._processes.values()]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has left already
