"""What the store records, checked before it is acknowledged: a prediction and a feedback.

Checking here (not in the database) means a record the database would reject is refused while
the caller can still be told, instead of being spooled, acknowledged and then rejected by a
later flush. The dead-letter path of the spool stays for what slips through anyway.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.store.tables import (
    COMPOSER_LENGTH,
    ID_LENGTH,
    MODEL_NAME_LENGTH,
    PATH_LENGTH,
    RECORD_COLUMNS,
    SCHEMA_LENGTH,
    VERSION_LENGTH,
    as_utc,
    finite,
)
from core.verdict import KINDS

if TYPE_CHECKING:
    from core.verdict import Verdict

SOURCES = ("microphone", "upload", "api", "cli", "simulation")
# Feedback naming a composer the model does not know: "other:<name>", the name this short.
OTHER_PREFIX = "other:"
OTHER_NAME_LENGTH = 60


class RecordError(ValueError):
    """A prediction record the store refuses (it would not fit the table)."""


class FeedbackError(ValueError):
    """Feedback the store refuses; the message says why and is safe to show to the user."""


def _check_text(name: str, value: Any, limit: int, error: type[ValueError]) -> str:
    """A non-empty printable string of at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{name} must be a non-empty text")
    if len(value) > limit:
        raise error(f"{name} is too long ({len(value)} characters; at most {limit})")
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise error(f"{name} contains control characters")
    return value


@dataclass(kw_only=True)
class PredictionRecord:
    """One row of ``predictions``; JSON-serialisable (that is how it is spooled).

    ``composer`` is the classifier's first choice (also for ``not_sure``, where the app showed
    only candidates: monitoring compares it with feedback); None for ``not_piano``."""

    source: str
    duration_s: float
    sample_rate: int
    model_name: str
    model_version: str
    composer: str | None
    probabilities: dict[str, float]
    features: list[float | None]
    feature_schema: str
    latency_s: float
    audio_path: str | None = None
    kind: str = "composer"  # records spooled before kinds existed were composer answers
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise RecordError(f"source must be one of {SOURCES}, not {self.source!r}")
        _check_text("id", self.id, ID_LENGTH, RecordError)
        if self.kind not in KINDS:
            raise RecordError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "not_piano":
            self.composer = None
        else:
            _check_text("composer", self.composer, COMPOSER_LENGTH, RecordError)
        _check_text("model_name", self.model_name, MODEL_NAME_LENGTH, RecordError)
        self.model_version = str(self.model_version)
        _check_text("model_version", self.model_version, VERSION_LENGTH, RecordError)
        _check_text("feature_schema", self.feature_schema, SCHEMA_LENGTH, RecordError)
        if self.audio_path is not None:
            _check_text("audio_path", self.audio_path, PATH_LENGTH, RecordError)
        self.created_at = as_utc(self.created_at)
        self.probabilities = {str(k): finite(v) for k, v in self.probabilities.items()}
        self.features = [finite(v) for v in self.features]
        self.duration_s = float(self.duration_s)
        self.sample_rate = int(self.sample_rate)
        self.latency_s = float(self.latency_s)

    @classmethod
    def from_verdict(
        cls,
        verdict: Verdict,
        source: str,
        model_name: str,
        model_version: str,
        feature_schema: str,
        audio_path: str | None = None,
    ) -> PredictionRecord:
        """The row for an answer (``core.identify.identify``), whatever its kind."""
        return cls(
            source=source,
            kind=verdict.kind,
            duration_s=verdict.seconds,
            sample_rate=verdict.sample_rate,
            model_name=model_name,
            model_version=str(model_version),
            composer=verdict.top_composer,
            probabilities=dict(verdict.probabilities),
            features=list(verdict.features),
            feature_schema=feature_schema,
            latency_s=verdict.latency_s,
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

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RECORD_COLUMNS}


def check_composer(composer: Any, labels: Collection[str] | None = None) -> str:
    """The feedback's composer as stored: one of ``labels`` (the composers the model that made
    the prediction knows; unchecked when None), or ``other:<name>`` with a short name."""
    if not isinstance(composer, str) or not composer.strip():
        raise FeedbackError("Choose the composer it really was.")
    composer = composer.strip()
    if composer[: len(OTHER_PREFIX)].lower() == OTHER_PREFIX:
        name = composer[len(OTHER_PREFIX) :].strip()
        if not name:
            raise FeedbackError("Give the other composer's name.")
        _check_text("The composer's name", name, OTHER_NAME_LENGTH, FeedbackError)
        return OTHER_PREFIX + name
    shown = composer if len(composer) <= 40 else composer[:40] + "..."
    _check_text("The composer", composer, COMPOSER_LENGTH, FeedbackError)
    if labels is not None and composer not in labels:
        raise FeedbackError(
            f"{shown!r} is not a composer this model knows: choose one from the list, or "
            f"'{OTHER_PREFIX}<name>' for someone else."
        )
    return composer


@dataclass(frozen=True, kw_only=True)
class Feedback:
    """The user's answer to "who was it really?" for one prediction (one per prediction: a
    later one replaces it; ``created_at`` decides which is later, also when replayed)."""

    prediction_id: str
    composer: str
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not isinstance(self.prediction_id, str) or not 0 < len(self.prediction_id) <= 32:
            raise FeedbackError("Unknown prediction id.")
        object.__setattr__(self, "created_at", as_utc(self.created_at))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Feedback:
        return cls(
            prediction_id=data["prediction_id"],
            composer=data["composer"],
            uid=data["uid"],
            created_at=datetime.fromisoformat(data["created_at"]),
        )

    def row(self) -> dict[str, Any]:
        return asdict(self)
