"""Fault injection: the prediction store against the real PostgreSQL server, through a TCP
proxy this test runs itself (kill = close every connection and refuse new ones; freeze = keep
the sockets open and forward nothing, as a stopped process or a dead peer would; restore).

Concurrent writers record predictions and feedback through ``PredictionStore`` (the app's code
path) while the proxy is killed, restored, frozen and restored; afterwards every acknowledged
prediction and feedback must be in the database exactly once. Also: the old bug (flush during
an outage, write, flush), rows the database refuses (dead letters), a locked SQLite file, and
flushers killed mid-flush (real processes, SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from core.config import REPO_ROOT
from core.store import PredictionStore
from tests.integration.fault_proxy import FaultProxy
from tests.integration.store_traffic import Traffic, drain, stored, write_until
from tests.unit.test_store import make_record

pytestmark = pytest.mark.integration

# Short deadlines so that a frozen database costs seconds, not the defaults' 7 s.
CONNECT_S, STATEMENT_S, RETRY_S = 2.0, 1.0, 0.5


@pytest.fixture()
def proxy():
    server = os.environ.get("COMPOSER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    host, port = server.rsplit("@", 1)[-1].split(":")
    running = FaultProxy((host, int(port)))
    yield running
    running.close()


def open_through(proxy: FaultProxy, postgres_url: str, spool) -> PredictionStore:
    return PredictionStore(
        proxy.url(postgres_url),
        spool,
        CONNECT_S,
        statement_timeout=STATEMENT_S,
        retry_interval=RETRY_S,
    )


def test_nothing_lost_nothing_doubled_through_kill_and_freeze(postgres_url, proxy, tmp_path):
    spool = tmp_path / "spool"
    # Two stores sharing one spool folder: two app processes on one machine.
    stores = [open_through(proxy, postgres_url, spool) for _ in range(2)]
    assert stores[0].health().status == "ok"  # migrated through the proxy
    traffic, stop = Traffic(), threading.Event()
    writers = [
        threading.Thread(target=write_until, args=(stores[i % 2], stop, traffic, i))
        for i in range(3)
    ]
    started = time.monotonic()
    for writer in writers:
        writer.start()
    timeline = []

    def phase(name: str, seconds: float, action=None) -> None:
        if action:
            action()
        timeline.append(f"{name} {seconds:g}s")
        time.sleep(seconds)

    phase("up", 2)
    phase("killed", 2, proxy.kill)
    assert stores[0].flush_spool() == 0  # the old bug's first step: a flush during the outage
    phase("killed", 2)
    degraded = stores[1].health()
    phase("restored", 4, proxy.restore)
    phase("frozen", 6, proxy.freeze)
    frozen = stores[0].health()
    phase("restored", 4, proxy.restore)
    phase("killed", 2, proxy.kill)
    phase("restored", 3, proxy.restore)
    stop.set()
    for writer in writers:
        writer.join(30)
    writing_s = time.monotonic() - started
    drain(stores)

    ids, feedback_rows, feedback = stored(postgres_url)
    answered = Counter(traffic.answered)
    lost = [i for i in answered if i not in ids]
    doubled = [i for i, n in ids.items() if n > 1]
    unasked = [i for i in ids if i not in answered]
    feedback_lost = [i for i in traffic.feedback if i not in feedback]
    feedback_doubled = [i for i, n in feedback_rows.items() if n > 1]
    feedback_wrong = [i for i, c in traffic.feedback.items() if feedback.get(i, c) != c]
    dead = sum(store.health().dead_letters for store in stores[:1])
    print(
        f"\nfault run ({' -> '.join(timeline)}; writing {writing_s:.1f} s, "
        f"{proxy.connections} proxied connections):\n"
        f"  predictions: answered {len(answered)}, stored {sum(ids.values())}, "
        f"lost {len(lost)}, duplicated {len(doubled)}, stored but never answered "
        f"{len(unasked)}\n"
        f"  feedback: {traffic.feedback_calls} acknowledged calls on {len(traffic.feedback)} "
        f"predictions, stored {sum(feedback_rows.values())}, lost {len(feedback_lost)}, "
        f"duplicated {len(feedback_doubled)}, not the latest {len(feedback_wrong)}\n"
        f"  slowest answer {max(traffic.latencies):.2f} s (deadline {CONNECT_S + STATEMENT_S:g}"
        f" s), health while killed: {degraded.message!r}, while frozen: {frozen.message!r}, "
        f"dead letters {dead}, left in the spool {stores[0].health().spooled}"
    )
    for store in stores:
        store.close()
    assert traffic.errors == []
    assert len(answered) == len(traffic.answered) > 100
    assert (lost, doubled, unasked) == ([], [], [])
    assert (feedback_lost, feedback_doubled, feedback_wrong) == ([], [], [])
    assert traffic.feedback_calls > len(traffic.feedback) > 20  # some were replaced
    assert dead == 0 and stores[0].spool_files() == []
    assert degraded.status == "degraded" and not degraded.database
    assert frozen.status == "degraded" and not frozen.database
    assert max(traffic.latencies) < CONNECT_S + STATEMENT_S + 1.5  # answered, not hung


def test_flush_during_an_outage_then_write_then_flush(postgres_url, proxy, tmp_path):
    """The old bug, step by step: the failed flush's claim was overwritten by the next one."""
    store = open_through(proxy, postgres_url, tmp_path / "spool")
    try:
        assert store.health().status == "ok"
        proxy.kill()
        first = [make_record() for _ in range(5)]
        for record in first:
            store.record(record)
        store.add_feedback(first[0].id, "Chopin")
        assert store.flush_spool() == 0
        second = [make_record() for _ in range(5)]
        for record in second:
            store.record(record)
        assert store.flush_spool() == 0
        assert store.health().spooled == 11
        proxy.restore()
        assert store.flush_spool() == 11
        ids, _, feedback = stored(postgres_url)
        assert set(ids) == {r.id for r in first + second} and max(ids.values()) == 1
        assert feedback == {first[0].id: "Chopin"}
        assert store.spool_files() == []
    finally:
        store.close()


