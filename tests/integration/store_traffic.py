"""Concurrent writers for the store's fault tests: what they were told was stored (answered,
acknowledged), and what the database holds afterwards, read directly."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select as sql_select

from core.store import FEEDBACK, PREDICTIONS, PredictionStore, make_engine
from tests.unit.test_store import make_record

COMPOSERS = ("Bach", "Chopin", "Mozart")


@dataclass
class Traffic:
    """What the writers were told was stored (acknowledged), and how long it took."""

    answered: list[str] = field(default_factory=list)
    feedback: dict[str, str] = field(default_factory=dict)  # prediction id -> latest composer
    feedback_calls: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write_until(store: PredictionStore, stop: threading.Event, traffic: Traffic, seed: int):
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            record = make_record(rng.choice(COMPOSERS))
            started = time.monotonic()
            store.record(record)
            elapsed = time.monotonic() - started
            with traffic.lock:
                traffic.answered.append(record.id)
                traffic.latencies.append(elapsed)
            for _ in range(rng.choice((0, 0, 1, 2))):  # none, one, or a replaced one
                started = time.monotonic()
                saved = store.add_feedback(record.id, rng.choice(list(record.probabilities)))
                elapsed = time.monotonic() - started
                with traffic.lock:
                    traffic.feedback[record.id] = saved.composer
                    traffic.feedback_calls += 1
                    traffic.latencies.append(elapsed)
            time.sleep(0.005)
    except BaseException as error:  # the test fails on any
        traffic.errors.append(error)


def stored(postgres_url: str) -> tuple[Counter, Counter, dict[str, str]]:
    """Predictions and feedback in the database, read directly (not through the proxy)."""
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            ids = Counter(r[0] for r in connection.execute(sql_select(PREDICTIONS.c.id)))
            rows = connection.execute(sql_select(FEEDBACK.c.prediction_id, FEEDBACK.c.composer))
            rows = rows.all()
    finally:
        engine.dispose()
    return ids, Counter(r[0] for r in rows), dict(rows)


def drain(stores: list[PredictionStore], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for store in stores:
            store.flush_spool()
        if not stores[0].spool_files():
            return
        time.sleep(0.2)
