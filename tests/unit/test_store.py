"""The prediction store on SQLite: migrations, round trip, time windows, spool, kept audio."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from core.config import Settings
from core.predict import Prediction
from core.store import (
    FEEDBACK,
    PREDICTIONS,
    VERSION_TABLE,
    Base,
    PredictionRecord,
    PredictionStore,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    store_audio,
)

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
    store.add_feedback(first.id, "Handel")
    store.add_feedback(first.id, "Scarlatti")

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
    assert row["true_composer"] == "Scarlatti"
    assert frame.iloc[1]["true_composer"] is None
    assert frame.iloc[1]["audio_path"] is None
    assert store.healthy()

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
            assert current_revision(connection) == head_revision() == "0002_monitoring"
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


def test_record_from_prediction_and_validation():
    prediction = Prediction(
        composer="Chopin",
        probabilities={"Chopin": 0.8, "Bach": 0.2},
        segments=pd.DataFrame(),
        neighbours=pd.DataFrame(),
        features=np.array([1.0, np.nan, np.float32(2.5)]),
        seconds=30.0,
        sample_rate=48000,
        latency_s=0.2,
    )
    record = PredictionRecord.from_prediction(
        prediction, "api", "composer-classifier", 7, "composer-features/v1"
    )
    assert record.features == [1.0, None, 2.5]  # NaN is not JSON
    assert record.model_version == "7" and record.duration_s == 30.0
    assert len(record.id) == 32 and record.created_at.tzinfo is not None
    assert record.audio_path is None
    assert PredictionRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="source"):
        make_record(source="carrier-pigeon")


def test_spool_when_unreachable_then_flush_once(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    # A directory cannot be opened as a SQLite database: "unable to open database file".
    down = PredictionStore(f"sqlite:///{tmp_path}", spool)
    records = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    assert [down.record(r) for r in records] == [r.id for r in records]
    down.add_feedback(records[0].id, "Haydn")  # cannot be checked: spooled as well
    assert not down.healthy()
    files = down.spool_files()
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 4
    backup = tmp_path / "backup.jsonl"
    shutil.copy(files[0], backup)

    up = PredictionStore(sqlite_url, spool)
    assert up.flush_spool() == 4
    assert up.spool_files() == []
    # A crash after the commit but before the spool file was deleted: flushing it again
    # writes nothing new.
    shutil.copy(backup, files[0])
    assert up.flush_spool() == 0
    assert up.flush_spool() == 0
    frame = up.predictions()
    assert list(frame["id"]) == [r.id for r in records]
    assert list(frame["true_composer"]) == ["Haydn", None, None]
    with up.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(PREDICTIONS)).scalar() == 3
        assert connection.execute(select(func.count()).select_from(FEEDBACK)).scalar() == 1


def test_record_drains_the_spool_by_itself(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    down = PredictionStore(f"sqlite:///{tmp_path}", spool)
    spooled = make_record(created_at=T0)
    down.record(spooled)
    up = PredictionStore(sqlite_url, spool)
    up.add_feedback(spooled.id, "Brahms")  # known from the spool: no KeyError
    up.record(make_record(created_at=T0 + timedelta(seconds=1)))
    assert up.spool_files() == []
    frame = up.predictions()
    assert len(frame) == 2 and frame.iloc[0]["true_composer"] == "Brahms"


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
