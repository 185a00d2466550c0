"""Transcribed notes of one segment -> one vector of musical features (the note block).

What a composer writes (keys, intervals, chord sizes, voice leading, rhythm, register) survives
a change of piano, room or microphone much better than spectral summaries, which mostly
describe the instrument. Pitch-class features are rotated to the estimated tonic
(Krumhansl-Schmuckler) so that a piece and its transposition look alike.

Pure functions of a ``Transcription`` and segment bounds; every name starts with ``note_``;
values are always finite (an empty segment gives zeros).
"""

from __future__ import annotations

import numpy as np

from core.transcription import N_KEYS, Transcription

PREFIX = "note_"
CHORD_SECONDS = 0.035  # onsets closer than this to a chord's first onset belong to that chord
POLYPHONY_STEP_S = 0.05
MAX_CHORD = 6  # chord sizes 1..5 and "6 or more"
MAX_INTERVAL = 12  # melodic intervals are clipped to an octave either way
DISSONANT = (1, 2, 6, 10, 11)  # harmonic interval classes counted as dissonant
REGISTERS = ((0, 48), (48, 72), (72, 128))  # below C3, C3..B4, C5 and up (MIDI)
# Krumhansl-Kessler key profiles (tonic first)
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PROFILES = np.stack(
    [np.roll(MAJOR, t) for t in range(12)] + [np.roll(MINOR, t) for t in range(12)]
)


def note_feature_names() -> list[str]:
    """Column names of the note block, in vector order."""
    n = ["density", "chord_rate"]
    n += [f"chord_size_{k}" for k in range(1, MAX_CHORD)] + [f"chord_size_{MAX_CHORD}plus"]
    n += ["chord_size_mean", "polyphony_mean", "polyphony_std", "polyphony_max", "silence_frac"]
    n += ["pitch_mean", "pitch_std", "pitch_min", "pitch_max", "pitch_p05", "pitch_p95"]
    n += ["pitch_range", "top_mean", "bass_mean", "top_bass_gap"]
    n += ["register_low", "register_mid", "register_high"]
    n += ["velocity_mean", "velocity_std", "velocity_p10", "velocity_p90"]
    n += ["log2dur_mean", "log2dur_std", "log2dur_median", "log2dur_p10", "log2dur_p90"]
    n += ["log2ioi_mean", "log2ioi_std", "log2ioi_median", "ioi_cv", "ioi_npvi"]
    n += [f"pc_abs_{i:02d}" for i in range(12)]
    n += [f"pc_key_{i:02d}" for i in range(12)]
    n += ["key_minor", "key_strength", "key_margin", "pc_entropy", "pc_used"]
    n += [f"harm_ic_{i:02d}" for i in range(12)] + ["harm_dissonant"]
    span = range(-MAX_INTERVAL, MAX_INTERVAL + 1)
    n += [f"mel_top_{d:+03d}" for d in span] + [f"mel_bass_{d:+03d}" for d in span]
    n += ["mel_abs_mean", "mel_step_frac", "mel_leap_frac", "mel_repeat_frac"]
    n += [f"trans_key_{a:02d}_{b:02d}" for a in range(12) for b in range(12)]
    n += [f"key_act_{k:02d}" for k in range(N_KEYS)]
    n += [f"act_chroma_key_{i:02d}" for i in range(12)] + ["act_chroma_entropy", "act_mean"]
    return [PREFIX + name for name in n]


