"""The prediction store: every prediction the app (or the CLI, the API, a simulation) makes,
with the user's feedback, in SQLite or PostgreSQL; read back by monitoring.

Writes never fail because the database is down: the record goes to a local spool (JSON lines,
appended with fsync) and is written later by :meth:`PredictionStore.flush_spool`, which
``record`` also calls by itself once the database answers again. Flushing is idempotent
(insert-or-ignore on the prediction id and on the feedback's client-generated ``uid``), so a
re-flush or a crash half-way never duplicates a row.

The schema is created and upgraded by the Alembic migrations shipped in ``core/migrations``
(no ``alembic.ini`` needed): :func:`migrate` runs them and is safe to call at every start, from
several processes at once (a PostgreSQL advisory lock serialises them).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

try:  # POSIX: advisory file locks make the spool safe between processes.
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per spool dir, please
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from core.config import Settings
    from core.predict import Prediction

log = logging.getLogger(__name__)

SOURCES = ("microphone", "upload", "api", "cli", "simulation")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own version table, so the store can share a database with MLflow (which has its own
# ``alembic_version``).
VERSION_TABLE = "composer_store_version"
# pg_advisory_xact_lock key serialising concurrent migrations ("composer" in ASCII).
MIGRATION_LOCK_KEY = 0x636F6D706F736572
# Alembic's ``context``/``op`` proxies are module globals: one migration per process at a time.
_MIGRATION_THREAD_LOCK = threading.RLock()
SPOOL_PREFIX = "spool-"
SPOOL_SUFFIX = ".jsonl"
CLAIMED_SUFFIX = ".flushing"
REJECTED_PREFIX = "rejected-"
# A spooled feedback whose prediction is nowhere to be found is retried this many flushes
# (its prediction may sit in a spool file another process is writing), then set aside.
MAX_FEEDBACK_ATTEMPTS = 5


# --------------------------------------------------------------------------- schema


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = _as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


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

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    composer: Mapped[str] = mapped_column(String(128))
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    features: Mapped[list[float | None]] = mapped_column(JSON)
    feature_schema: Mapped[str] = mapped_column(String(64))
    latency_s: Mapped[float] = mapped_column(Float)
    audio_path: Mapped[str | None] = mapped_column(String(1024))


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # client-generated: dedup key
    prediction_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    composer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


PREDICTIONS = PredictionRow.__table__
FEEDBACK = FeedbackRow.__table__


# --------------------------------------------------------------------------- monitoring summaries
# One row per monitored window, written by ``core.monitor.run_monitoring`` (migration
# 0002_monitoring); re-running a window replaces its row.


class MonitoringSummaryRow(Base):
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
    feedback_rows: Mapped[int] = mapped_column(Integer)
    feedback_accuracy: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))  # "retrain" | "no action" | "not enough data"
    reason: Mapped[str] = mapped_column(Text)
    report_html: Mapped[str | None] = mapped_column(String(1024))  # relative to HOME/reports
    report_json: Mapped[str | None] = mapped_column(String(1024))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))


SUMMARIES = MonitoringSummaryRow.__table__
SUMMARY_COLUMNS = [c.name for c in SUMMARIES.columns if c.name != "id"]


# --------------------------------------------------------------------------- records


@dataclass(kw_only=True)
class PredictionRecord:
    """One row of ``predictions``; JSON-serialisable (that is how it is spooled)."""

    source: str
    duration_s: float
    sample_rate: int
    model_name: str
    model_version: str
    composer: str
    probabilities: dict[str, float]
    features: list[float | None]
    feature_schema: str
    latency_s: float
    audio_path: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")
        self.created_at = _as_utc(self.created_at)
        self.probabilities = {str(k): _finite(v) for k, v in self.probabilities.items()}
        self.features = [_finite(v) for v in self.features]
        self.duration_s = float(self.duration_s)
        self.sample_rate = int(self.sample_rate)
        self.latency_s = float(self.latency_s)

    @classmethod
    def from_prediction(
        cls,
        prediction: Prediction,
        source: str,
        model_name: str,
        model_version: str,
        feature_schema: str,
        audio_path: str | None = None,
    ) -> PredictionRecord:
        features = prediction.features
        values = features.ravel().tolist() if hasattr(features, "ravel") else list(features)
        return cls(
            source=source,
            duration_s=prediction.seconds,
            sample_rate=prediction.sample_rate,
            model_name=model_name,
            model_version=str(model_version),
            composer=prediction.composer,
            probabilities=dict(prediction.probabilities),
            features=values,
            feature_schema=feature_schema,
            latency_s=prediction.latency_s,
            audio_path=audio_path,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PredictionRecord:
        data = dict(data)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


RECORD_COLUMNS = [c.name for c in PREDICTIONS.columns]


def _finite(value: Any) -> float | None:
    """JSON has no NaN/inf (PostgreSQL rejects them): store those as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _in_window(query, column, start: datetime | None, end: datetime | None):
    """``start <= column < end``; either bound may be open (None); naive bounds are UTC."""
    if start is not None:
        query = query.where(column >= _as_utc(start))
    if end is not None:
        query = query.where(column < _as_utc(end))
    return query


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- engine + migrations


