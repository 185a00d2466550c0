"""Schema migrations (Alembic, shipped in ``core/migrations``; no ``alembic.ini`` needed).

:func:`migrate` is safe to call at every start, from several processes at once: a PostgreSQL
advisory lock, SQLite's write lock and a lock between threads serialise them.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, exc, text
from sqlalchemy.engine import Connection

from core.store.engine import make_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
# Our own version table, so the store can share a database with MLflow (which has its own
# ``alembic_version``).
VERSION_TABLE = "composer_store_version"
# pg_advisory_xact_lock key serialising concurrent migrations ("composer" in ASCII).
MIGRATION_LOCK_KEY = 0x636F6D706F736572
# Migrations may wait for another process's migration: longer than a request's statement.
MIGRATION_STATEMENT_TIMEOUT = "120s"
# Alembic's ``context``/``op`` proxies are module globals: one migration per process at a time.
_MIGRATION_THREAD_LOCK = threading.RLock()


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


def migrate(url: str, engine: Engine | None = None, connect_timeout: float = 2.0) -> None:
    """Upgrade the store's schema to the newest revision. Idempotent and cheap when already
    there; a lost race on other backends is recognised by re-reading the version afterwards."""
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
                    _lock(connection)
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


def _lock(connection: Connection) -> None:
    """Serialise migrations between processes, for the rest of this transaction."""
    if connection.dialect.name == "postgresql":
        # PostgreSQL DDL is transactional: the whole migration commits or not, under the lock.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # pysqlite would autocommit each DDL statement; take the write lock first so a racing
        # process waits and then finds the stamped version.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