def test_rows_the_database_refuses_become_dead_letters(postgres_url, tmp_path):
    spool = tmp_path / "spool"
    down = PredictionStore("postgresql://postgres@127.0.0.1:9/none", spool, retry_interval=0)
    good = [make_record() for _ in range(4)]
    for record in good:
        down.record(record)
    down.add_feedback(good[0].id, "Mozart")
    # What an older version accepted while the database was away (issue 11): a 200-character
    # composer. The feedback passes JSON parsing and PostgreSQL refuses it (varchar(128)); the
    # prediction is refused by the record checks when read.
    long_name = "x" * 200
    poison_feedback = {
        "uid": "e" * 32,
        "prediction_id": good[1].id,
        "composer": long_name,
        "created_at": good[1].created_at.isoformat(),
    }
    down.spool.append({"kind": "feedback", "attempts": 0, "data": poison_feedback})
    poison_prediction = {**make_record().to_json(), "composer": long_name}
    down.spool.append({"kind": "prediction", "data": poison_prediction})
    down.close()

    up = PredictionStore(postgres_url, spool)
    try:
        assert up.flush_spool() == 5
        ids, _, feedback = stored(postgres_url)
        assert set(ids) == {r.id for r in good} and feedback == {good[0].id: "Mozart"}
        health = up.health()
        assert (health.status, health.spooled, health.dead_letters) == ("degraded", 0, 2)
        letters = [
            json.loads(line)
            for path in spool.glob("dead-*.jsonl")
            for line in path.read_text().splitlines()
        ]
        reasons = sorted(letter["reason"] for letter in letters)
        assert reasons[0].startswith("StringDataRightTruncation"), reasons
        assert reasons[1].startswith("unreadable: composer is too long"), reasons
    finally:
        up.close()


def test_a_locked_sqlite_file_makes_writes_spool_then_drain(tmp_path):
    path = tmp_path / "predictions.db"
    store = PredictionStore(
        f"sqlite:///{path}", tmp_path / "spool", 1.0, statement_timeout=0.3, retry_interval=0
    )
    try:
        assert store.health().status == "ok"
        before = make_record()
        store.record(before)
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        records = [make_record() for _ in range(3)]
        started = time.monotonic()
        for record in records:
            store.record(record)
        store.add_feedback(before.id, "Bach")
        elapsed = time.monotonic() - started
        health = store.health()
        assert (health.status, health.spooled) == ("degraded", 4)
        locker.execute("COMMIT")
        locker.close()
        assert store.flush_spool() == 4
        frame = store.predictions()
        assert set(frame["id"]) == {r.id for r in [before, *records]}
        assert frame.set_index("id").loc[before.id, "true_composer"] == "Bach"
        assert store.health().status == "ok"
        print(f"\n4 writes against a locked SQLite file answered in {elapsed:.2f} s")
        assert elapsed < 4 * 1.3 + 1  # each waits at most the busy timeout (+ connect)
    finally:
        store.close()


