"""Engines that fail fast: connect and statement timeouts on PostgreSQL and SQLite, and the
one rule for "this error means the database is away" (spool and retry) versus "this row is bad"
(dead letter)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

# What SQLite reports as OperationalError although the database is there.
_NOT_AN_OUTAGE = ("no such table", "no such column", "already exists", "syntax error")


def make_engine(url: str, connect_timeout: float = 2.0, statement_timeout: float = 5.0) -> Engine:
    """An engine whose calls end within a few seconds when the server is away or stuck.

    PostgreSQL: libpq ``connect_timeout`` (whole seconds, at least 2), a server-side
    ``statement_timeout``, TCP keepalives and ``tcp_user_timeout`` (a peer that stops answering
    at the TCP level is dropped), and a pool that waits at most ``connect_timeout`` for a free
    connection. A peer whose kernel still answers but whose process is stuck is not caught by
    any of these: :class:`core.store.repository.PredictionStore` bounds each call on the request
    path itself. SQLite: wait at most ``statement_timeout`` for a locked file.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args |= {
            "connect_timeout": max(2, math.ceil(connect_timeout)),
            "options": f"-c statement_timeout={max(1, round(statement_timeout * 1000))}",
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(connect_timeout)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": max(1000, round((connect_timeout + statement_timeout) * 1000)),
        }
    elif backend == "sqlite":
        connect_args["timeout"] = statement_timeout  # busy timeout: a locked database file
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            with contextlib.suppress(OSError):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        connect_args=connect_args,
    )
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_unavailable(error: BaseException) -> bool:
    """True when the error means "cannot reach the database" (so: spool and retry later);
    False for errors about the statement or the row (bad data, schema, constraint)."""
    if isinstance(error, TimeoutError):
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.OperationalError):
        # SQLite reports schema and SQL errors as OperationalError too: those are no outage.
        message = str(error.orig).lower() if error.orig is not None else ""
        return not any(word in message for word in _NOT_AN_OUTAGE)
    return isinstance(error, exc.InterfaceError | exc.DisconnectionError | exc.TimeoutError)
