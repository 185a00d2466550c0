"""The prediction store on SQLite: migrations, round trip, time windows, checks before a record
is acknowledged, bounded feedback, the spool (outages, dead letters, crashed flushes), health,
kept audio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select

from core.config import Settings
from core.store import (
    FEEDBACK,
    PREDICTIONS,
    VERSION_TABLE,
    Base,
    FeedbackError,
    PredictionRecord,
    PredictionStore,
    RecordError,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    open_store,
    store_audio,
)
from core.verdict import Candidate, Verdict

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_record(composer: str = "Bach", **overrides) -> PredictionRecord:
    fields = {
        "source": "upload",
        "duration_s": 12.5,
        "sample_rate": 44100,
        "model_name": "composer-classifier",
        "model_version": "3",
        "composer": composer,
        "probabilities": {composer: 0.6, "Chopin": 0.3, "Mozart": 0.1},
        "features": [0.25, -1.5, 3.0, 1e-9],
        "feature_schema": "composer-features/v1",
        "latency_s": 0.42,
    }
    return PredictionRecord(**{**fields, **overrides})


def check_round_trip(store: PredictionStore) -> None:
    """Record two predictions, give one feedback twice (the latest wins), read them back."""
    first = make_record("Bach", created_at=T0, audio_path="/kept/abc.wav")
    second = make_record("Liszt", created_at=T0 + timedelta(minutes=1), source="microphone")
    assert store.record(first) == first.id
    assert store.record(second) == second.id
    store.add_feedback(first.id, "Chopin")
    store.add_feedback(first.id, "other:Domenico Scarlatti")  # replaces the first

    frame = store.predictions()
    assert list(frame["id"]) == [first.id, second.id]
    assert "true_composer" in frame.columns
    row = frame.iloc[0]
    assert row["composer"] == "Bach" and row["source"] == "upload"
    assert row["probabilities"] == first.probabilities
    assert list(row["probabilities"]) == ["Bach", "Chopin", "Mozart"]  # order kept
    assert row["features"] == first.features
    assert row["duration_s"] == 12.5 and row["sample_rate"] == 44100
    assert row["model_name"] == "composer-classifier" and row["model_version"] == "3"
    assert row["feature_schema"] == "composer-features/v1" and row["latency_s"] == 0.42
    assert row["audio_path"] == "/kept/abc.wav"
    assert row["created_at"] == pd.Timestamp(T0)
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert row["true_composer"] == "other:Domenico Scarlatti"
    assert frame.iloc[1]["true_composer"] is None
    assert frame.iloc[1]["audio_path"] is None
    health = store.health()
    assert (health.status, health.database, health.spooled, health.http_status) == (
        "ok",
        True,
        0,
        200,
    )
    assert count_rows(store, FEEDBACK) == 1  # one feedback per prediction

    with pytest.raises(KeyError, match="no prediction"):
        store.add_feedback("0" * 32, "Bach")


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"


@pytest.fixture()
def store(sqlite_url, tmp_path):
    store = PredictionStore(sqlite_url, tmp_path / "spool")
    yield store
    store.close()


def test_migrate_twice_is_idempotent_and_matches_the_models(sqlite_url):
    migrate(sqlite_url)
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            assert {"predictions", "feedback", VERSION_TABLE} <= tables
            assert current_revision(connection) == head_revision() == "0005_answer_kinds"
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, Base.metadata) == []  # migration == models
    finally:
        engine.dispose()


def test_round_trip(store):
    check_round_trip(store)


def test_time_window(store):
    records = [make_record(created_at=T0 + timedelta(hours=hours)) for hours in range(4)]
    for record in records:
        store.record(record)
    ids = [r.id for r in records]

    def window(start, end):
        return list(store.predictions(start, end)["id"])

    assert window(None, None) == ids
    assert window(T0 + timedelta(hours=1), None) == ids[1:]
    assert window(None, T0 + timedelta(hours=2)) == ids[:2]  # end is exclusive
    assert window(T0 + timedelta(hours=1), T0 + timedelta(hours=3)) == ids[1:3]
    naive = (T0 + timedelta(hours=1)).replace(tzinfo=None)  # naive bounds mean UTC
    assert window(naive, None) == ids[1:]
    paris = timezone_offset(2)
    assert window((T0 + timedelta(hours=3)).astimezone(paris), None) == ids[3:]
    empty = store.predictions(T0 + timedelta(days=1), None)
    assert empty.empty and "true_composer" in empty.columns


def timezone_offset(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_record_from_verdict_and_validation():
    verdict = Verdict(
        kind="not_sure",
        headline="Not sure: Chopin or Bach",
        candidates=[Candidate(composer="Chopin", probability=0.3)],
        probabilities={"Chopin": 0.3, "Bach": 0.2},
        features=[1.0, float("nan"), float(np.float32(2.5))],
        seconds=30.0,
        sample_rate=48000,
        latency_s=0.2,
    )
    record = PredictionRecord.from_verdict(
        verdict, "api", "composer-classifier", 7, "composer-features/v1"
    )
    assert record.features == [1.0, None, 2.5]  # NaN is not JSON
    assert record.model_version == "7" and record.duration_s == 30.0
    assert (record.kind, record.composer) == ("not_sure", "Chopin")  # the first choice
    assert len(record.id) == 32 and record.created_at.tzinfo is not None
    assert record.audio_path is None
    assert PredictionRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="source"):
        make_record(source="carrier-pigeon")
    with pytest.raises(ValueError, match="kind"):
        make_record(kind="guess")
    old = record.to_json()
    del old["kind"]  # spooled before kinds existed
    assert PredictionRecord.from_json(old).kind == "composer"


def test_every_kind_is_stored_and_read_back(store):
    """The four kinds survive the store; a not-piano answer has no composer."""
    for kind in ("work", "composer", "not_sure", "not_piano"):
        store.record(make_record("Bach", kind=kind))
    frame = store.predictions()
    assert list(frame["kind"]) == ["work", "composer", "not_sure", "not_piano"]
    assert frame.iloc[-1]["composer"] is None
    assert list(frame["composer"][:3]) == ["Bach"] * 3


def count_rows(store: PredictionStore, table) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def test_feedback_is_bounded_and_one_per_prediction(store):
    record = make_record("Bach")
    store.record(record)
    for bad, message in [
        ("", "Choose the composer"),
        ("Haydn", "not a composer this model knows"),
        ("B" * 20_000_000, "too long"),
        ("Ba\x00ch", "control characters"),
        ("other:", "other composer's name"),
        ("other:" + "x" * 61, "too long"),
        ("other:Sa\x07tie", "control characters"),
    ]:
        with pytest.raises(FeedbackError, match=message):
            store.add_feedback(record.id, bad)
    first = store.add_feedback(record.id, "Chopin")
    assert store.add_feedback(record.id, "  OTHER:  Erik Satie ").composer == "other:Erik Satie"
    assert count_rows(store, FEEDBACK) == 1
    assert store.predictions().iloc[0]["true_composer"] == "other:Erik Satie"
    # An older feedback replayed (a late spool) does not replace a newer one.
    with store.engine.begin() as connection:
        from core.store.writes import upsert_feedback

        assert upsert_feedback(connection, first) == 0
    assert store.predictions().iloc[0]["true_composer"] == "other:Erik Satie"
    with pytest.raises(KeyError, match="no prediction"):
        store.add_feedback("0" * 32, "Bach")


def test_records_that_would_not_fit_are_refused_before_they_are_acknowledged():
    with pytest.raises(RecordError, match="composer is too long"):
        make_record("x" * 200)
    with pytest.raises(RecordError, match="control characters"):
        make_record("Bach\x00")
    with pytest.raises(RecordError, match="model_version"):
        make_record(model_version="9" * 65)


def test_migration_keeps_the_latest_feedback_of_existing_data(sqlite_url):
    from alembic import command

    engine = make_engine(sqlite_url)  # creates the database's folder
    command.upgrade(alembic_config(sqlite_url), "0002_monitoring")
    record = make_record()
    try:
        with engine.begin() as connection:
            old_row = {k: v for k, v in record.row().items() if k != "kind"}  # before 0004
            connection.execute(insert(PREDICTIONS).values(**old_row))
            for i, composer in enumerate(["Chopin", "Mozart", "Bach"]):
                connection.execute(
                    insert(FEEDBACK).values(
                        uid=f"{i:032d}",
                        prediction_id=record.id,
                        composer=composer,
                        created_at=T0 + timedelta(minutes=(1, 3, 2)[i]),
                    )
                )
        migrate(sqlite_url)
        with engine.connect() as connection:
            rows = connection.execute(select(FEEDBACK.c.composer)).all()
            kinds = connection.execute(select(PREDICTIONS.c.kind)).all()
            assert current_revision(connection) == head_revision()
        assert [r[0] for r in rows] == ["Mozart"]  # the latest one
        assert [k[0] for k in kinds] == ["composer"]  # older rows were composer answers
    finally:
        engine.dispose()


def test_health_is_down_when_nothing_can_be_kept(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = PredictionStore(f"sqlite:///{tmp_path}", blocker / "spool")
    health = store.health()
    assert (health.status, health.http_status, health.database) == ("down", 503, False)


def test_open_store_takes_everything_from_settings(tmp_path):
    settings = Settings(
        home=tmp_path, db_connect_timeout_s=1.5, db_statement_timeout_s=2.5, db_retry_interval_s=7
    )
    store = open_store(settings)
    try:
        assert store.spool_dir == settings.spool_dir and store.url == settings.database_url
        assert (store.call_timeout, store.retry_interval) == (4.0, 7)
    finally:
        store.close()


def test_store_audio_keeps_a_copy_under_a_generated_name(tmp_path):
    src = tmp_path / "My Secret Recording (Bach).WAV"
    src.write_bytes(b"RIFF....WAVE")
    kept = store_audio(src, Settings(home=tmp_path / "home", keep_audio=True))
    assert kept is not None
    path = Path(kept)
    assert path.parent == Settings(home=tmp_path / "home").audio_store_dir
    assert path.read_bytes() == src.read_bytes()
    assert "Secret" not in path.name and path.suffix == ".wav" and len(path.stem) == 32
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp leftovers
    assert store_audio(src, Settings(home=tmp_path / "other", keep_audio=False)) is None
    assert not (tmp_path / "other" / "audio").exists()
