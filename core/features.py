"""One segment of audio -> one feature vector. Used by training and by serving alike.

The seed extractor computed every feature from the waveform with librosa defaults, so each
call redid its own STFT, and HPSS median-filtered the full 1025-bin spectrogram (~1.7 s per
30 s clip). Here one magnitude STFT feeds everything: a mel spectrogram (MFCC, onsets, tempo,
HPSS), the linear spectrum (centroid, rolloff, bandwidth, contrast, RMS, chroma) and chroma
(tonnetz). HPSS runs on the 128-band mel spectrogram, which keeps the harmonic/percussive
balance at a fraction of the cost. ``bench/featurize_bench.py`` checks speed and accuracy
against the seed extractor.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import librosa
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from core.config import FEATURE_SCHEMA_VERSION, FeatureConfig
from core.note_features import note_feature_names

STAT4 = ("mean", "std", "max", "min")
STAT2 = ("mean", "std")
TONNETZ_DIMS = 6


def feature_names(config: FeatureConfig) -> list[str]:
    """Column names, in vector order: the named schema a model is trained on (schema v4:
    the spectral block, then the note block of ``core.note_features``)."""
    return join_blocks({"spectral": spectral_feature_names(config), "note": note_feature_names()})


def join_blocks(blocks: dict[str, list[str]]) -> list[str]:
    """Concatenate named blocks of column names; a name in two blocks is an error, because a
    table keyed by name would silently keep one of the two values."""
    seen: dict[str, str] = {}
    names: list[str] = []
    for block, block_names in blocks.items():
        for name in block_names:
            if name in seen:
                raise ValueError(
                    f"Feature name {name!r} is in both the {seen[name]} and the {block} block."
                )
            seen[name] = block
            names.append(name)
    return names


def spectral_feature_names(config: FeatureConfig) -> list[str]:
    """The spectral block alone (what ``extract`` returns), e.g. to train a spectral-only
    comparison model from a v4 table."""
    names = [f"mfcc_{i + 1:02d}_{s}" for i in range(config.n_mfcc) for s in STAT4]
    for base in ("spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "zero_crossing"):
        names += [f"{base}_{s}" for s in STAT2]
    names += ["harmonic_percussive_ratio", "tempo_bpm", "beat_interval_std"]
    names += [f"chroma_{i + 1:02d}_{s}" for i in range(config.n_chroma) for s in STAT2]
    names += [f"tonnetz_{i + 1}_{s}" for i in range(TONNETZ_DIMS) for s in STAT2]
    names += ["rms_mean", "rms_std", "rms_max", "dynamic_range_db", "onset_rate"]
    names += [f"contrast_{i + 1}_{s}" for i in range(config.n_contrast_bands + 1) for s in STAT2]
    return names


@lru_cache(maxsize=1)
def single_threaded_blas() -> None:
    """One BLAS thread per process: parallelism comes from worker processes and concurrent
    requests; threaded BLAS on these small matrices doubles CPU time for no speed-up."""
    threadpool_limits(1)


def check_schema(config: FeatureConfig) -> None:
    """A model records the schema version it was trained with; this code computes only the
    current one, and serving a model with other features would be silently wrong."""
    if config.schema_version != FEATURE_SCHEMA_VERSION:
        raise ValueError(
            f"This model was trained on feature schema v{config.schema_version}, but this code "
            f"computes v{FEATURE_SCHEMA_VERSION}: retrain it (`composer-id train`)."
        )


def extract(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Spectral block of one mono segment sampled at ``config.sample_rate`` (the note block
    needs the whole clip's transcription: ``core.featurize.featurize_audio`` joins them)."""
    check_schema(config)
    sr, hop = config.sample_rate, config.hop_length
    y = np.ascontiguousarray(y, dtype=np.float32)
    if len(y) < config.n_fft:
        y = np.pad(y, (0, config.n_fft - len(y)))
    magnitude = np.abs(librosa.stft(y, n_fft=config.n_fft, hop_length=hop, center=True))
    power = magnitude**2
    mel_basis, chroma_basis, freqs = _filters(config)
    mel = mel_basis @ power
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=80.0)

    mfcc = scipy.fft.dct(log_mel, axis=0, type=2, norm="ortho")[: config.n_mfcc]
    centroid, bandwidth = _centroid_bandwidth(magnitude, freqs)
    rolloff = _rolloff(magnitude, freqs)
    zcr = _zero_crossing_rate(y, config.n_fft, hop)
    hp_ratio = _harmonic_percussive_ratio(mel, config.hpss_kernel)

    onset_env = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=hop)
    # beat_track's own default envelope aggregates bands with the median; using it keeps the
    # seed's tempo (the mean envelope gives octave errors on a third of the clips).
    beat_env = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=hop, aggregate=np.median)
    tempo, beats = _tempo_and_beats(beat_env, sr, hop)
    beat_std = float(np.std(np.diff(beats) * hop / sr)) if len(beats) > 2 else 0.0
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=sr, hop_length=hop)
    seconds = len(y) / sr

    chroma = chroma_basis @ power
    chroma /= np.maximum(chroma.max(axis=0, keepdims=True), 1e-10)
    tonnetz = librosa.feature.tonnetz(chroma=chroma)
    rms = librosa.feature.rms(S=magnitude, frame_length=config.n_fft)[0]
    rms_db = librosa.amplitude_to_db(rms + 1e-10, ref=1.0)
    contrast = _spectral_contrast(magnitude, config)
    parts = [
        _stats4(mfcc).ravel(),
        _stats2(centroid),
        _stats2(rolloff),
        _stats2(bandwidth),
        _stats2(zcr),
        [hp_ratio, float(np.atleast_1d(tempo)[0]), beat_std],
        _stats2(chroma).ravel(),
        _stats2(tonnetz).ravel(),
        [rms.mean(), rms.std(), rms.max(), np.percentile(rms_db, 95) - np.percentile(rms_db, 5)],
        [len(onsets) / seconds],
        _stats2(contrast).ravel(),
    ]
    vector = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


