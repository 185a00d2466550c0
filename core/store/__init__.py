"""The prediction store: every prediction the app (or the CLI, the API, a simulation) makes,
with the user's feedback, in SQLite or PostgreSQL; read back by monitoring.

Small parts, one job each: ``tables`` (the schema), ``migrate`` (Alembic, ``core/migrations``),
``engine`` (timeouts; outage or bad row?), ``records`` (what is recorded, checked before it is
acknowledged), ``spool`` (durable local segments while the database is away, dead letters),
``writes`` (idempotent inserts), ``queries`` (reads for monitoring), ``health``,
``repository`` (:class:`PredictionStore`, tying them together) and ``audio_copies``.
Build a store with :func:`open_store` from the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.store.audio_copies import store_audio
from core.store.engine import is_unavailable, make_engine
from core.store.health import StoreHealth
from core.store.migrate import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
)
from core.store.records import (
    OTHER_NAME_LENGTH,
    OTHER_PREFIX,
    SOURCES,
    Feedback,
    FeedbackError,
    PredictionRecord,
    RecordError,
    check_composer,
)
from core.store.repository import PredictionStore, UnknownPredictionError
from core.store.spool import Spool
from core.store.tables import FEEDBACK, PREDICTIONS, SUMMARIES, SUMMARY_COLUMNS, Base

if TYPE_CHECKING:
    from core.config import Settings

__all__ = [
    "FEEDBACK",
    "MIGRATIONS_DIR",
    "OTHER_NAME_LENGTH",
    "OTHER_PREFIX",
    "PREDICTIONS",
    "SOURCES",
    "SUMMARIES",
    "SUMMARY_COLUMNS",
    "VERSION_TABLE",
    "Base",
    "Feedback",
    "FeedbackError",
    "PredictionRecord",
    "PredictionStore",
    "RecordError",
    "Spool",
    "StoreHealth",
    "UnknownPredictionError",
    "alembic_config",
    "check_composer",
    "current_revision",
    "head_revision",
    "is_unavailable",
    "make_engine",
    "migrate",
    "open_store",
    "store_audio",
]


def open_store(settings: Settings) -> PredictionStore:
    """The one way to build the store: database, spool and timeouts from the settings."""
    return PredictionStore(
        settings.database_url,
        settings.spool_dir,
        settings.db_connect_timeout_s,
        statement_timeout=settings.db_statement_timeout_s,
        retry_interval=settings.db_retry_interval_s,
    )