def make_engine(url: str, connect_timeout: float = 3.0) -> Engine:
    """An engine that fails fast when the server is away and checks pooled connections."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # libpq wants whole seconds (and treats < 2 as 2).
        connect_args["connect_timeout"] = max(1, math.ceil(connect_timeout))
    elif backend == "sqlite":
        connect_args["timeout"] = connect_timeout  # wait this long for a locked database
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            with contextlib.suppress(OSError):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str) -> Config:
    """The Alembic configuration, built in code (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escaping
    config.attributes["version_table"] = VERSION_TABLE
    return config


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def migrate(url: str, engine: Engine | None = None, connect_timeout: float = 3.0) -> None:
    """Upgrade the store's schema to the newest revision. Idempotent and cheap when already
    there; concurrent callers are serialised (a PostgreSQL advisory lock, SQLite's write lock,
    a lock between threads), and a lost race on other backends is recognised by re-reading
    the version afterwards."""
    own_engine = engine is None
    engine = engine or make_engine(url, connect_timeout)
    head = head_revision()
    try:
        with engine.connect() as connection:
            if current_revision(connection) == head:
                return
            connection.rollback()
            try:
                with _MIGRATION_THREAD_LOCK, connection.begin():
                    if connection.dialect.name == "postgresql":
                        # Held until this transaction ends (PostgreSQL DDL is transactional,
                        # so the whole migration commits or not, under the lock).
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                        )
                    elif connection.dialect.name == "sqlite":
                        # pysqlite would autocommit each DDL statement; take the write lock
                        # first so a racing process waits and then finds the stamped version.
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    config = alembic_config(url)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            except exc.SQLAlchemyError:
                # Did another process create the tables between our check and our DDL?
                connection.rollback()
                try:
                    done = current_revision(connection) == head
                except exc.SQLAlchemyError:
                    done = False
                if not done:
                    raise
                log.info("prediction store migrated concurrently by another process")
    finally:
        if own_engine:
            engine.dispose()


_NOT_AN_OUTAGE = ("no such table", "no such column", "already exists", "syntax error")


def _is_unavailable(error: BaseException) -> bool:
    """True when the error means "cannot reach the database" (so: spool and retry later)."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.OperationalError):
        # SQLite reports schema and SQL errors as OperationalError too: those are no outage.
        message = str(error.orig).lower() if error.orig is not None else ""
        return not any(word in message for word in _NOT_AN_OUTAGE)
    return isinstance(error, exc.InterfaceError | exc.DisconnectionError | exc.TimeoutError)


# --------------------------------------------------------------------------- the store


class UnknownPredictionError(KeyError):
    """Feedback for a prediction id that is neither in the database nor in the spool."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown prediction"