@lru_cache(maxsize=8)
def _filters(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filter banks depend only on the config; building them costs more than applying them."""
    sr, n_fft = config.sample_rate, config.n_fft
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=config.n_mels)
    chroma = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=config.n_chroma)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    return mel.astype(np.float32), chroma.astype(np.float32), freqs.astype(np.float32)


def _centroid_bandwidth(magnitude: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Spectral centroid and librosa's default bandwidth (p=2, normalised magnitude), via
    E[f^2] - E[f]^2 rather than librosa's full (bins x frames) deviation matrix."""
    total = np.maximum(magnitude.sum(axis=0), 1e-10)
    centroid = (freqs @ magnitude) / total
    second = ((freqs**2) @ magnitude) / total
    return centroid, np.sqrt(np.maximum(second - centroid**2, 0.0))


def _rolloff(magnitude: np.ndarray, freqs: np.ndarray, share: float = 0.85) -> np.ndarray:
    """librosa's spectral rolloff (lowest frequency below which ``share`` of the magnitude
    lies), without its NaN-masking passes over the whole spectrogram."""
    cumulative = np.cumsum(magnitude, axis=0)
    reached = cumulative >= share * cumulative[-1:]
    return freqs[reached.argmax(axis=0)]


def _tempo_and_beats(envelope: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """librosa's ``beat_track`` with its defaults: the same tempo estimate and beat
    dynamic programme, but the tempogram is autocorrelated along contiguous memory and the
    tempo is estimated once (``beat_track`` alone would run the estimate again)."""
    tempogram = _tempogram(envelope, librosa.time_to_frames(8.0, sr=sr, hop_length=hop).item())
    tempo = librosa.feature.tempo(onset_envelope=envelope, sr=sr, hop_length=hop, tg=tempogram)
    _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop, bpm=tempo)
    return tempo, beats


def _tempogram(envelope: np.ndarray, win_length: int) -> np.ndarray:
    """librosa's ``tempogram`` (centred, Hann-windowed, max-normalised autocorrelation of
    the onset envelope), with frames laid out one per row."""
    padded = np.pad(envelope, win_length // 2, mode="linear_ramp", end_values=0)
    windows = sliding_window_view(padded, win_length)[: len(envelope)]
    frames = windows * _hann(win_length)
    n_fft = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    power = np.abs(scipy.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    autocorrelation = scipy.fft.irfft(power, n=n_fft, axis=1)[:, :win_length]
    return librosa.util.normalize(autocorrelation, norm=np.inf, axis=1).T


@lru_cache(maxsize=8)
def _hann(length: int) -> np.ndarray:
    return librosa.filters.get_window("hann", length, fftbins=True)


def _zero_crossing_rate(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """librosa's ``zero_crossing_rate`` (centred, edge-padded frames; |x| <= 1e-10 counts as
    zero, zero counts as positive), from one pass over the signal and a running count
    instead of a numba stencil over every overlapping frame (4x the samples)."""
    padded = np.pad(y, frame_length // 2, mode="edge")
    negative = padded < -1e-10
    crossings = np.concatenate([[0], np.cumsum(negative[1:] != negative[:-1])])
    starts = np.arange(1 + (len(padded) - frame_length) // hop) * hop
    # a frame's first sample has no predecessor inside the frame (librosa's pad=False)
    return (crossings[starts + frame_length - 1] - crossings[starts]) / frame_length


@lru_cache(maxsize=8)
def _contrast_bands(config: FeatureConfig) -> tuple[tuple[int, int, int], ...]:
    """(first bin, end bin, quantile count) per octave band, exactly as librosa's
    ``spectral_contrast`` picks them (fmin 200 Hz, quantile 0.02)."""
    freqs = librosa.fft_frequencies(sr=config.sample_rate, n_fft=config.n_fft)
    n_bands = config.n_contrast_bands
    octaves = np.zeros(n_bands + 2)
    octaves[1:] = 200.0 * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
    for k, (low, high) in enumerate(itertools.pairwise(octaves)):
        in_band = np.logical_and(freqs >= low, freqs <= high)
        index = np.flatnonzero(in_band)
        if k > 0:
            in_band[index[0] - 1] = True
        if k == n_bands:
            in_band[index[-1] + 1 :] = True
        chosen = np.flatnonzero(in_band)
        count = max(int(np.rint(0.02 * len(chosen))), 1)
        # librosa drops each band's last bin except in the top band (it counts it, though)
        end = int(chosen[-1]) + (1 if k == n_bands else 0)
        bands.append((int(chosen[0]), end, count))
    return tuple(bands)


def _spectral_contrast(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """librosa's ``spectral_contrast`` (dB peak minus valley per octave band), with a
    partial sort over contiguous rows instead of a full sort along the strided bin axis."""
    spectrum = np.ascontiguousarray(magnitude.T)  # frames x bins
    bands = _contrast_bands(config)
    valley = np.empty((len(bands), spectrum.shape[0]))
    peak = np.empty_like(valley)
    for k, (first, end, count) in enumerate(bands):
        band = spectrum[:, first:end]
        width = band.shape[1]
        lowest = np.partition(band, count - 1, axis=1)[:, :count]
        highest = np.partition(band, width - count, axis=1)[:, width - count :]
        valley[k], peak[k] = lowest.mean(axis=1), highest.mean(axis=1)
    return librosa.power_to_db(peak) - librosa.power_to_db(valley)


def _harmonic_percussive_ratio(mel: np.ndarray, kernel: int) -> float:
    """Median-filtering HPSS (Fitzgerald) with soft masks, on the mel spectrogram pooled to a
    quarter of the frame rate (the time kernel spans the same duration; ~15x less work than
    on the full-resolution linear spectrogram, and the ratio is an energy balance anyway)."""
    pool = 4
    frames = mel.shape[1] - mel.shape[1] % pool
    if frames >= 2 * pool:
        mel = mel[:, :frames].reshape(mel.shape[0], -1, pool).mean(axis=2)
    half = max(3, (kernel // pool) | 1)
    harmonic = _median_along(mel, half, axis=1)
    percussive = _median_along(mel, kernel, axis=0)
    h2, p2 = harmonic**2, percussive**2
    total = np.maximum(h2 + p2, 1e-20)
    h_energy = float((mel * h2 / total).sum())
    p_energy = float((mel * p2 / total).sum())
    return h_energy / (p_energy + 1e-10)


def _median_along(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """scipy's ``median_filter`` along one axis with ``mode="reflect"`` (numpy's
    "symmetric" padding), as one partition over a window view: same values, ~5x faster
    than the generic rank filter on these small matrices."""
    half = size // 2
    widths = [(0, 0), (0, 0)]
    widths[axis] = (half, size - 1 - half)
    windows = sliding_window_view(np.pad(x, widths, mode="symmetric"), size, axis=axis)
    return np.partition(windows, half, axis=-1)[..., half]


def _stats4(x: np.ndarray) -> np.ndarray:
    return np.stack([x.mean(axis=1), x.std(axis=1), x.max(axis=1), x.min(axis=1)], axis=1)


def _stats2(x: np.ndarray) -> np.ndarray:
    if x.ndim == 1:
        return np.array([x.mean(), x.std()])
    return np.stack([x.mean(axis=1), x.std(axis=1)], axis=1)
