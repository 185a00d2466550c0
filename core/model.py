"""The trained artefact: an estimator plus everything needed to serve and monitor it.

Serving never re-derives the feature configuration, the label set or the neighbour index
from current settings: they travel inside the model (see ARCHITECTURE principles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from core.calibration import Calibration
from core.config import FeatureConfig
from core.verdict import recording_probabilities
from core.work_index import WorkIndex


@dataclass
class NeighbourIndex:
    """Recordings of the corpus in standardized feature space ("sounds like")."""

    scaler: StandardScaler
    index: NearestNeighbors
    recordings: pd.DataFrame  # recording_id, composer, work, title (row order = index order)

    @classmethod
    def build(cls, table: pd.DataFrame, feature_names: list[str]) -> NeighbourIndex:
        means = table.groupby("recording_id", sort=True)[feature_names].mean()
        meta_cols = [c for c in ("composer", "work", "title") if c in table.columns]
        meta = table.groupby("recording_id", sort=True)[meta_cols].first()
        scaler = StandardScaler().fit(means.to_numpy())
        index = NearestNeighbors(metric="euclidean").fit(scaler.transform(means.to_numpy()))
        return cls(scaler=scaler, index=index, recordings=meta.reset_index())

    def query(self, vector: np.ndarray, k: int = 5) -> pd.DataFrame:
        k = min(k, len(self.recordings))
        scaled = self.scaler.transform(np.asarray(vector, dtype=np.float64).reshape(1, -1))
        distance, position = self.index.kneighbors(scaled, n_neighbors=k)
        found = self.recordings.iloc[position[0]].reset_index(drop=True)
        return found.assign(distance=np.round(distance[0], 3))


@dataclass
class ComposerModel:
    estimator: Any  # fitted scikit-learn classifier with predict_proba
    feature_config: FeatureConfig
    feature_names: list[str]
    labels: list[str]
    candidate: str
    neighbours: NeighbourIndex | None = None
    reference: pd.DataFrame | None = None  # features + split + predictions, for monitoring
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str = ""
    # Temperature fitted on out-of-fold recordings (core.calibration); None = raw averages.
    calibration: Calibration | None = None
    # The known works of the training data (core.work_index); None = no work recognition.
    works: WorkIndex | None = None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Segment probabilities, columns in ``labels`` order."""
        matrix = features[self.feature_names].to_numpy(dtype=np.float32)
        proba = self.estimator.predict_proba(matrix)
        order = [list(self.estimator.classes_).index(label) for label in self.labels]
        return proba[:, order]

    def recording_proba(
        self, segment_proba: np.ndarray, recording_ids: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Per-recording probabilities as served: the verdict rule, then the calibration."""
        recordings = recording_probabilities(segment_proba, recording_ids, self.labels)
        if getattr(self, "calibration", None) is not None:
            recordings.iloc[:, :] = self.calibration.apply(recordings.to_numpy())
        return recordings


class AudioInput(BaseModel):
    """One clip for the MLflow model: a ``path`` the server can read, or mono ``samples``
    with their ``sample_rate``."""

    path: str | None = None
    samples: list[float] | None = None
    sample_rate: int | None = None

    def source(self) -> str | tuple[np.ndarray, int]:
        if self.path:
            return self.path
        if self.samples is None or not self.sample_rate:
            raise ValueError("Give either 'path', or 'samples' with 'sample_rate'.")
        return np.asarray(self.samples, dtype=np.float32), int(self.sample_rate)


class ComposerPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: audio in, one answer (``core.verdict.Verdict`` as a dict) per clip out,
    through the same ``core.identify.identify`` as the app. So ``mlflow models serve -m
    models:/composer-classifier@champion`` answers ``{"inputs": [{"path": "clip.ogg"}]}``."""

    def __init__(self, model: ComposerModel):
        self.model = model

    # No return annotation: MLflow cannot type a dict of mixed values (the output schema is
    # "any"); the input's type hint is what gives validation and the signature.
    def predict(self, context, model_input: list[AudioInput], params: dict | None = None):
        from core.config import Settings
        from core.identify import identify

        settings = Settings()  # this front door's one settings object (COMPOSER_* variables)
        return [
            identify(
                self.model,
                clip.source(),
                limits=settings.audio,
                not_sure_below=settings.not_sure_below,
            ).as_dict()
            for clip in model_input
        ]
