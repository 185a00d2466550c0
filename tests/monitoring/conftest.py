"""Monitoring tests share one trained champion and one set of recorded traffic (session
scope: training and predicting are the slow parts).

Traffic is made in-process, as the app would record it: ``core.identify.identify`` on demo
clips (unchanged, or with white noise at 10 dB SNR), ``PredictionRecord.from_verdict``,
``PredictionStore.record``, user feedback, then ``PredictionStore.backdate`` to a fixed day:

* ``IN_DIST``: every held-out work of the champion, unchanged, all with feedback;
* ``SHIFTED``: 30 of them with white noise (10 dB SNR), half with feedback;
* ``FEW``: 5 unchanged predictions (below the 30-row minimum).

One test goes through the real app API instead (``gradio_app.simulate`` against a live server).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import monitor, pipeline, registry
from core.config import Settings
from core.identify import identify
from core.model import ComposerModel
from core.store import PredictionRecord, PredictionStore
from gradio_app import simulate
from tests.conftest import FAST_CANDIDATES

DAY = timedelta(days=1)
IN_DIST = datetime(2026, 3, 1, tzinfo=UTC)
SHIFTED = datetime(2026, 3, 2, tzinfo=UTC)
FEW = datetime(2026, 3, 3, tzinfo=UTC)
SIMULATED = datetime(2026, 3, 5, tzinfo=UTC)
SHIFTED_ROWS = 30
FEW_ROWS = 5


@dataclass
class Traffic:
    settings: Settings
    model: ComposerModel
    version: str
    ids: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, list[PredictionRecord]] = field(default_factory=dict)

    def store(self) -> PredictionStore:
        return PredictionStore(self.settings.database_url, self.settings.spool_dir)


def record_clips(store, model, clips, name, version, feedback_every: int | None):
    """Identify each clip in-process and record it like the app; feedback on every n-th."""
    schema = model.feature_config.schema_id
    records = []
    for i, clip in enumerate(clips):
        verdict = identify(model, clip.path)
        record = PredictionRecord.from_verdict(verdict, "simulation", name, version, schema)
        store.record(record)
        if feedback_every and i % feedback_every == 0:
            store.add_feedback(record.id, clip.composer)
        records.append(record)
    return records


@pytest.fixture(scope="session")
def traffic(make_settings, tmp_path_factory) -> Traffic:
    data = tmp_path_factory.mktemp("monitoring-data")
    settings = make_settings(
        database_url=f"sqlite:///{data / 'predictions.db'}", spool_dir=data / "spool"
    )
    pipeline.run(settings, "demo", candidates=FAST_CANDIDATES)
    model, found = registry.load_version(settings)
    version, name = str(found.version), settings.model_name
    traffic = Traffic(settings, model, version)
    store = traffic.store()
    try:
        clean = simulate.prepare_clips(settings, model, "in-distribution", data)
        traffic.records["in"] = record_clips(store, model, clean, name, version, 1)
        noisy = simulate.prepare_clips(settings, model, "noise", data, seed=1)[:SHIFTED_ROWS]
        traffic.records["shifted"] = record_clips(store, model, noisy, name, version, 2)
        few = []
        for original in traffic.records["in"][:FEW_ROWS]:  # same audio, new requests
            copy = {**original.to_json(), "id": uuid.uuid4().hex}
            few.append(PredictionRecord.from_json(copy))
            store.record(few[-1])
        traffic.records["few"] = few
        for key, day in (("in", IN_DIST), ("shifted", SHIFTED), ("few", FEW)):
            traffic.ids[key] = [r.id for r in traffic.records[key]]
            moved = store.backdate(traffic.ids[key], day + timedelta(hours=1), timedelta(minutes=5))
            assert moved == len(traffic.ids[key])
    finally:
        store.close()
    return traffic


@pytest.fixture(scope="session")
def monitored(traffic) -> dict[str, dict]:
    """run_monitoring on the three windows, once."""
    return {
        key: monitor.run_monitoring(traffic.settings, day, day + DAY)
        for key, day in (("in", IN_DIST), ("shifted", SHIFTED), ("few", FEW))
    }


class FakeAirflow:
    """Just enough of Airflow's REST API: POST /auth/token and POST /api/v2/dags/<id>/dagRuns
    (Bearer token required). Every request is kept for the test to inspect."""

    TOKEN = "fake-jwt-token"

    def __init__(self, user: str = "admin", password: str = "s3cret"):
        self.user, self.password = user, password
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": body}
                )
                if self.path == "/auth/token":
                    if (body.get("username"), body.get("password")) != (fake.user, fake.password):
                        return self._reply(401, {"detail": "Invalid credentials"})
                    return self._reply(201, {"access_token": fake.TOKEN})
                if self.path.startswith("/api/v2/dags/") and self.path.endswith("/dagRuns"):
                    if self.headers.get("Authorization") != f"Bearer {fake.TOKEN}":
                        return self._reply(401, {"detail": "Not authenticated"})
                    dag_id = self.path.split("/")[4]
                    run_id = f"manual__fake_{len(fake.requests)}"
                    return self._reply(
                        200,
                        {"dag_id": dag_id, "dag_run_id": run_id, "conf": body.get("conf")},
                    )
                return self._reply(404, {"detail": "Not Found"})

            def _reply(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAirflow:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dag_runs(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/dagRuns")]


@pytest.fixture()
def fake_airflow():
    with FakeAirflow() as fake:
        yield fake


def report_path(settings: Settings, relative: str | None) -> Path:
    assert relative, "no report"
    return monitor.reports_dir(settings) / relative
