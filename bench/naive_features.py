"""The seed project's naive extractor, reproduced as the benchmark baseline.

Every feature is computed from the waveform with librosa defaults, so each call redoes its
own STFT (MFCC, centroid, rolloff, bandwidth, chroma, contrast, RMS, onsets, beats), HPSS
median-filters the full linear spectrogram, and tonnetz runs a constant-Q transform. The
vector has the same 118 columns, in the same order, as ``core.features.feature_names`` with
the default ``FeatureConfig``; values are comparable in kind, not identical (see
``tests/model/test_naive_agreement.py``).
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

SAMPLE_RATE = 22050
DURATION = 30.0
N_MFCC = 13
N_CHROMA = 12
N_CONTRAST = 7  # librosa default: 6 bands + 1 valley row
TONNETZ_DIMS = 6
STAT4 = ("mean", "std", "max", "min")
STAT2 = ("mean", "std")


def _names() -> list[str]:
    names = [f"mfcc_{i + 1:02d}_{s}" for i in range(N_MFCC) for s in STAT4]
    for base in ("spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "zero_crossing"):
        names += [f"{base}_{s}" for s in STAT2]
    names += ["harmonic_percussive_ratio", "tempo_bpm", "beat_interval_std"]
    names += [f"chroma_{i + 1:02d}_{s}" for i in range(N_CHROMA) for s in STAT2]
    names += [f"tonnetz_{i + 1}_{s}" for i in range(TONNETZ_DIMS) for s in STAT2]
    names += ["rms_mean", "rms_std", "rms_max", "dynamic_range_db", "onset_rate"]
    names += [f"contrast_{i + 1}_{s}" for i in range(N_CONTRAST) for s in STAT2]
    return names


NAIVE_NAMES: list[str] = _names()


def naive_extract(path: str | Path) -> np.ndarray:
    """Decode the first 30 s of ``path`` at 22.05 kHz and return the 118 seed features."""
    y, sr = librosa.load(str(path), sr=SAMPLE_RATE, duration=DURATION, offset=0)
    return naive_extract_array(y, sr)


def naive_extract_array(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The seed features of an already decoded mono waveform."""
    seconds = len(y) / sr

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC)
    mfcc_stats = np.stack(
        [mfcc.mean(axis=1), mfcc.std(axis=1), mfcc.max(axis=1), mfcc.min(axis=1)], axis=1
    )

    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)[0]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr)[0]
    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]

    y_harmonic, y_percussive = librosa.effects.hpss(y)
    harmonic_energy = float(np.sum(y_harmonic**2))
    percussive_energy = float(np.sum(y_percussive**2))
    hp_ratio = harmonic_energy / (percussive_energy + 1e-10)

    tempo, beats = librosa.beat.beat_track(y=y, sr=sr)
    beat_times = librosa.frames_to_time(beats, sr=sr)
    beat_std = float(np.std(np.diff(beat_times))) if len(beat_times) > 2 else 0.0

    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    tonnetz = librosa.feature.tonnetz(y=y, sr=sr)

    rms = librosa.feature.rms(y=y)[0]
    rms_db = librosa.amplitude_to_db(rms)
    dynamic_range = float(np.percentile(rms_db, 95) - np.percentile(rms_db, 5))

    onsets = librosa.onset.onset_detect(y=y, sr=sr)
    onset_rate = len(onsets) / seconds if seconds > 0 else 0.0

    contrast = librosa.feature.spectral_contrast(y=y, sr=sr)

    parts = [
        mfcc_stats.ravel(),
        [centroid.mean(), centroid.std()],
        [rolloff.mean(), rolloff.std()],
        [bandwidth.mean(), bandwidth.std()],
        [zcr.mean(), zcr.std()],
        [hp_ratio, float(np.atleast_1d(tempo)[0]), beat_std],
        np.stack([chroma.mean(axis=1), chroma.std(axis=1)], axis=1).ravel(),
        np.stack([tonnetz.mean(axis=1), tonnetz.std(axis=1)], axis=1).ravel(),
        [rms.mean(), rms.std(), rms.max(), dynamic_range],
        [onset_rate],
        np.stack([contrast.mean(axis=1), contrast.std(axis=1)], axis=1).ravel(),
    ]
    vector = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    if vector.shape != (len(NAIVE_NAMES),):
        raise AssertionError(f"naive vector has {vector.shape} values, expected 118")
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