def note_features(transcription: Transcription, start_s: float, end_s: float) -> np.ndarray:
    """Feature vector (float32) of the notes with onsets in ``[start_s, end_s)``."""
    t = transcription
    length = max(end_s - start_s, 1e-3)
    inside = (t.onset_s >= start_s) & (t.onset_s < end_s)
    order = np.lexsort((t.pitch[inside], t.onset_s[inside]))
    on = t.onset_s[inside][order].astype(np.float64)
    off = t.offset_s[inside][order].astype(np.float64)
    pitch = t.pitch[inside][order].astype(np.int64)
    velocity = t.amplitude[inside][order].astype(np.float64)
    sounding = (t.onset_s < end_s) & (t.offset_s > start_s)
    ctx_on, ctx_off = t.onset_s[sounding].astype(np.float64), t.offset_s[sounding]
    ctx_pitch = t.pitch[sounding].astype(np.int64)

    chord = _chord_ids(on)
    n_chords = int(chord[-1]) + 1 if len(chord) else 0
    top = np.array([pitch[chord == c].max() for c in range(n_chords)], dtype=np.int64)
    bass = np.array([pitch[chord == c].min() for c in range(n_chords)], dtype=np.int64)
    chord_on = np.array([on[chord == c][0] for c in range(n_chords)])

    parts: list[np.ndarray | list[float]] = []
    parts.append([len(pitch) / length, n_chords / length])
    sizes = np.bincount(chord) if n_chords else np.zeros(0, dtype=np.int64)
    parts.append(_share(np.minimum(sizes, MAX_CHORD) - 1, MAX_CHORD))
    parts.append([_mean(sizes)])
    parts.append(_polyphony(ctx_on, ctx_off, start_s, end_s))
    parts.append(_pitch_stats(pitch, top, bass))
    parts.append(
        [np.mean((pitch >= lo) & (pitch < hi)) if len(pitch) else 0.0 for lo, hi in REGISTERS]
    )
    parts.append(_stats(velocity, ("mean", "std", 10, 90)))
    log_dur = np.log2(np.maximum(off - on, 1e-3))
    parts.append(_stats(log_dur, ("mean", "std", 50, 10, 90)))
    parts.append(_rhythm(np.diff(chord_on)))

    weight = np.maximum(np.minimum(off, end_s) - on, 1e-3)
    pcs = _share(pitch % 12, 12, weight)
    tonic, minor, strength, margin = estimate_key(pcs)
    used = pcs[pcs > 0]
    parts.append(pcs)
    parts.append(np.roll(pcs, -tonic))
    parts.append(
        [minor, strength, margin, float(-(used * np.log2(used)).sum()), (pcs > 0.05).sum()]
    )

    harmonic = _harmonic_intervals(chord_on, ctx_on, ctx_off, ctx_pitch)
    parts.append(harmonic)
    parts.append([harmonic[list(DISSONANT)].sum()])
    parts.append(_melodic(top))
    parts.append(_melodic(bass))
    steps = np.abs(np.diff(top))
    parts.append(
        [_mean(steps), _mean((steps > 0) & (steps <= 2)), _mean(steps >= 5), _mean(steps == 0)]
        if len(steps)
        else [0.0] * 4
    )
    parts.append(_transitions((top - tonic) % 12))
    parts.append(_activation(t, start_s, end_s, tonic))
    vector = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def estimate_key(pitch_classes: np.ndarray) -> tuple[int, float, float, float]:
    """Krumhansl-Schmuckler key finding on a 12-bin pitch-class distribution:
    (tonic 0-11 with C = 0, 1.0 if minor else 0.0, best correlation, margin over the next)."""
    pcs = np.asarray(pitch_classes, dtype=np.float64)
    if pcs.sum() <= 0 or pcs.std() == 0:
        return 0, 0.0, 0.0, 0.0
    centred = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)
    x = pcs - pcs.mean()
    r = centred @ x / (np.linalg.norm(centred, axis=1) * np.linalg.norm(x))
    best, second = np.argsort(r)[::-1][:2]
    return int(best % 12), float(best >= 12), float(r[best]), float(r[best] - r[second])


def _chord_ids(onsets: np.ndarray) -> np.ndarray:
    """Chord index per note (onsets sorted): a chord is every onset within ``CHORD_SECONDS``
    of its first note's onset."""
    ids = np.zeros(len(onsets), dtype=np.int64)
    chord, anchor = 0, onsets[0] if len(onsets) else 0.0
    for i in range(1, len(onsets)):
        if onsets[i] - anchor > CHORD_SECONDS:
            chord, anchor = chord + 1, onsets[i]
        ids[i] = chord
    return ids


