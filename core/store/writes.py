"""Idempotent writes, so a record written twice (a replayed spool, a call that timed out but
went through) is stored once: predictions are inserted unless their id is there; feedback is
upserted on its prediction, and only a later feedback replaces an earlier one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from core.store.records import Feedback, PredictionRecord
from core.store.tables import FEEDBACK, PREDICTIONS


def _dialect_insert(connection: Connection):
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif connection.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return None
    return dialect_insert


def insert_prediction(connection: Connection, record: PredictionRecord) -> int:
    """Insert unless a prediction with this id exists; 1 if inserted, else 0."""
    return _insert_ignore(connection, PREDICTIONS, record.row(), "id")


def upsert_feedback(connection: Connection, feedback: Feedback) -> int:
    """Store the feedback of a prediction, replacing an earlier one (not a later one, not itself);
    1 if a row was inserted or changed, else 0."""
    row = feedback.row()
    dialect_insert = _dialect_insert(connection)
    if dialect_insert is not None:
        statement = dialect_insert(FEEDBACK).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={name: statement.excluded[name] for name in ("uid", "composer", "created_at")},
            where=FEEDBACK.c.created_at < statement.excluded.created_at,
        ).execution_options(preserve_rowcount=True)
        return max(connection.execute(statement).rowcount, 0)
    current = connection.execute(
        select(FEEDBACK.c.created_at).where(FEEDBACK.c.prediction_id == feedback.prediction_id)
    ).first()
    if current is None:
        connection.execute(insert(FEEDBACK).values(**row))
        return 1
    if current[0] >= feedback.created_at:
        return 0
    where = FEEDBACK.c.prediction_id == feedback.prediction_id
    connection.execute(update(FEEDBACK).where(where).values(**row))
    return 1


def prediction_labels(connection: Connection, prediction_id: str) -> list[str] | None:
    """The composers the model that made this prediction knows (the keys of its
    probabilities), or None when there is no such prediction."""
    query = select(PREDICTIONS.c.probabilities).where(PREDICTIONS.c.id == prediction_id)
    found = connection.execute(query).first()
    return None if found is None else list(found[0] or {})


def prediction_exists(connection: Connection, prediction_id: str) -> bool:
    query = select(PREDICTIONS.c.id).where(PREDICTIONS.c.id == prediction_id)
    return connection.execute(query).first() is not None


def _insert_ignore(connection: Connection, table: Table, row: dict[str, Any], key: str) -> int:
    dialect_insert = _dialect_insert(connection)
    if dialect_insert is not None:
        statement = (
            dialect_insert(table)
            .values(**row)
            .on_conflict_do_nothing(index_elements=[key])
            .execution_options(preserve_rowcount=True)  # rowcount: 1 inserted, 0 skipped
        )
        return max(connection.execute(statement).rowcount, 0)
    if connection.execute(select(table.c[key]).where(table.c[key] == row[key])).first():
        return 0
    connection.execute(insert(table).values(**row))
    return 1
