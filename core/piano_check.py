"""Is this clip piano music at all? Decided before any composer answer is given.

The composer classifier answers every input with a composer; white noise or a sine tone must
instead get "this does not sound like piano music". The decision reads evidence the pipeline
already has, so it costs next to nothing per request and can be measured on the shipped
feature tables without audio:

1. cheap checks on the samples: silence, a DC offset, hard clipping;
2. plain rules on the feature rows, each with a reason a person understands (no notes heard,
   one steady tone, noise);
3. a small logistic regression on a few dozen row features (the transcription's note activity,
   polyphony, note lengths and "velocities", spectral flatness/contrast, onset statistics),
   fitted on the repertoire pack (piano) against generated and rendered non-piano clips
   (``scripts/build_negatives.py``, ``scripts/train_piano_check.py``). Rules alone reject
   most synthetic kinds but not sweeps, DTMF, speech or other instruments: a violin melody or
   a string chorale gives note rows much like a piano's, and only their combination with the
   sound tells them apart. Its coefficients ship as ``core/assets/piano_check.json``.

A clip's score is the mean of its rows' probabilities; the rules and the sample checks only
ever reject (their score is capped at 0.05), so a piano clip is never passed by a rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

DETECTOR_PATH = Path(__file__).resolve().parent / "assets" / "piano_check.json"
PIANO_REASON = "sounds like piano music"
# sample checks
SILENT_PEAK = 1e-3  # -60 dBFS: nothing to hear
QUIET_RMS = 1e-3  # RMS below -60 dBFS: room tone at most
DC_SHARE = 0.5  # |mean| above half the RMS: mostly a constant offset
CLIPPED_SHARE = 0.05  # share of samples stuck at the peak: a hard-clipped signal

RULE_COLUMNS = (
    "harmonic_percussive_ratio",
    "zero_crossing_mean",
    "note_density",
    "note_polyphony_mean",
    "note_pc_used",
)
# Columns the detector reads, and how each is transformed before standardising.
LOG_COLUMNS = (
    "note_density",
    "note_chord_rate",
    "note_polyphony_mean",
    "note_polyphony_std",
    "note_polyphony_max",
    "note_pitch_std",
    "note_pitch_range",
    "harmonic_percussive_ratio",
    "onset_rate",
    "spectral_centroid_mean",
    "spectral_rolloff_mean",
    "spectral_bandwidth_mean",
)
PLAIN_COLUMNS = (
    "note_silence_frac",
    "note_pc_used",
    "note_pc_entropy",
    "note_velocity_mean",
    "note_velocity_std",
    "note_velocity_p10",
    "note_velocity_p90",
    "note_log2dur_mean",
    "note_log2dur_std",
    "note_log2ioi_std",
    "note_ioi_cv",
    "note_chord_size_1",
    "note_chord_size_mean",
    "note_act_mean",
    "note_act_chroma_entropy",
    "note_key_strength",
    "note_harm_dissonant",
    "note_mel_repeat_frac",
    "zero_crossing_mean",
    "zero_crossing_std",
    "dynamic_range_db",
    *(f"contrast_{i}_mean" for i in range(1, 8)),
    *(f"contrast_{i}_std" for i in range(1, 8)),
    *(f"mfcc_{i:02d}_std" for i in range(2, 14)),
)


@dataclass(frozen=True)
class PianoCheck:
    """The verdict: ``score`` is 0..1, higher = more piano-like; ``reason`` is plain words."""

    is_piano: bool
    score: float
    reason: str


@dataclass(frozen=True)
class Detector:
    """Standardised logistic regression over ``detector_inputs`` columns."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # clip score (mean row probability) needed to pass
    trained_on: str = ""

    def row_scores(self, rows: pd.DataFrame) -> np.ndarray:
        x = (detector_inputs(rows) - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = np.clip(x, -8.0, 8.0) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def save(self, path: Path = DETECTOR_PATH) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def input_names() -> list[str]:
    return [*LOG_COLUMNS, *PLAIN_COLUMNS, "rms_cv"]


def detector_inputs(rows: pd.DataFrame) -> np.ndarray:
    """The detector's input matrix (rows x ``input_names()``); finite by construction."""
    logs = np.log1p(np.maximum(rows[list(LOG_COLUMNS)].to_numpy(np.float64), 0.0))
    plain = rows[list(PLAIN_COLUMNS)].to_numpy(np.float64)
    rms_cv = rows["rms_std"].to_numpy(np.float64) / np.maximum(rows["rms_mean"], 1e-6)
    x = np.column_stack([logs, plain, rms_cv])
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


@lru_cache(maxsize=2)
def load_detector(path: Path = DETECTOR_PATH) -> Detector:
    data = json.loads(Path(path).read_text())
    for key in ("columns", "mean", "scale", "coef"):
        data[key] = tuple(data[key])
    detector = Detector(**data)
    if list(detector.columns) != input_names():
        raise ValueError(f"{path} was fitted on other columns: rerun scripts/train_piano_check.py")
    return detector


def assess(samples: np.ndarray, sample_rate: int, rows: pd.DataFrame) -> PianoCheck:
    """Whether ``samples`` (mono, ``sample_rate``) with feature ``rows`` sounds like piano.

    ``rows`` is what ``core.featurize.featurize_audio`` returned for these samples (one row per
    segment). Cost: a few vector operations over the samples and the rows.
    """
    verdict = check_samples(samples)
    if verdict is not None:
        return verdict
    check = assess_rows(rows)
    if check.is_piano and clipped_share(samples) > CLIPPED_SHARE:
        return PianoCheck(False, 0.0, "the sound is clipped flat, like a distorted test tone")
    return check


def check_samples(samples: np.ndarray) -> PianoCheck | None:
    """A rejection from the waveform alone (silence, near-silence, a DC offset), or None."""
    y = np.asarray(samples, dtype=np.float32).ravel()
    if y.size == 0 or not np.isfinite(y).all():
        return PianoCheck(False, 0.0, "the clip holds no usable sound")
    mean = float(y.mean(dtype=np.float64))
    rms = float(np.sqrt(np.dot(y, y) / y.size))
    ac_rms = float(np.sqrt(max(rms**2 - mean**2, 0.0)))
    peak = float(np.abs(y).max())
    if peak < SILENT_PEAK:
        return PianoCheck(False, 0.0, "the clip is silent")
    if abs(mean) > DC_SHARE * rms and ac_rms < QUIET_RMS * 10:
        return PianoCheck(False, 0.0, "a constant offset (DC), not sound")
    if ac_rms < QUIET_RMS:
        return PianoCheck(False, 0.0, "the clip is almost silent")
    return None


def clipped_share(samples: np.ndarray) -> float:
    """Share of samples within 0.1 % of the peak: a few in music, most in a clipped tone."""
    y = np.abs(np.asarray(samples, dtype=np.float32).ravel())
    return float(np.mean(y >= 0.999 * y.max())) if y.size else 0.0


def assess_rows(rows: pd.DataFrame, detector: Detector | None = None) -> PianoCheck:
    """The decision from the feature rows alone (what the shipped tables allow measuring)."""
    if rows is None or len(rows) == 0:
        return PianoCheck(False, 0.0, "nothing could be analysed")
    detector = detector or load_detector()
    score = float(np.mean(detector.row_scores(rows)))
    return decide(score, rows[list(RULE_COLUMNS)].mean(), detector.threshold)


def decide(score: float, means: pd.Series, threshold: float) -> PianoCheck:
    """The verdict from a clip's score and its rows' means of ``RULE_COLUMNS``."""
    rule = rule_reason(means)
    if rule is not None:
        return PianoCheck(False, min(score, 0.05), rule)
    if score >= threshold:
        return PianoCheck(True, score, PIANO_REASON)
    return PianoCheck(False, score, "sounds like speech or another instrument, not a piano")


def rule_reason(m: pd.Series) -> str | None:
    """A plain reason to reject from a clip's means of ``RULE_COLUMNS``, or None. Thresholds
    sit far outside what the piano corpora show (see ``bench/piano_check.py``)."""
    if m["harmonic_percussive_ratio"] < 2.0 and m["zero_crossing_mean"] > 0.15:
        return "sounds like noise"
    if m["note_polyphony_mean"] > 0.5 and m["note_density"] < 0.5 and m["note_pc_used"] <= 1.0:
        return "a single steady tone"  # held all along, one pitch class (with its octaves)
    if m["note_density"] < 0.5 or m["note_polyphony_mean"] < 0.15:
        return "no notes were heard"
    return None
