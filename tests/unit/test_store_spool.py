"""The prediction store's spool on SQLite: outages, the old flush-during-outage bug, draining
by itself, dead letters, feedback waiting for its prediction, claims left by dead flushers."""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta

import pytest

from core.store import FEEDBACK, PREDICTIONS, FeedbackError, PredictionStore
from tests.unit.test_store import T0, count_rows, make_record

pytestmark = pytest.mark.unit


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"


@pytest.fixture()
def store(sqlite_url, tmp_path):
    store = PredictionStore(sqlite_url, tmp_path / "spool")
    yield store
    store.close()


def unreachable(tmp_path, spool) -> PredictionStore:
    """A store whose database cannot be opened (a directory is no SQLite file)."""
    return PredictionStore(f"sqlite:///{tmp_path}", spool, retry_interval=0)


def wait_drained(target: PredictionStore, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while target.spool_files() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_spool_when_unreachable_then_flush_once(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    down = unreachable(tmp_path, spool)
    records = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    assert [down.record(r) for r in records] == [r.id for r in records]
    down.add_feedback(records[0].id, "Mozart")  # checked against the spooled prediction
    with pytest.raises(FeedbackError, match="not a composer this model knows"):
        down.add_feedback(records[0].id, "Haydn")
    health = down.health()
    assert (health.status, health.database, health.spooled) == ("degraded", False, 4)
    assert "spooling 4 records, 0 dead letters" in health.message and health.http_status == 200
    files = down.spool_files()
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 4
    backup = tmp_path / "backup.jsonl"
    shutil.copy(files[0], backup)

    up = PredictionStore(sqlite_url, spool)
    assert up.flush_spool() == 4
    assert up.spool_files() == [] and up.health().status == "ok"
    # A crash after the commit but before the spool file was deleted: flushing it again
    # writes nothing new.
    shutil.copy(backup, files[0])
    assert up.flush_spool() == 0
    assert up.flush_spool() == 0
    frame = up.predictions()
    assert list(frame["id"]) == [r.id for r in records]
    assert list(frame["true_composer"]) == ["Mozart", None, None]
    assert count_rows(up, PREDICTIONS) == 3 and count_rows(up, FEEDBACK) == 1


def test_a_failed_flush_then_more_writes_lose_nothing(tmp_path, sqlite_url):
    """The old bug: a flush during an outage claimed the spool file and failed; the writer
    recreated the same name; the next flush renamed it over the unflushed claim."""
    spool = tmp_path / "spool"
    down = unreachable(tmp_path, spool)
    first = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    for record in first:
        down.record(record)
    assert down.flush_spool() == 0  # fails: the claim is given back, not lost
    second = [make_record(created_at=T0 + timedelta(seconds=10 + i)) for i in range(3)]
    for record in second:
        down.record(record)
    assert down.flush_spool() == 0
    assert down.health().spooled == 6
    names = [p.name for p in down.spool_files()]
    assert len(names) == len(set(names)) >= 2  # claims and new segments, never one name twice

    up = PredictionStore(sqlite_url, spool)
    assert up.flush_spool() == 6
    assert list(up.predictions()["id"]) == [r.id for r in first + second]
    assert up.spool_files() == []


def test_record_drains_the_spool_by_itself(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    down = unreachable(tmp_path, spool)
    spooled = make_record(created_at=T0)
    down.record(spooled)
    up = PredictionStore(sqlite_url, spool)
    up.add_feedback(spooled.id, "Chopin")  # known from the spool: no KeyError
    up.record(make_record(created_at=T0 + timedelta(seconds=1)))  # starts a background flush
    wait_drained(up)
    assert up.spool_files() == []
    frame = up.predictions()
    assert len(frame) == 2 and frame.iloc[0]["true_composer"] == "Chopin"


def test_a_row_the_database_refuses_is_set_aside_while_the_rest_drains(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    down = unreachable(tmp_path, spool)
    good = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    for record in good:
        down.record(record)
    # What an older version could spool: feedback the database refuses (NOT NULL), and a line
    # that is not JSON at all.
    poison = {
        "uid": "f" * 32,
        "prediction_id": good[0].id,
        "composer": None,
        "created_at": T0.isoformat(),
    }
    down.spool.append({"kind": "feedback", "attempts": 0, "data": poison})
    down.add_feedback(good[1].id, "Bach")
    with open(down.spool_files()[0], "ab") as handle:
        handle.write(b"{not json\n")

    up = PredictionStore(sqlite_url, spool)
    assert up.flush_spool() == 4
    assert up.spool_files() == []
    assert list(up.predictions()["true_composer"]) == [None, "Bach", None]
    health = up.health()
    assert (health.status, health.dead_letters, health.spooled) == ("degraded", 2, 0)
    letters = [
        json.loads(line) for p in spool.glob("dead-*.jsonl") for line in p.read_text().splitlines()
    ]
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0].startswith("IntegrityError: NOT NULL constraint failed: feedback.composer")
    assert reasons[1].startswith("unreadable")
    assert (
        json.loads(next(x["line"] for x in letters if "Integrity" in x["reason"]))["data"] == poison
    )


def test_feedback_whose_prediction_never_comes_is_set_aside_after_a_few_flushes(store):
    from core.store.repository import MAX_FEEDBACK_ATTEMPTS

    waiting = make_record()
    orphan = {
        "uid": "a" * 32,
        "prediction_id": "b" * 32,
        "composer": "Bach",
        "created_at": T0.isoformat(),
    }
    store.spool.append({"kind": "feedback", "attempts": 0, "data": orphan})
    # A feedback whose prediction still waits in the spool (say, in a stuck flush's claim)
    # waits as long as it takes, without counting.
    store.spool.append({"kind": "prediction", "data": waiting.to_json()})
    held = store.spool.claim_all()
    store.spool.append(
        {
            "kind": "feedback",
            "attempts": 0,
            "data": {**orphan, "uid": "c" * 32, "prediction_id": waiting.id},
        }
    )
    for _ in range(MAX_FEEDBACK_ATTEMPTS + 2):
        store.flush_spool()
    assert store.health().dead_letters == 0 and store.health().spooled == 3  # all still waiting
    for claim in held:
        store.spool.release(claim)
    for _ in range(MAX_FEEDBACK_ATTEMPTS):
        store.flush_spool()
    health = store.health()
    assert (health.spooled, health.dead_letters) == (0, 1)
    assert store.predictions().iloc[0]["true_composer"] == "Bach"


def test_a_claim_left_by_a_dead_flusher_is_recovered_once(tmp_path, sqlite_url):
    spool = tmp_path / "spool"
    down = unreachable(tmp_path, spool)
    records = [make_record(created_at=T0 + timedelta(seconds=i)) for i in range(4)]
    for record in records[:2]:
        down.record(record)
    up = PredictionStore(sqlite_url, spool)
    assert up.flush_spool() == 2
    # Flusher 1 claimed a file, wrote its rows and died before deleting it; flusher 2 claimed
    # a file and died before writing anything. Their claimed files stay, nobody holds them.
    done = spool / "claimed-1-dead-flusher.jsonl"
    done.write_text(
        "".join(json.dumps({"kind": "prediction", "data": r.to_json()}) + "\n" for r in records[:2])
    )
    for record in records[2:]:
        down.record(record)
    crashed = down.spool.claim_all()
    assert len(crashed) == 2  # the dead flusher's file, and the segment just written
    live = [c for c in crashed if c.path != done]
    down.spool.release(next(c for c in crashed if c.path == done))
    # A live flush holds its claim: nobody else takes it.
    # The dead flusher's file is taken (its rows are there already: nothing written twice).
    assert up.flush_spool() == 0 and up.spool_files() == [live[0].path]
    for claim in live:
        down.spool.release(claim)  # ... then it dies
    assert up.flush_spool() == 2
    assert up.spool_files() == []
    assert list(up.predictions()["id"]) == [r.id for r in records]
    assert count_rows(up, PREDICTIONS) == 4
