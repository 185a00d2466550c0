"""The prediction store on the local PostgreSQL server: round trip, nothing lost while the
server is away, concurrent migrations, the one-feedback migration on existing data."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, insert, select

from core.store import (
    FEEDBACK,
    PREDICTIONS,
    PredictionStore,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from tests.unit.test_store import T0, check_round_trip, make_record

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_round_trip_on_postgresql(postgres_url, tmp_path):
    store = PredictionStore(postgres_url, tmp_path / "spool")
    try:
        check_round_trip(store)
        assert store.spool_files() == []
    finally:
        store.close()


def test_nothing_is_lost_while_the_server_is_away(postgres_url, tmp_path):
    spool = tmp_path / "spool"
    down = PredictionStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x", spool)
    records = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    assert [down.record(r) for r in records] == [r.id for r in records]
    down.add_feedback(records[1].id, "Mozart")
    assert down.health().status == "degraded" and not down.health().database
    files = down.spool_files()
    assert sum(len(f.read_text().splitlines()) for f in files) == 4
    down.close()

    up = PredictionStore(postgres_url, spool)
    try:
        assert up.flush_spool() == 4
        frame = up.predictions()
        assert list(frame["id"]) == [r.id for r in records]
        assert list(frame["true_composer"]) == [None, "Mozart", None]
        assert frame.iloc[0]["probabilities"] == records[0].probabilities
        assert up.spool_files() == [] and list(spool.iterdir()) == []
        assert up.flush_spool() == 0
        with up.engine.connect() as connection:
            count = select(func.count())
            assert connection.execute(count.select_from(PREDICTIONS)).scalar() == 3
            assert connection.execute(count.select_from(FEEDBACK)).scalar() == 1
    finally:
        up.close()


def test_concurrent_migrations_do_not_crash(postgres_url):
    threads = 4
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            migrate(postgres_url)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_one_feedback_migration_keeps_the_latest_on_postgresql(postgres_url):
    command.upgrade(alembic_config(postgres_url), "0002_monitoring")
    engine = make_engine(postgres_url)
    records = [make_record(), make_record()]
    try:
        with engine.begin() as connection:
            for record in records:  # rows as they were before 0004 (no kind)
                old_row = {k: v for k, v in record.row().items() if k != "kind"}
                connection.execute(insert(PREDICTIONS).values(**old_row))
            for i, (record, composer) in enumerate(
                [(records[0], "Chopin"), (records[0], "Mozart"), (records[1], "Bach")]
            ):
                row = {"uid": f"{i:032d}", "prediction_id": record.id, "composer": composer}
                connection.execute(
                    insert(FEEDBACK).values(**row, created_at=T0 + timedelta(minutes=i))
                )
        migrate(postgres_url)
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            rows = connection.execute(select(FEEDBACK.c.prediction_id, FEEDBACK.c.composer))
            assert dict(rows.all()) == {records[0].id: "Mozart", records[1].id: "Bach"}
            kinds = connection.execute(select(PREDICTIONS.c.kind)).scalars().all()
            assert kinds == ["composer", "composer"]  # 0004: older rows were composer answers
    finally:
        engine.dispose()
