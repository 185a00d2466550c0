"""One request of a long-running server, start to finish: the served model identifies the
clip (in a worker process), and the answer is recorded, with its kind, before it is returned.

The app's callback is this one call; everything it decides lives in ``core``.
"""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.serving import Served
from core.store import SOURCES, PredictionRecord, PredictionStore, store_audio
from core.verdict import Verdict
from core.workers import PredictionWorkers


def answer(
    served: Served,
    path: str | Path,
    source: str,
    *,
    workers: PredictionWorkers,
    store: PredictionStore,
    settings: Settings,
) -> Verdict:
    """Identify the clip at ``path`` and record the answer (``source``: where it came from;
    anything unknown counts as ``api``). Raises ``core.audio.AudioError``,
    ``core.workers.WorkerCrashed`` or ``core.serving.ModelUnavailable``; nothing is recorded
    then."""
    verdict = workers.identify(served, path)
    record = PredictionRecord.from_verdict(
        verdict,
        source=source if source in SOURCES else "api",
        model_name=served.name,
        model_version=served.version,
        feature_schema=served.card.feature_schema,
        audio_path=store_audio(Path(path), settings),
    )
    return verdict.model_copy(update={"prediction_id": store.record(record)})
