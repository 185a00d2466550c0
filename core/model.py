"""The trained artefact: an estimator plus everything needed to serve and monitor it.

Serving never re-derives the feature configuration, the label set or the neighbour index
from current settings: they travel inside the model (see ARCHITECTURE principles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from core.config import FeatureConfig


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

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Segment probabilities, columns in ``labels`` order."""
        matrix = features[self.feature_names].to_numpy(dtype=np.float32)
        proba = self.estimator.predict_proba(matrix)
        order = [list(self.estimator.classes_).index(label) for label in self.labels]
        return proba[:, order]


class ComposerPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: feature rows in, one probability column per composer out."""

    def __init__(self, model: ComposerModel):
        self.model = model

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        proba = self.model.predict_proba(pd.DataFrame(model_input))
        return pd.DataFrame(proba, columns=self.model.labels)