class PredictionStore:
    """Record predictions and feedback; read them back as a DataFrame.

    ``record`` and ``add_feedback`` never raise because the database is unreachable: they spool
    the write to ``spool_dir`` and return. After a connection failure the store does not try the
    database again for ``retry_interval`` seconds (so an outage costs at most one connect
    timeout per interval, not one per call).
    """

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        connect_timeout: float = 3.0,
        *,
        retry_interval: float = 5.0,
    ):
        self.url = url
        self.spool_dir = Path(spool_dir)
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self.engine = make_engine(url, connect_timeout)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._spool_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._down_until = 0.0
        self._spool_file: Path | None = None
        self._spool_pid = -1

    def __repr__(self) -> str:
        return f"PredictionStore({make_url(self.url)!r}, spool_dir={str(self.spool_dir)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ---- writes

    def record(self, rec: PredictionRecord) -> str:
        """Store one prediction; returns its id. Spools it when the database is unreachable."""
        if self._database_ok():
            try:
                with self.engine.begin() as connection:
                    _insert_ignore(connection, PREDICTIONS, _prediction_row(rec), "id")
            except exc.SQLAlchemyError as error:
                if not _is_unavailable(error):
                    raise
                self._mark_down(error)
            else:
                self._flush_quietly()
                return rec.id
        self._append({"kind": "prediction", "data": rec.to_json()})
        return rec.id

    def add_feedback(self, prediction_id: str, composer: str) -> None:
        """Record the true composer of a prediction, as told by the user.

        Raises :class:`UnknownPredictionError` (a ``KeyError``) only when the database answers
        and the prediction is neither there nor in the spool; spools when it does not answer.
        """
        if not composer or not isinstance(composer, str):
            raise ValueError("composer must be a non-empty string")
        entry = {
            "uid": uuid.uuid4().hex,
            "prediction_id": prediction_id,
            "composer": composer,
            "created_at": datetime.now(UTC).isoformat(),
        }
        if self._database_ok():
            try:
                self._flush_quietly()
                with self.engine.begin() as connection:
                    if _prediction_exists(connection, prediction_id):
                        _insert_ignore(connection, FEEDBACK, _feedback_row(entry), "uid")
                        return
            except exc.SQLAlchemyError as error:
                if not _is_unavailable(error):
                    raise
                self._mark_down(error)
            else:
                if not self._spooled_prediction(prediction_id):
                    raise UnknownPredictionError(f"no prediction with id {prediction_id!r}")
        self._append({"kind": "feedback", "attempts": 0, "data": entry})

    def flush_spool(self) -> int:
        """Write the spooled records to the database and delete the spool files they came
        from; returns how many rows were written (rows already there are skipped, so this is
        idempotent). Returns 0 when there is nothing to do or the database is unreachable."""
        with self._flush_lock:
            return self._flush()

    # ---- reads

    def predictions(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """Predictions with ``start <= created_at < end`` (naive bounds are UTC), oldest first,
        with the latest feedback's composer as ``true_composer`` (None without feedback).
        Spooled (not yet flushed) records are not included."""
        self._ensure_ready()
        latest = select(
            FEEDBACK.c.prediction_id,
            FEEDBACK.c.composer,
            func.row_number()
            .over(
                partition_by=FEEDBACK.c.prediction_id,
                order_by=(FEEDBACK.c.created_at.desc(), FEEDBACK.c.id.desc()),
            )
            .label("rank"),
        ).subquery("latest_feedback")
        query = (
            select(*PREDICTIONS.columns, latest.c.composer.label("true_composer"))
            .outerjoin(latest, and_(latest.c.prediction_id == PREDICTIONS.c.id, latest.c.rank == 1))
            .order_by(PREDICTIONS.c.created_at, PREDICTIONS.c.id)
        )
        query = _in_window(query, PREDICTIONS.c.created_at, start, end)
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "true_composer"])
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        for column in ("audio_path", "true_composer"):  # None stays None (not NaN)
            frame[column] = pd.Series(
                [row[column] for row in rows], index=frame.index, dtype=object
            )
        return frame

    # ---- monitoring summaries (``core.monitor``) and simulations (``core.simulate``)

    def save_summary(self, summary: Mapping[str, Any]) -> int:
        """Insert or replace the summary row of one window (keyed by window_start and
        window_end); returns its id. Unlike ``record``, this never spools: it raises when the
        database is unreachable (monitoring runs again; the app must not wait for it)."""
        row = {name: summary.get(name) for name in SUMMARY_COLUMNS}
        for name in ("window_start", "window_end", "created_at"):
            value = row[name] if row[name] is not None else datetime.now(UTC)
            row[name] = _as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
        for name in ("drift_share", "prediction_drift_score", "feedback_accuracy"):
            row[name] = _finite(row[name])
        row["rows"] = int(row["rows"] or 0)
        row["feedback_rows"] = int(row["feedback_rows"] or 0)
        row["reason"] = row["reason"] or ""
        self._ensure_ready()
        key = and_(
            SUMMARIES.c.window_start == row["window_start"],
            SUMMARIES.c.window_end == row["window_end"],
        )
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as dialect_insert
                else:
                    from sqlalchemy.dialects.sqlite import insert as dialect_insert
                statement = dialect_insert(SUMMARIES).values(**row)
                statement = statement.on_conflict_do_update(
                    index_elements=["window_start", "window_end"],
                    set_={name: statement.excluded[name] for name in SUMMARY_COLUMNS},
                )
                connection.execute(statement)
            else:
                connection.execute(SUMMARIES.delete().where(key))
                connection.execute(insert(SUMMARIES).values(**row))
            return int(connection.execute(select(SUMMARIES.c.id).where(key)).scalar_one())

    def summaries(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Monitoring summaries whose window starts in [start, end), oldest window first."""
        self._ensure_ready()
        query = select(*SUMMARIES.columns).order_by(SUMMARIES.c.window_start, SUMMARIES.c.id)
        query = _in_window(query, SUMMARIES.c.window_start, start, end)
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        columns = [c.name for c in SUMMARIES.columns]
        # dtype=object: NULL stays None (not NaN) and integers stay integers.
        return pd.DataFrame(rows, columns=columns, dtype=object)

    def backdate(self, ids: Iterable[str], when: datetime, step: timedelta = timedelta(0)) -> int:
        """FOR SIMULATIONS ONLY (``core.simulate``, tests): move predictions to another time,
        the i-th id to ``when + i * step``, so simulated days can be monitored as if they had
        happened. Spooled records are flushed first; returns how many rows were moved.
        Production code never rewrites when a prediction was made."""
        self.flush_spool()
        self._ensure_ready()
        moved = 0
        with self.engine.begin() as connection:
            for i, prediction_id in enumerate(ids):
                statement = (
                    update(PREDICTIONS)
                    .where(PREDICTIONS.c.id == prediction_id)
                    .values(created_at=_as_utc(when) + i * step)
                    .execution_options(preserve_rowcount=True)
                )
                moved += max(connection.execute(statement).rowcount, 0)
        return moved

    def healthy(self) -> bool:
        """Can we reach the database (and is the schema up to date)?"""
        try:
            self._ensure_ready()
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except exc.SQLAlchemyError as error:
            self._mark_down(error)
            return False
        self._down_until = 0.0
        return True

    def spool_files(self) -> list[Path]:
        """Spool files waiting to be flushed (including ones a crashed flush left claimed)."""
        if not self.spool_dir.is_dir():
            return []
        return sorted(
            [
                *self.spool_dir.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"),
                *self.spool_dir.glob(f"{SPOOL_PREFIX}*{CLAIMED_SUFFIX}"),
            ]
        )

    # ---- internals: database

    def _ensure_ready(self) -> None:
        """Migrate lazily, on the first successful connection."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                migrate(self.url, engine=self.engine)
                self._ready = True

    def _database_ok(self, backoff: bool = True) -> bool:
        """Try the database unless it failed less than ``retry_interval`` seconds ago (an
        explicit flush passes ``backoff=False``: it always tries)."""
        if backoff and time.monotonic() < self._down_until:
            return False
        try:
            self._ensure_ready()
        except exc.SQLAlchemyError as error:
            if not _is_unavailable(error):
                raise
            self._mark_down(error)
            return False
        return True

    def _mark_down(self, error: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_interval
        log.warning("prediction store unreachable (%s); spooling to %s", error, self.spool_dir)

    def _flush_quietly(self) -> None:
        """Opportunistic flush after a successful write: never raises, never waits."""
        if not self.spool_files() or not self._flush_lock.acquire(blocking=False):
            return
        try:
            written = self._flush()
            if written:
                log.info("flushed %d spooled rows to the prediction store", written)
        except Exception:
            log.exception("flushing the prediction spool failed; will retry later")
        finally:
            self._flush_lock.release()

    def _flush(self) -> int:
        files = self.spool_files()
        if not files or not self._database_ok(backoff=False):
            return 0
        with contextlib.ExitStack() as claims:
            claimed = [path for path in (self._claim(p, claims) for p in files) if path]
            predictions, feedback, rejected = [], [], []
            for path in claimed:
                for line in path.read_bytes().splitlines():
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        if entry["kind"] == "prediction":
                            predictions.append(_prediction_row(entry["data"]))
                        elif entry["kind"] == "feedback":
                            feedback.append(entry)
                        else:
                            raise ValueError(f"unknown kind {entry['kind']!r}")
                    except (ValueError, KeyError, TypeError) as error:
                        log.error("unreadable spool line in %s (%s); set aside", path, error)
                        rejected.append(line.decode("utf-8", "replace"))
            written, retry = 0, []
            try:
                with self.engine.begin() as connection:
                    for row in predictions:
                        written += _insert_ignore(connection, PREDICTIONS, row, "id")
                    for entry in feedback:
                        data = entry["data"]
                        if _prediction_exists(connection, data["prediction_id"]):
                            written += _insert_ignore(
                                connection, FEEDBACK, _feedback_row(data), "uid"
                            )
                        elif entry.get("attempts", 0) + 1 < MAX_FEEDBACK_ATTEMPTS:
                            retry.append({**entry, "attempts": entry.get("attempts", 0) + 1})
                        else:
                            log.error("feedback for unknown prediction %s set aside", data)
                            rejected.append(json.dumps(entry))
            except exc.SQLAlchemyError as error:
                if _is_unavailable(error):
                    self._mark_down(error)
                    return 0  # the claimed files stay; the next flush takes them again
                raise
            # Committed. Keep what is not written yet before deleting the files.
            for entry in retry:
                self._append(entry)
            if rejected:
                self._set_aside(rejected)
            for path in claimed:
                path.unlink(missing_ok=True)
        return written

    # ---- internals: the spool

    def _spool_path(self, fresh: bool = False) -> Path:
        """This process's spool file (a new name after a fork, or when asked)."""
        if fresh or self._spool_file is None or self._spool_pid != os.getpid():
            self._spool_pid = os.getpid()
            name = f"{SPOOL_PREFIX}{self._spool_pid}-{uuid.uuid4().hex[:12]}{SPOOL_SUFFIX}"
            self._spool_file = self.spool_dir / name
        return self._spool_file

    def _append(self, entry: dict[str, Any]) -> Path:
        """Append one JSON line and fsync it. A file a flush has claimed (renamed) or is
        claiming (locked) is never written to: we move on to a fresh file instead."""
        line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self._spool_lock:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            fresh = False
            for _ in range(20):
                path = self._spool_path(fresh)
                fresh = True
                created = not path.exists()
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if fcntl is not None:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except BlockingIOError:
                            continue
                    try:
                        on_disk = os.stat(path)
                    except FileNotFoundError:
                        continue
                    opened = os.fstat(fd)
                    if (opened.st_ino, opened.st_dev) != (on_disk.st_ino, on_disk.st_dev):
                        continue
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                    if created:
                        _fsync_dir(self.spool_dir)
                    return path
                finally:
                    os.close(fd)  # also releases the lock
            raise OSError(f"could not append to a spool file in {self.spool_dir}")

    def _claim(self, path: Path, claims: contextlib.ExitStack) -> Path | None:
        """Lock a spool file for this flush (skip it if someone holds it) and rename it so
        writers move on to a new file. The lock is held until the flush ends."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        claims.callback(os.close, fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
        try:
            on_disk = os.stat(path)
        except FileNotFoundError:
            return None
        opened = os.fstat(fd)
        if (opened.st_ino, opened.st_dev) != (on_disk.st_ino, on_disk.st_dev):
            return None
        if path.suffix == SPOOL_SUFFIX:
            claimed = path.with_suffix(CLAIMED_SUFFIX)
            os.replace(path, claimed)
            _fsync_dir(self.spool_dir)
            return claimed
        return path

    def _set_aside(self, lines: list[str]) -> None:
        path = self.spool_dir / f"{REJECTED_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(line.rstrip("\n") + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())

    def _spooled_prediction(self, prediction_id: str) -> bool:
        needle = prediction_id.encode()
        for path in self.spool_files():
            with contextlib.suppress(FileNotFoundError):
                for line in _lines(path):
                    if needle not in line:
                        continue
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        entry = json.loads(line)
                        if entry["kind"] == "prediction" and entry["data"]["id"] == prediction_id:
                            return True
        return False


# --------------------------------------------------------------------------- helpers


def _prediction_row(rec: PredictionRecord | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(rec, PredictionRecord):
        rec = PredictionRecord.from_json(rec)
    return {name: getattr(rec, name) for name in RECORD_COLUMNS}


def _feedback_row(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uid": data["uid"],
        "prediction_id": data["prediction_id"],
        "composer": data["composer"],
        "created_at": datetime.fromisoformat(data["created_at"]),
    }


def _prediction_exists(connection: Connection, prediction_id: str) -> bool:
    query = select(PREDICTIONS.c.id).where(PREDICTIONS.c.id == prediction_id)
    return connection.execute(query).first() is not None


def _insert_ignore(connection: Connection, table, row: dict[str, Any], key: str) -> int:
    """Insert unless a row with the same ``key`` exists; returns 1 if inserted, else 0."""
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
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


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from handle


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- audio


_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


def store_audio(src_path: Path, settings: Settings) -> str | None:
    """Keep a copy of an uploaded recording under a generated name (never the user's file
    name) when ``settings.keep_audio``; returns its path, or None when audio is not kept."""
    if not settings.keep_audio:
        return None
    src = Path(src_path)
    suffix = src.suffix.lower()
    directory = Path(settings.audio_store_dir)
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / f"{uuid.uuid4().hex}{suffix if _SUFFIX.match(suffix) else ''}"
    partial = destination.with_name(destination.name + ".partial")
    try:
        shutil.copyfile(src, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return str(destination)
