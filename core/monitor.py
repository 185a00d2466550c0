"""What the app served in a time window, and whether there is enough of it to judge.

The daily ``monitor`` DAG calls this; Evidently drift reports build on the same window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.config import Settings
from core.store import PredictionStore

NOT_ENOUGH = "not enough data"


def window(
    start: str | None, end: str | None, interval_end: datetime | None = None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC. Defaults: the day before ``interval_end`` (the DAG run's data
    interval end), else yesterday."""
    if start:
        begin = _parse(start)
        return begin, _parse(end) if end else begin + timedelta(days=1)
    anchor = interval_end or datetime.now(UTC)
    finish = anchor.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return finish - timedelta(days=1), finish


def summarize_window(
    settings: Settings, start: datetime, end: datetime, min_rows: int = 30
) -> dict:
    """Row count, predicted-composer mix, feedback and accuracy on feedback in [start, end)."""
    store = PredictionStore(settings.database_url, settings.spool_dir)
    try:
        frame = store.predictions(start, end)
    finally:
        store.close()
    labelled = frame[frame["true_composer"].notna()]
    correct = (labelled["composer"] == labelled["true_composer"]).mean() if len(labelled) else None
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": len(frame),
        "status": "ok" if len(frame) >= min_rows else NOT_ENOUGH,
        "min_rows": min_rows,
        "prediction_mix": frame["composer"].value_counts(normalize=True).round(4).to_dict(),
        "model_versions": sorted(frame["model_version"].astype(str).unique().tolist()),
        "feedback_rows": len(labelled),
        "feedback_accuracy": None if correct is None else round(float(correct), 4),
    }


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
