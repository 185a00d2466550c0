"""Audio -> composer probabilities with a loaded model: segment probabilities averaged into
one verdict per recording, plus the nearest corpus recordings ("sounds like")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import features
from core.audio import Audio, from_array, load_audio
from core.config import AudioLimits
from core.featurize import featurize_audio
from core.model import ComposerModel


@dataclass
class Prediction:
    composer: str
    probabilities: dict[str, float]  # every known composer, most likely first
    segments: pd.DataFrame  # start_s + one probability column per composer
    neighbours: pd.DataFrame  # recording_id, composer, work, title, distance
    features: np.ndarray  # mean feature vector over segments (for monitoring)
    seconds: float
    sample_rate: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    latency_s: float = 0.0

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return list(self.probabilities.items())[:k]

    def as_dict(self, k: int = 5) -> dict:
        return {
            "composer": self.composer,
            "top": [{"composer": c, "probability": round(p, 4)} for c, p in self.top(k)],
            "segments": len(self.segments),
            "seconds": round(self.seconds, 2),
            "notes": list(self.notes),
            "sounds_like": self.neighbours.to_dict(orient="records"),
            "latency_s": round(self.latency_s, 3),
        }


class Predictor:
    """Wraps one model; cheap to call repeatedly (no per-call loading)."""

    def __init__(self, model: ComposerModel, limits: AudioLimits | None = None, k: int = 5):
        features.single_threaded_blas()  # serving: concurrency comes from requests
        self.model = model
        self.limits = limits or AudioLimits()
        self.k = k

    def predict_file(self, path: str | Path) -> Prediction:
        started = time.perf_counter()
        audio = load_audio(path, self.model.feature_config.sample_rate, self.limits)
        return self._predict(audio, started)

    def predict_array(self, samples: np.ndarray, sample_rate: int) -> Prediction:
        started = time.perf_counter()
        audio = from_array(samples, sample_rate, self.model.feature_config.sample_rate, self.limits)
        return self._predict(audio, started)

    def _predict(self, audio: Audio, started: float) -> Prediction:
        rows = featurize_audio(audio.samples, self.model.feature_config)
        proba = self.model.predict_proba(rows)
        mean = proba.mean(axis=0)
        order = np.argsort(mean)[::-1]
        probabilities = {self.model.labels[i]: float(mean[i]) for i in order}
        vector = rows[self.model.feature_names].to_numpy(np.float64).mean(axis=0)
        neighbours = (
            self.model.neighbours.query(vector, self.k)
            if self.model.neighbours is not None
            else pd.DataFrame()
        )
        segments = pd.DataFrame(proba, columns=self.model.labels)
        segments.insert(0, "start_s", rows["start_s"].to_numpy())
        return Prediction(
            composer=self.model.labels[order[0]],
            probabilities=probabilities,
            segments=segments,
            neighbours=neighbours,
            features=vector,
            seconds=audio.seconds,
            sample_rate=audio.source_sample_rate,
            notes=audio.notes,
            latency_s=time.perf_counter() - started,
        )