def _share(values: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    counts = np.bincount(np.asarray(values, dtype=np.int64), weights=weights, minlength=bins)
    counts = counts[:bins].astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _stats(values: np.ndarray, which: tuple) -> list[float]:
    if not len(values):
        return [0.0] * len(which)
    out = []
    for w in which:
        if w == "mean":
            out.append(values.mean())
        elif w == "std":
            out.append(values.std())
        else:
            out.append(np.percentile(values, w))
    return out


def _polyphony(on: np.ndarray, off: np.ndarray, start: float, end: float) -> list[float]:
    """Notes sounding on a 20 Hz grid: mean, std, max, and the share of silent points."""
    grid = np.arange(start, end, POLYPHONY_STEP_S)
    if not len(grid):
        return [0.0] * 4
    count = ((on[None, :] <= grid[:, None]) & (off[None, :] > grid[:, None])).sum(axis=1)
    return [count.mean(), count.std(), count.max(), float(np.mean(count == 0))]


def _pitch_stats(pitch: np.ndarray, top: np.ndarray, bass: np.ndarray) -> list[float]:
    if not len(pitch):
        return [0.0] * 10
    p05, p95 = np.percentile(pitch, [5, 95])
    return [
        pitch.mean(),
        pitch.std(),
        pitch.min(),
        pitch.max(),
        p05,
        p95,
        p95 - p05,
        top.mean(),
        bass.mean(),
        (top - bass).mean(),
    ]


def _rhythm(ioi: np.ndarray) -> list[float]:
    """Inter-onset intervals between chords: log2 statistics, coefficient of variation and the
    normalised pairwise variability index (nPVI, a standard measure of rhythmic contrast)."""
    if len(ioi) < 2:
        return [0.0] * 5
    log_ioi = np.log2(np.maximum(ioi, 1e-3))
    npvi = 100 * np.mean(np.abs(np.diff(ioi)) / np.maximum((ioi[1:] + ioi[:-1]) / 2, 1e-6))
    return [log_ioi.mean(), log_ioi.std(), np.median(log_ioi), ioi.std() / ioi.mean(), npvi]


def _harmonic_intervals(
    chord_on: np.ndarray, on: np.ndarray, off: np.ndarray, pitch: np.ndarray
) -> np.ndarray:
    """Interval classes between every pair of distinct pitches sounding at each chord onset."""
    if not len(chord_on) or not len(on):
        return np.zeros(12)
    active = (on[None, :] <= chord_on[:, None] + CHORD_SECONDS) & (off[None, :] > chord_on[:, None])
    classes = []
    for row in active:
        notes = np.unique(pitch[row])
        if len(notes) > 1:
            upper = np.triu_indices(len(notes), 1)
            classes.append((notes[None, :] - notes[:, None])[upper] % 12)
    if not classes:
        return np.zeros(12)
    return _share(np.concatenate(classes), 12)


def _melodic(voice: np.ndarray) -> np.ndarray:
    """Signed interval histogram of one voice (top or bass line), clipped to an octave."""
    if len(voice) < 2:
        return np.zeros(2 * MAX_INTERVAL + 1)
    steps = np.clip(np.diff(voice), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
    return _share(steps, 2 * MAX_INTERVAL + 1)


def _transitions(degrees: np.ndarray) -> np.ndarray:
    """12x12 pitch-class transition shares of the top voice, relative to the tonic."""
    matrix = np.zeros((12, 12))
    if len(degrees) >= 2:
        np.add.at(matrix, (degrees[:-1], degrees[1:]), 1.0)
        matrix /= matrix.sum()
    return matrix.ravel()


def _activation(t: Transcription, start: float, end: float, tonic: int) -> np.ndarray:
    """Mean posteriorgram per key over the segment, its tonic-rotated chroma and entropy."""
    first, last = round(start * t.frame_rate), round(end * t.frame_rate)
    frames = t.posteriorgram[first:last]
    if not len(frames):
        return np.zeros(N_KEYS + 14)
    profile = frames.mean(axis=0, dtype=np.float64)
    chroma = np.bincount((np.arange(N_KEYS) + 21) % 12, weights=profile, minlength=12)
    total = chroma.sum()
    chroma = chroma / total if total > 0 else chroma
    used = chroma[chroma > 0]
    entropy = float(-(used * np.log2(used)).sum())
    return np.concatenate([profile, np.roll(chroma, -tonic), [entropy, profile.mean()]])
