"""``identify``: audio -> :class:`~core.verdict.Verdict`, the one request path.

The app (in its worker processes), its API, the CLI, the MLflow pyfunc and the simulation
all end here: decode and check the audio, featurize it (the one featurizer of training and
serving), ask the piano check whether it is piano music at all, average the segment
probabilities into the recording's (``core.verdict``) and calibrate them (the model's
temperature), decide the kind, and find the nearest
corpus recordings ("sounds like").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from core import features, piano_check, piano_roll, transcription
from core.audio import Audio, from_array, load_audio
from core.config import AudioLimits
from core.featurize import featurize_audio
from core.model import ComposerModel
from core.verdict import (
    NOT_SURE_BELOW,
    Candidate,
    Neighbour,
    Segment,
    Verdict,
    WorkMatch,
    decide_kind,
    headline,
)

# A file path, or (samples, sample rate) as they arrive from a microphone or an array API.
AudioSource = str | Path | tuple[np.ndarray, int]
SAME_RECORDING = 1e-3  # standardized feature distance below which a neighbour is the query


def identify(
    model: ComposerModel,
    audio: AudioSource,
    *,
    limits: AudioLimits | None = None,
    not_sure_below: float = NOT_SURE_BELOW,
    k: int = 5,
) -> Verdict:
    """The answer for one clip; raises ``core.audio.AudioError`` for input that cannot be
    analysed (its message names the problem)."""
    started = time.perf_counter()
    features.single_threaded_blas()  # concurrency comes from requests and worker processes
    clip = decode(audio, model.feature_config.sample_rate, limits or AudioLimits())
    notes = transcription.transcribe(clip.samples, model.feature_config.sample_rate)
    rows = featurize_audio(clip.samples, model.feature_config, notes)
    check = piano_check.assess(clip.samples, clip.sample_rate, rows)
    work = recognise_work(model, notes) if check.is_piano else None
    proba = model.predict_proba(rows)
    mean = model.recording_proba(proba).iloc[0]  # the verdict rule, then the calibration
    ranked = mean.sort_values(ascending=False, kind="stable")
    probabilities = {str(name): float(p) for name, p in ranked.items()}
    kind = decide_kind(float(ranked.iloc[0]), check.is_piano, not_sure_below, work is not None)
    candidates = (
        []
        if kind == "not_piano"
        else [Candidate(composer=c, probability=p) for c, p in list(probabilities.items())[:k]]
    )
    vector = rows[model.feature_names].to_numpy(np.float64).mean(axis=0)
    return Verdict(
        kind=kind,
        headline=headline(kind, candidates, check.reason, work),
        composer=work.composer if work else candidates[0].composer if kind == "composer" else None,
        probability=candidates[0].probability if kind == "composer" else None,
        candidates=candidates,
        probabilities=probabilities,
        piano_score=float(check.score),
        reason=check.reason,
        segments=_segments(rows["start_s"].to_numpy(), proba, model.labels),
        work=work,
        heard=piano_roll.notes_of(notes),
        sounds_like=_neighbours(model, vector, k) if kind != "not_piano" else [],
        seconds=clip.seconds,
        sample_rate=clip.source_sample_rate,
        notes=list(clip.notes),
        features=vector.tolist(),
        latency_s=time.perf_counter() - started,
    )


def decode(audio: AudioSource, sample_rate: int, limits: AudioLimits) -> Audio:
    """A path or (samples, rate) -> checked mono audio at the model's rate."""
    if isinstance(audio, tuple):
        samples, rate = audio
        return from_array(samples, int(rate), sample_rate, limits)
    return load_audio(audio, sample_rate, limits)


def _segments(starts: np.ndarray, proba: np.ndarray, labels: list[str]) -> list[Segment]:
    return [
        Segment(start_s=float(start), probabilities=dict(zip(labels, map(float, row), strict=True)))
        for start, row in zip(starts, proba, strict=True)
    ]


def recognise_work(model: ComposerModel, notes: transcription.Transcription) -> WorkMatch | None:
    """The known work this clip is a recording of, if the model's work index is sure."""
    index = getattr(model, "works", None)
    found = index.match(notes) if index is not None else None
    if found is None:
        return None
    return WorkMatch(
        title=found.title.replace("_", " "),
        composer=found.composer,
        position_s=round(float(found.position_s), 1),
        score=round(float(found.score), 3),
    )


def _neighbours(model: ComposerModel, vector: np.ndarray, k: int) -> list[Neighbour]:
    """The nearest corpus recordings, never the query itself (an uploaded demo clip would
    otherwise be its own nearest neighbour at distance 0)."""
    if model.neighbours is None:
        return []
    found: pd.DataFrame = model.neighbours.query(vector, k + 1)
    found = found[found["distance"] > SAME_RECORDING].head(k)
    return [
        Neighbour(**{key: (str(v) if key != "distance" else float(v)) for key, v in row.items()})
        for row in found.to_dict(orient="records")
    ]
