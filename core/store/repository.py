"""The prediction store: record predictions and feedback, read them back for monitoring.

``record`` and ``add_feedback`` never fail because the database is away, slow or frozen: each
database call on that path runs with a deadline (connect + statement timeout); past it, or on a
connection error, the record goes to the spool (fsynced) and the call returns. The store then
leaves the database alone for ``retry_interval`` seconds. Spooled records are written by
:meth:`PredictionStore.flush_spool`, which a successful write also starts in the background.
Every write is idempotent, so a call that went through after its deadline, or a replayed spool,
stores nothing twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection, make_url

from core.store import queries
from core.store.engine import is_unavailable, make_engine
from core.store.health import StoreHealth
from core.store.migrate import migrate
from core.store.records import Feedback, PredictionRecord, check_composer
from core.store.spool import Claim, Spool
from core.store.writes import (
    insert_prediction,
    prediction_exists,
    prediction_labels,
    upsert_feedback,
)

log = logging.getLogger(__name__)

# A spooled feedback whose prediction is neither in the database nor anywhere in the spool is
# retried this many flushes (its prediction may sit in a segment another process is writing
# right now), then set aside. While the prediction waits in the spool (say, in a claim a stuck
# flush holds), the feedback waits too, without counting.
MAX_FEEDBACK_ATTEMPTS = 5


class UnknownPredictionError(KeyError):
    """Feedback for a prediction id that is neither in the database nor in the spool."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown prediction"


class _Outage(Exception):
    """The database went away during a flush: give the claims back."""


@dataclass
class _Outcome:
    ok: bool
    value: Any = None


@dataclass
class _Batch:
    """What a flush read from its claims, predictions first (feedback refers to them)."""

    items: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, claims: list[Claim]) -> _Batch:
        batch, feedback = cls(), []
        for claim in claims:
            for raw in claim.lines():
                line = raw.decode("utf-8", "replace").rstrip("\n")
                try:
                    entry = json.loads(line)
                    if entry["kind"] == "prediction":
                        PredictionRecord.from_json(entry["data"])  # readable?
                        batch.items.append(("prediction", entry, line))
                    elif entry["kind"] == "feedback":
                        Feedback.from_json(entry["data"])
                        feedback.append(("feedback", entry, line))
                    else:
                        raise ValueError(f"unknown kind {entry['kind']!r}")
                except (ValueError, KeyError, TypeError) as error:
                    batch.dead.append((f"unreadable: {error}", line))
        batch.items += feedback
        return batch


