"""The store's tables (SQLAlchemy models). Alembic migrations in ``core/migrations`` create
them; a unit test checks that the migrations and these models agree."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Column sizes, shared with the checks that run before a record is acknowledged.
ID_LENGTH = 32
COMPOSER_LENGTH = 128
MODEL_NAME_LENGTH = 255
VERSION_LENGTH = 64
SCHEMA_LENGTH = 64
PATH_LENGTH = 1024
SOURCE_LENGTH = 16
KIND_LENGTH = 16


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def finite(value: Any) -> float | None:
    """JSON has no NaN/inf (PostgreSQL rejects them): store those as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class PredictionRow(Base):
    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH))
    model_version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    # The classifier's first choice; NULL for a "not piano music" answer (migration 0004).
    composer: Mapped[str | None] = mapped_column(String(COMPOSER_LENGTH), nullable=True)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    features: Mapped[list[float | None]] = mapped_column(JSON)
    feature_schema: Mapped[str] = mapped_column(String(SCHEMA_LENGTH))
    latency_s: Mapped[float] = mapped_column(Float)
    audio_path: Mapped[str | None] = mapped_column(String(PATH_LENGTH))
    # work | composer | not_sure | not_piano (core.verdict.KINDS); older rows are 'composer'.
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH), server_default="composer")


class FeedbackRow(Base):
    """At most one row per prediction (migration 0003): a second feedback replaces the first."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)  # client-generated
    prediction_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("predictions.id", ondelete="CASCADE"), unique=True
    )
    composer: Mapped[str] = mapped_column(String(COMPOSER_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitoringSummaryRow(Base):
    """One row per monitored window, written by ``core.monitor.run_monitoring`` (migration
    0002_monitoring); re-running a window replaces its row."""

    __tablename__ = "monitoring_summaries"
    __table_args__ = (UniqueConstraint("window_start", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model_version: Mapped[str | None] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))  # "ok" | "not enough data"
    drift_share: Mapped[float | None] = mapped_column(Float)
    drifted_columns: Mapped[int | None] = mapped_column(Integer)
    n_columns: Mapped[int | None] = mapped_column(Integer)
    prediction_drift: Mapped[bool | None] = mapped_column(Boolean)
    prediction_drift_score: Mapped[float | None] = mapped_column(Float)
    prediction_mix: Mapped[dict[str, float] | None] = mapped_column(JSON)
    answer_kinds: Mapped[dict[str, int] | None] = mapped_column(JSON)  # migration 0005
    not_piano_share: Mapped[float | None] = mapped_column(Float)
    feedback_rows: Mapped[int] = mapped_column(Integer)
    feedback_accuracy: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))  # "retrain" | "no action" | "not enough data"
    reason: Mapped[str] = mapped_column(Text)
    report_html: Mapped[str | None] = mapped_column(String(1024))  # relative to HOME/reports
    report_json: Mapped[str | None] = mapped_column(String(1024))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))


PREDICTIONS = PredictionRow.__table__
FEEDBACK = FeedbackRow.__table__
SUMMARIES = MonitoringSummaryRow.__table__
RECORD_COLUMNS = [c.name for c in PREDICTIONS.columns]
SUMMARY_COLUMNS = [c.name for c in SUMMARIES.columns if c.name != "id"]