# A flusher in its own process, killed with SIGKILL mid-flush: after claiming, or after
# committing the rows but before deleting the claimed file.
DYING_FLUSHER = """
import os, signal, sys
from core.store import PredictionStore
from core.store.repository import _Batch
store = PredictionStore(sys.argv[1], sys.argv[2])
claims = store.spool.claim_all()
assert claims, "nothing to claim"
if sys.argv[3] == "after-commit":
    store._write(_Batch.read(claims))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("moment", ["after-claim", "after-commit"])
def test_a_flusher_killed_mid_flush_loses_and_doubles_nothing(postgres_url, tmp_path, moment):
    spool = tmp_path / "spool"
    down = PredictionStore("postgresql://postgres@127.0.0.1:9/none", spool, retry_interval=0)
    records = [make_record() for _ in range(6)]
    for record in records:
        down.record(record)
    down.add_feedback(records[0].id, "Bach")
    down.close()
    up = PredictionStore(postgres_url, spool)
    try:
        up.health()  # migrate first, so the dying flusher only writes rows
        dying = subprocess.run(
            [sys.executable, "-c", DYING_FLUSHER, postgres_url, str(spool), moment],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
        )
        assert dying.returncode == -signal.SIGKILL, dying.stderr.decode()[-2000:]
        left = [p.name for p in up.spool_files()]
        assert len(left) == 1 and left[0].startswith("claimed-")
        ids, _, _ = stored(postgres_url)
        assert len(ids) == (6 if moment == "after-commit" else 0)
        assert up.flush_spool() == (0 if moment == "after-commit" else 7)
        ids, feedback_rows, feedback = stored(postgres_url)
        assert ids == Counter({r.id: 1 for r in records})
        assert feedback == {records[0].id: "Bach"} and sum(feedback_rows.values()) == 1
        assert up.spool_files() == [] and up.health().status == "ok"
    finally:
        up.close()


def test_the_app_answers_feedback_and_health_while_the_database_is_frozen(
    make_settings, postgres_url, proxy, tmp_path
):
    """The real Gradio app with its store behind the proxy (no model needed: the prediction is
    recorded through the same store, the app's ``record`` path, before the freeze). Frozen, the
    feedback is answered within the deadline and /health says degraded; restored, the feedback
    lands in the database and /health says ok. Refused answers get the store's message."""
    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from gradio_app.app import launch
    from tests.app.conftest import app_test_settings

    settings = app_test_settings(make_settings, tmp_path).model_copy(
        update={
            "database_url": proxy.url(postgres_url),
            "app_workers": 0,
            "db_connect_timeout_s": CONNECT_S,
            "db_statement_timeout_s": STATEMENT_S,
            "db_retry_interval_s": RETRY_S,
        }
    )
    running = launch(settings, block=False)
    try:
        client = Client(running.url, verbose=False, download_files=False, analytics_enabled=False)

        def health() -> tuple[int, dict, float]:
            started = time.monotonic()
            answer = httpx.get(running.url.rstrip("/") + "/health", timeout=30)
            return answer.status_code, answer.json(), time.monotonic() - started

        def feedback(prediction_id: str, composer: str, other: str | None = None):
            started = time.monotonic()
            thanks = client.predict(prediction_id, composer, other, api_name="/feedback")
            return thanks, time.monotonic() - started

        record = make_record("Bach")
        running.store.record(record)
        code, state, _ = health()
        assert (code, state["status"], state["spooled"]) == (200, "ok", 0)
        for composer, message in [
            ("Haydn", "not a composer this model knows"),
            ("x" * 300, "too long"),
        ]:
            with pytest.raises(AppError, match=message):
                feedback(record.id, composer)

        proxy.freeze()
        thanks, frozen_s = feedback(record.id, "Someone else (not in the list)", "Clara Schumann")
        code, state, health_s = health()
        assert "other:Clara Schumann" in thanks
        assert (code, state["status"], state["database"], state["spooled"]) == (
            200,
            "degraded",
            False,
            1,
        )
        proxy.restore()
        deadline = time.monotonic() + 30
        while health()[1]["status"] != "ok" and time.monotonic() < deadline:
            running.store.flush_spool()
            time.sleep(0.5)
        _, _, stored_feedback = stored(postgres_url)
        print(
            f"\napp with the database frozen: feedback answered in {frozen_s:.2f} s, /health in "
            f"{health_s:.2f} s ({state['message']}); after restore {health()[1]['message']}"
        )
        assert stored_feedback == {record.id: "other:Clara Schumann"}
        assert frozen_s < CONNECT_S + STATEMENT_S + 2
        assert health_s < CONNECT_S + STATEMENT_S + 2
        assert health()[:2] == (
            200,
            {**state, "status": "ok", "database": True, "spooled": 0, "message": "ok"},
        )
    finally:
        running.close()
        running.store.close()