class PredictionStore:
    """Record predictions and feedback; read them back as DataFrames (see the module doc)."""

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        connect_timeout: float = 2.0,
        *,
        statement_timeout: float = 5.0,
        retry_interval: float = 5.0,
    ):
        self.url = url
        self.spool = Spool(spool_dir)
        self.connect_timeout = connect_timeout
        self.call_timeout = connect_timeout + statement_timeout
        self.retry_interval = retry_interval
        self.engine = make_engine(url, connect_timeout, statement_timeout)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._down_until = 0.0

    def __repr__(self) -> str:
        return f"PredictionStore({make_url(self.url)!r}, spool_dir={str(self.spool_dir)!r})"

    @property
    def spool_dir(self) -> Path:
        return self.spool.directory

    def close(self) -> None:
        self.spool.close()
        self.engine.dispose()

    # ---- writes (the request path: bounded in time, never lost)

    def record(self, rec: PredictionRecord) -> str:
        """Store one prediction; returns its id. Spools it when the database does not take it
        within the deadline."""
        if self._attempt(lambda connection: insert_prediction(connection, rec)).ok:
            self._flush_soon()
        else:
            self.spool.append({"kind": "prediction", "data": rec.to_json()})
        return rec.id

    def add_feedback(
        self, prediction_id: str, composer: str, labels: Collection[str] | None = None
    ) -> Feedback:
        """Record the true composer of a prediction, as told by the user: a composer the model
        that made the prediction knows, or ``other:<name>``. A second feedback replaces the
        first. Raises :class:`~core.store.records.FeedbackError` (a ``ValueError``) for a
        refused answer, :class:`UnknownPredictionError` (a ``KeyError``) when the database
        answers and the prediction is neither there nor in the spool; spools otherwise."""
        feedback = Feedback(prediction_id=prediction_id, composer=check_composer(composer, labels))

        def write(connection: Connection) -> bool:
            known = prediction_labels(connection, prediction_id)
            if known is None:
                return False
            check_composer(feedback.composer, known)
            upsert_feedback(connection, feedback)
            return True

        outcome = self._attempt(write)
        if not (outcome.ok and outcome.value):
            spooled = self.spool.find("prediction", prediction_id)
            if spooled is not None:
                check_composer(feedback.composer, list(spooled.get("probabilities") or {}))
            elif outcome.ok:  # flushed between our query and the spool scan? Ask once more.
                outcome = self._attempt(write)
                if outcome.ok and not outcome.value:
                    raise UnknownPredictionError(f"no prediction with id {prediction_id!r}")
        if outcome.ok and outcome.value:
            self._flush_soon()
        else:
            self.spool.append({"kind": "feedback", "attempts": 0, "data": feedback.to_json()})
        return feedback

    def flush_spool(self) -> int:
        """Write the spooled records to the database and delete the spool files they came
        from; returns how many rows were written or changed (idempotent: rows already there
        are skipped). Rows the database refuses go to dead letters; returns 0 when there is
        nothing to do or the database is unreachable."""
        with self._flush_lock:
            return self._flush()

    # ---- health

    def health(self) -> StoreHealth:
        """Database reachable (within the deadline)? How many records wait, how many were set
        aside? Does not retry a database that failed less than ``retry_interval`` ago."""
        database = self._attempt(lambda connection: connection.execute(text("SELECT 1"))).ok
        return StoreHealth.assess(
            database, self.spool.depth(), self.spool.dead_letters(), self.spool.writable()
        )

    def spool_files(self) -> list[Path]:
        """Spool files holding records not yet in the database."""
        return self.spool.pending_files()

    # ---- reads, monitoring summaries, simulations (not on the request path: they raise)

    def predictions(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """Predictions with ``start <= created_at < end`` (naive bounds are UTC), oldest first,
        with the feedback's composer as ``true_composer`` (None without feedback). Spooled
        (not yet flushed) records are not included."""
        self._ensure_ready()
        with self.engine.connect() as connection:
            return queries.predictions_frame(connection, start, end)

    def save_summary(self, summary: Mapping[str, Any]) -> int:
        """Insert or replace the summary row of one window; returns its id. Never spools."""
        row = queries.summary_row(summary)
        self._ensure_ready()
        with self.engine.begin() as connection:
            return queries.upsert_summary(connection, row)

    def summaries(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Monitoring summaries whose window starts in [start, end), oldest window first."""
        self._ensure_ready()
        with self.engine.connect() as connection:
            return queries.summaries_frame(connection, start, end)

    def backdate(self, ids: Iterable[str], when: datetime, step: timedelta = timedelta(0)) -> int:
        """FOR SIMULATIONS ONLY (``gradio_app.simulate``, tests): move predictions to another time,
        the i-th id to ``when + i * step``. Spooled records are flushed first; returns how many
        rows were moved. Production code never rewrites when a prediction was made."""
        self.flush_spool()
        self._ensure_ready()
        with self.engine.begin() as connection:
            return queries.backdate(connection, ids, when, step)

    # ---- internals: database calls

    def _ensure_ready(self) -> None:
        """Migrate lazily, on the first successful connection."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                migrate(self.url, engine=self.engine)
                self._ready = True

    def _attempt(self, work: Callable[[Connection], Any]) -> _Outcome:
        """Run ``work`` in a transaction, in a helper thread, for at most ``call_timeout``
        seconds. Not ok when the database is (or was just) away, too slow, or refused the
        write; other errors propagate. A call past its deadline may still complete later:
        writes are idempotent, so the spooled copy does no harm."""
        if time.monotonic() < self._down_until:
            return _Outcome(False)
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                self._ensure_ready()
                with self.engine.begin() as connection:
                    box["value"] = work(connection)
            except BaseException as error:  # handed to the caller
                box["error"] = error
            finally:
                done.set()

        threading.Thread(target=run, name="store-call", daemon=True).start()
        if not done.wait(self.call_timeout):
            self._mark_down(TimeoutError(f"no answer within {self.call_timeout:g} s"))
            return _Outcome(False)
        error = box.get("error")
        if error is None:
            return _Outcome(True, box.get("value"))
        if not isinstance(error, exc.SQLAlchemyError):
            raise error
        if is_unavailable(error):
            self._mark_down(error)
        else:
            log.error("the database refused a write (%s); kept in the spool", _reason(error))
        return _Outcome(False)

    def _mark_down(self, error: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_interval
        log.warning("prediction store unreachable (%s); spooling to %s", error, self.spool_dir)

    # ---- internals: flushing

    def _flush_soon(self) -> None:
        """After a successful write: drain the spool in the background, if anything waits
        and no flush runs in this store already. Never blocks the caller."""
        if time.monotonic() < self._down_until or not self.spool.pending_files():
            return
        if not self._flush_lock.acquire(blocking=False):
            return

        def run() -> None:
            try:
                written = self._flush()
                if written:
                    log.info("flushed %d spooled rows to the prediction store", written)
            except Exception:
                log.exception("flushing the prediction spool failed; will retry later")
            finally:
                self._flush_lock.release()

        threading.Thread(target=run, name="store-flush", daemon=True).start()

    def _flush(self) -> int:
        claims = self.spool.claim_all()
        if not claims:
            return 0
        try:
            batch = _Batch.read(claims)
            self._ensure_ready()
            written, retry, dead = self._write(batch)
        except BaseException as error:
            for claim in claims:
                self.spool.release(claim)
            if isinstance(error, _Outage) or (
                isinstance(error, exc.SQLAlchemyError) and is_unavailable(error)
            ):
                self._mark_down(error.__cause__ or error)
                return 0
            raise
        # Committed: keep what is not written yet, then delete the claimed files.
        for entry in retry:
            waiting = self.spool.find("prediction", entry["data"]["prediction_id"])
            attempts = int(entry.get("attempts", 0)) + (waiting is None)
            if attempts < MAX_FEEDBACK_ATTEMPTS:
                self.spool.append({**entry, "attempts": attempts})
            else:
                reason = f"no prediction {entry['data']['prediction_id']} after {attempts} flushes"
                dead.append((reason, json.dumps(entry)))
        self.spool.set_aside(batch.dead + dead)
        for claim in claims:
            self.spool.finish(claim)
        self._down_until = 0.0
        return written

    def _write(self, batch: _Batch) -> tuple[int, list[dict[str, Any]], list[tuple[str, str]]]:
        """All rows in one transaction; if the database refuses one, each row in its own
        transaction so that only the refused rows become dead letters."""
        try:
            with self.engine.begin() as connection:
                results = [_write_item(connection, kind, entry) for kind, entry, _ in batch.items]
            return _tally(results, batch)
        except exc.SQLAlchemyError as error:
            if is_unavailable(error):
                raise _Outage(str(error)) from error
            log.warning("a spooled row was refused (%s); writing one by one", _reason(error))
        results = []
        for kind, entry, _line in batch.items:
            try:
                with self.engine.begin() as connection:
                    results.append(_write_item(connection, kind, entry))
            except exc.SQLAlchemyError as error:
                if is_unavailable(error):
                    raise _Outage(str(error)) from error
                results.append(("dead", _reason(error)))
        return _tally(results, batch)


def _write_item(connection: Connection, kind: str, entry: dict[str, Any]) -> tuple[str, Any]:
    """("written", 0|1) or ("retry", entry: its prediction is not there yet)."""
    if kind == "prediction":
        return "written", insert_prediction(connection, PredictionRecord.from_json(entry["data"]))
    feedback = Feedback.from_json(entry["data"])
    if prediction_exists(connection, feedback.prediction_id):
        return "written", upsert_feedback(connection, feedback)
    return "retry", entry


def _tally(
    results: list[tuple[str, Any]], batch: _Batch
) -> tuple[int, list[dict[str, Any]], list[tuple[str, str]]]:
    written, retry, dead = 0, [], []
    for (outcome, value), (_kind, _entry, line) in zip(results, batch.items, strict=True):
        if outcome == "written":
            written += value
        elif outcome == "retry":
            retry.append(value)
        else:
            dead.append((value, line))
    return written, retry, dead


def _reason(error: BaseException) -> str:
    """One line saying why the database refused a row (for logs and dead letters)."""
    cause = getattr(error, "orig", None) or error
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first[:300]}"
