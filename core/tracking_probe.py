"""Is the MLflow tracking store there? Asked once, with a short timeout, before MLflow is.

MLflow itself retries an unreachable store for minutes before it says anything (HTTP: 7
retries with exponential backoff and a 120 s timeout; databases: 15 engine attempts with
doubling sleeps), so a command pointed at a stopped server looked hung. This probe answers in
seconds and says which URI and how to fix it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

PROBE_TIMEOUT_S = 4.0
NETWORK_DATABASES = ("postgresql", "mysql", "mssql")
HOW_TO_FIX = (
    "Start it (`make up` runs one on this machine) or point COMPOSER_MLFLOW_TRACKING_URI at a "
    "running server; unset it to use the local store HOME/mlflow.db."
)


class TrackingUnreachable(RuntimeError):
    """The tracking store did not answer within the probe's timeout."""


def scheme(uri: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql``; a bare path -> ``file``."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else "file"


def shown(uri: str) -> str:
    """The URI without its password, for messages."""
    if scheme(uri) in (*NETWORK_DATABASES, "sqlite"):
        try:
            return make_url(uri).render_as_string(hide_password=True)
        except sqlalchemy.exc.ArgumentError:
            return uri
    parts = urlsplit(uri)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def check(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``TrackingUnreachable`` if an HTTP server or a network database behind ``uri``
    does not answer within ``timeout`` seconds. Local stores (sqlite, file) are not probed."""
    kind = scheme(uri)
    try:
        if kind in ("http", "https"):
            # Any HTTP answer (even 401/404 from a proxy) means the server is there.
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
        elif kind in NETWORK_DATABASES:
            engine = sqlalchemy.create_engine(
                uri, poolclass=NullPool, connect_args=_timeout_args(kind, timeout)
            )
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except (requests.RequestException, sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        reason = _reason(error)
        raise TrackingUnreachable(
            f"MLflow tracking store {shown(uri)} is not reachable ({reason}). {HOW_TO_FIX}"
        ) from error


def _timeout_args(kind: str, timeout: float) -> dict:
    seconds = max(1, int(timeout))
    return {"timeout": seconds} if kind == "mssql" else {"connect_timeout": seconds}


def _reason(error: Exception) -> str:
    if isinstance(error, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(error, requests.ConnectionError):
        return "connection refused or host unknown"
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__
