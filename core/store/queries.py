"""Reads for monitoring and the reports page, the monitoring summaries' upsert, and the
simulation's back-dating: the store's SQL apart from recording."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from core.store.tables import (
    FEEDBACK,
    PREDICTIONS,
    RECORD_COLUMNS,
    SUMMARIES,
    SUMMARY_COLUMNS,
    as_utc,
    finite,
)
from core.store.writes import _dialect_insert


def in_window(query, column, start: datetime | None, end: datetime | None):
    """``start <= column < end``; either bound may be open (None); naive bounds are UTC."""
    if start is not None:
        query = query.where(column >= as_utc(start))
    if end is not None:
        query = query.where(column < as_utc(end))
    return query


def predictions_frame(
    connection: Connection, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Predictions in the window, oldest first, with the feedback's composer as
    ``true_composer`` (None without feedback)."""
    query = (
        select(*PREDICTIONS.columns, FEEDBACK.c.composer.label("true_composer"))
        .outerjoin(FEEDBACK, FEEDBACK.c.prediction_id == PREDICTIONS.c.id)
        .order_by(PREDICTIONS.c.created_at, PREDICTIONS.c.id)
    )
    query = in_window(query, PREDICTIONS.c.created_at, start, end)
    rows = [dict(row._mapping) for row in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "true_composer"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    for column in ("composer", "audio_path", "true_composer"):  # None stays None (not NaN)
        frame[column] = pd.Series([row[column] for row in rows], index=frame.index, dtype=object)
    return frame


def summaries_frame(
    connection: Connection, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Monitoring summaries whose window starts in [start, end), oldest window first."""
    query = select(*SUMMARIES.columns).order_by(SUMMARIES.c.window_start, SUMMARIES.c.id)
    query = in_window(query, SUMMARIES.c.window_start, start, end)
    rows = [dict(row._mapping) for row in connection.execute(query)]
    columns = [c.name for c in SUMMARIES.columns]
    # dtype=object: NULL stays None (not NaN) and integers stay integers.
    return pd.DataFrame(rows, columns=columns, dtype=object)


def summary_row(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A summary dict (as ``core.monitor`` builds it) as a row of ``monitoring_summaries``."""
    row = {name: summary.get(name) for name in SUMMARY_COLUMNS}
    for name in ("window_start", "window_end", "created_at"):
        value = row[name] if row[name] is not None else datetime.now(UTC)
        row[name] = as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    for name in ("drift_share", "prediction_drift_score", "feedback_accuracy", "not_piano_share"):
        row[name] = finite(row[name])
    row["rows"] = int(row["rows"] or 0)
    row["feedback_rows"] = int(row["feedback_rows"] or 0)
    row["reason"] = row["reason"] or ""
    return row


def upsert_summary(connection: Connection, row: dict[str, Any]) -> int:
    """Insert or replace the row of one window (keyed by its start and end); returns its id."""
    key = and_(
        SUMMARIES.c.window_start == row["window_start"],
        SUMMARIES.c.window_end == row["window_end"],
    )
    dialect_insert = _dialect_insert(connection)
    if dialect_insert is not None:
        statement = dialect_insert(SUMMARIES).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["window_start", "window_end"],
            set_={name: statement.excluded[name] for name in SUMMARY_COLUMNS},
        )
        connection.execute(statement)
    else:
        connection.execute(delete(SUMMARIES).where(key))
        connection.execute(insert(SUMMARIES).values(**row))
    return int(connection.execute(select(SUMMARIES.c.id).where(key)).scalar_one())


def backdate(connection: Connection, ids: Iterable[str], when: datetime, step: timedelta) -> int:
    """Move predictions to another time, the i-th id to ``when + i * step``; returns how many
    rows moved. For simulations and tests only."""
    moved = 0
    for i, prediction_id in enumerate(ids):
        statement = (
            update(PREDICTIONS)
            .where(PREDICTIONS.c.id == prediction_id)
            .values(created_at=as_utc(when) + i * step)
            .execution_options(preserve_rowcount=True)
        )
        moved += max(connection.execute(statement).rowcount, 0)
    return moved


def count_rows(connection: Connection) -> dict[str, int]:
    """Rows per table (for ``composer-id info``)."""
    return {
        table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        for table in (PREDICTIONS, FEEDBACK, SUMMARIES)
    }
